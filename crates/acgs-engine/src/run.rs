//! A run folder with its manifest, rewritten atomically on every state change. Steps of a
//! pipeline running at once share one [`RunState`]: each change is made under one lock, and the
//! file is written off the async threads by one writer at a time, which writes the newest state
//! (so changes made while it waited are written together, once).

use std::sync::{Arc, Mutex, MutexGuard};

use acgs_storage::StorageError;
use acgs_storage::manifest::{MANIFEST_FILE, Manifest, StepRecord};
use acgs_storage::output::RunDir;

/// The manifest and how many changes it has had.
#[derive(Debug)]
struct Versioned {
    manifest: Manifest,
    version: u64,
}

/// A run folder and its manifest (cheap to clone; clones share the manifest).
#[derive(Debug, Clone)]
pub struct RunState {
    /// The folder.
    pub dir: RunDir,
    manifest: Arc<Mutex<Versioned>>,
    /// The newest version on disk; held while writing.
    written: Arc<tokio::sync::Mutex<u64>>,
}

impl RunState {
    /// A run over `dir` whose manifest is `manifest` (as last saved).
    #[must_use]
    pub fn new(dir: RunDir, manifest: Manifest) -> Self {
        Self {
            dir,
            manifest: Arc::new(Mutex::new(Versioned {
                manifest,
                version: 0,
            })),
            written: Arc::new(tokio::sync::Mutex::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Versioned> {
        // A panic while changing the manifest leaves it as last changed; saving it is still right.
        self.manifest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Change the manifest; returns once this change (or a newer state) is on disk.
    pub async fn update(&self, change: impl FnOnce(&mut Manifest)) -> Result<(), StorageError> {
        let mine = {
            let mut state = self.lock();
            change(&mut state.manifest);
            state.version += 1;
            state.version
        };
        let mut written = self.written.lock().await;
        if *written >= mine {
            return Ok(());
        }
        let (bytes, version) = {
            let state = self.lock();
            (state.manifest.to_json()?, state.version)
        };
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.replace(MANIFEST_FILE, &bytes))
            .await
            .map_err(|e| StorageError::Corrupt {
                path: self.dir.path().join(MANIFEST_FILE),
                reason: format!("the manifest writer stopped: {e}"),
            })??;
        *written = version;
        Ok(())
    }

    /// Change step `id` in memory only; the next [`RunState::update`] writes it. For facts that
    /// are worth nothing on disk before the next durable state (a request about to be sent).
    pub fn note_step(&self, id: &str, change: impl FnOnce(&mut StepRecord)) {
        let mut state = self.lock();
        if let Some(step) = state.manifest.step_mut(id) {
            change(step);
        }
        state.version += 1;
    }

    /// Change step `id` and save the manifest.
    pub async fn update_step(
        &self,
        id: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<(), StorageError> {
        self.update(|manifest| {
            if let Some(step) = manifest.step_mut(id) {
                change(step);
            }
        })
        .await
    }

    /// Step `id` as last changed.
    #[must_use]
    pub fn step(&self, id: &str) -> Option<StepRecord> {
        self.lock()
            .manifest
            .steps
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    /// The manifest as last changed.
    #[must_use]
    pub fn manifest(&self) -> Manifest {
        self.lock().manifest.clone()
    }
}
