//! A run folder with its manifest, rewritten atomically on every state change. Steps of a
//! pipeline run at once share one [`RunState`]; each change is made and saved under one lock.

use std::sync::{Arc, Mutex, MutexGuard};

use acgs_storage::StorageError;
use acgs_storage::manifest::{Manifest, StepRecord};
use acgs_storage::output::RunDir;

/// A run folder and its manifest (cheap to clone; clones share the manifest).
#[derive(Debug, Clone)]
pub struct RunState {
    /// The folder.
    pub dir: RunDir,
    manifest: Arc<Mutex<Manifest>>,
}

impl RunState {
    /// A run over `dir` whose manifest is `manifest` (as last saved).
    #[must_use]
    pub fn new(dir: RunDir, manifest: Manifest) -> Self {
        Self {
            dir,
            manifest: Arc::new(Mutex::new(manifest)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Manifest> {
        // A panic while changing the manifest leaves it as last changed; saving it is still right.
        self.manifest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Change the manifest and save it.
    pub fn update(&self, change: impl FnOnce(&mut Manifest)) -> Result<(), StorageError> {
        let mut manifest = self.lock();
        change(&mut manifest);
        manifest.save(&self.dir)
    }

    /// Change step `id` and save the manifest.
    pub fn update_step(
        &self,
        id: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<(), StorageError> {
        self.update(|manifest| {
            if let Some(step) = manifest.step_mut(id) {
                change(step);
            }
        })
    }

    /// Step `id` as last saved.
    #[must_use]
    pub fn step(&self, id: &str) -> Option<StepRecord> {
        self.lock().steps.iter().find(|s| s.id == id).cloned()
    }

    /// The manifest as last saved.
    #[must_use]
    pub fn manifest(&self) -> Manifest {
        self.lock().clone()
    }
}
