//! A run folder with its manifest, rewritten atomically on every state change. Steps of a
//! pipeline running at once share one [`RunState`]: each change is made under one lock, and the
//! file is written off the async threads by one writer at a time, which writes the newest state
//! (so changes made while it waited are written together, once). In a pipeline, a finished
//! step's record is saved by that writer in the background, so the steps waiting for it start at
//! once; the next durable change (a dependent step's `submitting`, before anything is sent) or
//! the run's final save includes it.

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
    /// Finished steps are saved in the background (steps of a pipeline).
    background: bool,
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
            background: false,
        }
    }

    /// This run with finished steps saved in the background (see the module documentation);
    /// whoever runs the steps ends with [`RunState::save`].
    #[must_use]
    pub fn with_background_completion(mut self) -> Self {
        self.background = true;
        self
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

    /// Record that step `id` finished: saved before this returns, or, with
    /// [`RunState::with_background_completion`], by the writer in the background.
    pub async fn finish_step(
        &self,
        id: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<(), StorageError> {
        if !self.background {
            return self.update_step(id, change).await;
        }
        self.note_step(id, change);
        let run = self.clone();
        tokio::spawn(async move {
            if let Err(e) = run.save().await {
                tracing::error!(error = %e, "the manifest could not be saved; the run's final save reports it");
            }
        });
        Ok(())
    }

    /// Save the newest state.
    pub async fn save(&self) -> Result<(), StorageError> {
        self.update(|_| {}).await
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
