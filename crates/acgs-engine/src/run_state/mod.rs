//! A run folder with its manifest, saved on every durable state change. Steps of a pipeline
//! running at once share one [`RunState`]: each change is made under one lock, and the file is
//! written off the async threads by one writer at a time, which writes the newest state (so
//! changes made while it waited are written together, once).
//!
//! A single run's manifest is rewritten whole at each change. A pipeline's changes are appended
//! to the manifest journal instead (the records of the steps that changed: one short line
//! instead of a manifest that grows with the pipeline), and the manifest is rewritten whole at
//! the end of the run ([`RunState::save`]). A finished pipeline step's record is saved in the
//! background, so the steps waiting for it start at once: with the next durable change (a
//! dependent step's `submitting`, before anything is sent), or alone a few milliseconds later,
//! or with the run's final save, whichever comes first. Its audit entry is written in the
//! background too, gathered for a few milliseconds so that the entries of steps finishing
//! together share one append and one sync; the run queues its own entry after every step's and
//! then waits for them all ([`RunState::finish_background`]), which writes what is gathered at
//! once. With a record key ([`RunState::sealed_by`]) every step record is sealed as it is
//! written, so that `acgs resume` can tell it from a record edited in the folder.

mod audit_writer;

pub(crate) use audit_writer::record_all;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use acgs_storage::StorageError;
use acgs_storage::manifest::{MANIFEST_FILE, Manifest, ManifestJournal, RecordKey, StepRecord};
use acgs_storage::output::RunDir;

/// How long a finished pipeline step's record waits for a write it can join (a dependent
/// step's `submitting`, which follows within about a millisecond) before it is written alone.
const FINISHED_WRITE_DELAY: Duration = Duration::from_millis(3);

/// The manifest, how many changes it has had, and what changed since it was last written.
#[derive(Debug)]
struct Versioned {
    manifest: Manifest,
    version: u64,
    /// Steps changed since the last write.
    changed: BTreeSet<String>,
    /// The next write rewrites the whole manifest.
    whole: bool,
}

/// What is on disk: the newest version written, and the journal once opened.
#[derive(Debug, Default)]
struct Written {
    version: u64,
    journal: Option<ManifestJournal>,
}

/// `mutex` locked; a panic while it was held left its data as last changed, which is still
/// right to use here.
/// The folder of run `run_id`, found through the runs index, and its manifest.
pub(crate) fn find_run(
    runs: &acgs_storage::runs::RunIndex,
    run_id: &str,
) -> Result<(RunDir, Manifest), StorageError> {
    open_run(&runs.find(run_id)?)
}

/// The folder an index entry names, and its manifest.
pub(crate) fn open_run(
    entry: &acgs_storage::runs::RunEntry,
) -> Result<(RunDir, Manifest), StorageError> {
    let root = entry
        .folder
        .parent()
        .ok_or_else(|| StorageError::RunNotFound(entry.run_id.clone()))?;
    let dir = acgs_storage::output::OutputRoot::open(root)?.open_run(&entry.run_id)?;
    let manifest = Manifest::load(&dir)?;
    Ok((dir, manifest))
}

pub(crate) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One write of the writer.
enum Pending {
    /// The whole manifest (which includes, and so removes, the journal).
    Whole(Box<Manifest>),
    /// One journal entry.
    Steps { seq: u64, steps: Vec<StepRecord> },
}

impl Pending {
    /// Write it; returns the journal to keep open.
    fn write(
        self,
        dir: &RunDir,
        journal: Option<ManifestJournal>,
    ) -> Result<Option<ManifestJournal>, StorageError> {
        match self {
            Self::Whole(manifest) => manifest.save(dir).map(|()| None),
            Self::Steps { seq, steps } => {
                let mut journal = match journal {
                    Some(journal) => journal,
                    None => ManifestJournal::open(dir)?,
                };
                journal.append(seq, steps)?;
                Ok(Some(journal))
            }
        }
    }
}

/// A run folder and its manifest (cheap to clone; clones share the manifest).
#[derive(Debug, Clone)]
pub(crate) struct RunState {
    /// The folder.
    pub dir: RunDir,
    manifest: Arc<Mutex<Versioned>>,
    /// Held while writing.
    written: Arc<tokio::sync::Mutex<Written>>,
    /// A pipeline's run: changes journaled, finished steps saved in the background.
    pipeline: bool,
    /// Audit entries written in the background (a pipeline's run).
    audits: Arc<audit_writer::BackgroundAudit>,
    /// Seals every step record written.
    key: Option<RecordKey>,
}

impl RunState {
    /// A run over `dir` whose manifest is `manifest` (as last saved).
    #[must_use]
    pub(crate) fn new(dir: RunDir, manifest: Manifest) -> Self {
        Self {
            dir,
            manifest: Arc::new(Mutex::new(Versioned {
                manifest,
                version: 0,
                changed: BTreeSet::new(),
                whole: false,
            })),
            written: Arc::new(tokio::sync::Mutex::new(Written::default())),
            pipeline: false,
            audits: Arc::default(),
            key: None,
        }
    }

