//! A run folder with its manifest, rewritten atomically on every state change.

use acgs_storage::StorageError;
use acgs_storage::manifest::{Manifest, StepRecord};
use acgs_storage::output::RunDir;

/// A run folder and its manifest.
#[derive(Debug)]
pub struct RunState {
    /// The folder.
    pub dir: RunDir,
    /// The manifest as last saved.
    pub manifest: Manifest,
}

impl RunState {
    /// Change step `id` and save the manifest.
    pub fn update_step(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<(), StorageError> {
        if let Some(step) = self.manifest.step_mut(id) {
            change(step);
        }
        self.manifest.save(&self.dir)
    }
}