    /// This run as a pipeline's: changes are journaled and finished steps saved in the
    /// background (see the module documentation); whoever runs the steps ends with
    /// [`RunState::save`].
    #[must_use]
    pub(crate) fn for_pipeline(mut self) -> Self {
        self.pipeline = true;
        self
    }

    /// This run with every step record sealed by `key` when it is written (see
    /// [`RecordKey`]).
    #[must_use]
    pub(crate) fn sealed_by(mut self, key: Option<RecordKey>) -> Self {
        self.key = key;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Versioned> {
        // A panic while changing the manifest leaves it as last changed; saving it is still right.
        locked(&self.manifest)
    }

    /// Change the manifest; returns once it is on disk whole (with this change or newer ones).
    pub(crate) async fn update(
        &self,
        change: impl FnOnce(&mut Manifest),
    ) -> Result<(), StorageError> {
        let mine = {
            let mut state = self.lock();
            change(&mut state.manifest);
            state.whole = true;
            state.version += 1;
            state.version
        };
        self.write(mine).await
    }

    /// Write the newest state unless version `mine` (or a newer one) is on disk already.
    async fn write(&self, mine: u64) -> Result<(), StorageError> {
        let mut written = self.written.lock().await;
        if written.version >= mine {
            return Ok(());
        }
        let (pending, version) = self.pending();
        let (dir, journal) = (self.dir.clone(), written.journal.take());
        let outcome = tokio::task::spawn_blocking(move || pending.write(&dir, journal))
            .await
            .unwrap_or_else(|e| {
                Err(StorageError::Corrupt {
                    path: self.dir.path().join(MANIFEST_FILE),
                    reason: format!("the manifest writer stopped: {e}"),
                })
            });
        match outcome {
            Ok(journal) => {
                *written = Written { version, journal };
                Ok(())
            }
            Err(e) => {
                // What this write held is written whole next time.
                self.lock().whole = true;
                Err(e)
            }
        }
    }

    /// What the writer writes for the newest version.
    fn pending(&self) -> (Pending, u64) {
        let mut state = self.lock();
        let state = &mut *state;
        let changed = std::mem::take(&mut state.changed);
        if let Some(key) = &self.key {
            if state.whole || !self.pipeline {
                state.manifest.seal_all(key);
            } else {
                let run_id = state.manifest.run_id.clone();
                for step in &mut state.manifest.steps {
                    if changed.contains(&step.id) {
                        key.seal(&run_id, step);
                    }
                }
            }
        }
        if state.whole || !self.pipeline {
            state.whole = false;
            return (
                Pending::Whole(Box::new(state.manifest.clone())),
                state.version,
            );
        }
        state.manifest.journal_seq += 1;
        let steps = state
            .manifest
            .steps
            .iter()
            .filter(|s| changed.contains(&s.id))
            .cloned()
            .collect();
        let seq = state.manifest.journal_seq;
        (Pending::Steps { seq, steps }, state.version)
    }

    /// Change step `id` in memory and return the new version.
    fn change_step(&self, id: &str, change: impl FnOnce(&mut StepRecord)) -> u64 {
        let mut state = self.lock();
        if let Some(step) = state.manifest.step_mut(id) {
            change(step);
            state.changed.insert(id.to_owned());
        }
        state.version += 1;
        state.version
    }

    /// Change step `id` in memory only; the next write saves it. For facts that are worth
    /// nothing on disk before the next durable state (a request about to be sent).
    pub(crate) fn note_step(&self, id: &str, change: impl FnOnce(&mut StepRecord)) {
        self.change_step(id, change);
    }

    /// Change step `id` and save it.
    pub(crate) async fn update_step(
        &self,
        id: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<(), StorageError> {
        let mine = self.change_step(id, change);
        self.write(mine).await
    }

    /// Record that step `id` finished: saved before this returns, or, in a pipeline's run, by
    /// the writer in the background.
    pub(crate) async fn finish_step(
        &self,
        id: &str,
        change: impl FnOnce(&mut StepRecord),
    ) -> Result<(), StorageError> {
        let mine = self.change_step(id, change);
        if !self.pipeline {
            return self.write(mine).await;
        }
        let run = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FINISHED_WRITE_DELAY).await;
            if let Err(e) = run.write(mine).await {
                tracing::error!(error = %e, "the manifest could not be saved; the run's final save reports it");
            }
        });
        Ok(())
    }

    /// Save the newest state as one whole manifest (a pipeline's journal is folded in).
    pub(crate) async fn save(&self) -> Result<(), StorageError> {
        self.update(|_| {}).await
    }

    /// Step `id` as last changed.
    #[must_use]
    pub(crate) fn step(&self, id: &str) -> Option<StepRecord> {
        self.lock()
            .manifest
            .steps
            .iter()
            .find(|s| s.id == id)
            .cloned()
    }

    /// The run's id.
    #[must_use]
    pub(crate) fn run_id(&self) -> String {
        self.lock().manifest.run_id.clone()
    }

    /// The manifest as last changed.
    #[must_use]
    pub(crate) fn manifest(&self) -> Manifest {
        self.lock().manifest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_storage::manifest::{JOURNAL_FILE, RunKind, StepStatus};
    use acgs_storage::output::OutputRoot;

    fn pending(id: &str) -> StepRecord {
        StepRecord::pending(id, "gemini_2_5_flash", "models/gemini-2.5-flash")
    }

    /// A new run folder `id` under `tmp`.
    pub(super) fn run_dir(tmp: &tempfile::TempDir, id: &str) -> RunDir {
        OutputRoot::open(tmp.path())
            .expect("root")
            .create_run(id)
            .expect("run")
    }

    fn on_disk(dir: &RunDir, name: &str) -> Vec<StepStatus> {
        let bytes = fs_err::read(dir.path().join(name)).expect("manifest");
        let manifest: Manifest = serde_json::from_slice(&bytes).expect("json");
        manifest.steps.iter().map(|s| s.status).collect()
    }

    #[tokio::test]
    async fn a_pipeline_journals_its_changes_and_saves_them_whole_at_the_end() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = run_dir(&tmp, "r1");
        let mut manifest = Manifest::new(RunKind::Pipeline, "r1");
        manifest.steps = vec![pending("a"), pending("b")];
        manifest.save(&dir).expect("saved");
        let run = RunState::new(dir.clone(), manifest).for_pipeline();

        run.update_step("a", |s| s.status = StepStatus::Submitting)
            .await
            .expect("a submitting");
        run.finish_step("b", |s| s.status = StepStatus::Done)
            .await
            .expect("b done");
        run.update_step("a", |s| s.status = StepStatus::Submitted)
            .await
            .expect("a submitted");
        assert_eq!(
            on_disk(&dir, MANIFEST_FILE),
            [StepStatus::Pending, StepStatus::Pending],
            "the manifest is not rewritten for each change"
        );
        let loaded = Manifest::load(&dir).expect("loaded");
        assert_eq!(
            loaded.steps.iter().map(|s| s.status).collect::<Vec<_>>(),
            [StepStatus::Submitted, StepStatus::Done],
            "the journal holds every durable change, the background one included"
        );

        // A finished step with no change after it is written alone, shortly.
        run.finish_step("a", |s| s.status = StepStatus::Done)
            .await
            .expect("a done");
        let mut waited = 0;
        while Manifest::load(&dir).expect("loaded").steps[0].status != StepStatus::Done {
            assert!(
                waited < 100,
                "the finished step reaches the journal on its own"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }

        run.save().await.expect("final save");
        assert_eq!(
            on_disk(&dir, MANIFEST_FILE),
            [StepStatus::Done, StepStatus::Done]
        );
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }

    #[tokio::test]
    async fn a_single_run_rewrites_its_manifest() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = run_dir(&tmp, "r2");
        let mut manifest = Manifest::new(RunKind::Single, "r2");
        manifest.steps = vec![pending("a")];
        manifest.save(&dir).expect("saved");
        let run = RunState::new(dir.clone(), manifest);
        run.finish_step("a", |s| s.status = StepStatus::Done)
            .await
            .expect("done");
        assert_eq!(on_disk(&dir, MANIFEST_FILE), [StepStatus::Done]);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
    }

    /// A pipeline's run of `steps` pending steps in a new folder `id`, its manifest saved.
    fn pipeline_run(tmp: &tempfile::TempDir, id: &str, steps: usize) -> RunState {
        let dir = run_dir(tmp, id);
        let mut manifest = Manifest::new(RunKind::Pipeline, id);
        manifest.steps = (0..steps).map(|n| pending(&format!("s{n}"))).collect();
        manifest.save(&dir).expect("saved");
        RunState::new(dir, manifest).for_pipeline()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_change_is_on_disk_when_its_update_returns_however_many_run_at_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = pipeline_run(&tmp, "r3", 24);
        let updates: Vec<_> = (0..24)
            .map(|n| {
                let run = run.clone();
                tokio::spawn(async move {
                    let id = format!("s{n}");
                    run.update_step(&id, |s| s.status = StepStatus::Submitting)
                        .await
                        .expect("saved");
                    let saved = Manifest::load(&run.dir).expect("readable");
                    let step = saved.steps.iter().find(|s| s.id == id).expect("step");
                    assert_eq!(step.status, StepStatus::Submitting, "{id} on disk");
                })
            })
            .collect();
        for update in updates {
            update.await.expect("update");
        }
        let saved = Manifest::load(&run.dir).expect("readable");
        assert!(
            saved
                .steps
                .iter()
                .all(|s| s.status == StepStatus::Submitting)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_is_reported_to_every_update_it_held() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = pipeline_run(&tmp, "r4", 6);
        fs_err::remove_dir_all(run.dir.path()).expect("the folder is gone");
        let updates: Vec<_> = (0..6)
            .map(|n| {
                let run = run.clone();
                tokio::spawn(async move {
                    run.update_step(&format!("s{n}"), |s| s.status = StepStatus::Submitting)
                        .await
                })
            })
            .collect();
        for update in updates {
            let outcome = tokio::time::timeout(Duration::from_secs(10), update)
                .await
                .expect("every update returns")
                .expect("update");
            assert!(outcome.is_err(), "nothing could be written");
        }
    }
}
