//! The run manifest, which is also the checkpoint (DESIGN.md §3.6).
//!
//! `manifest.json` is rewritten atomically. A pipeline's runner instead appends each step change
//! to `manifest.journal` (one short line, synced; see [`ManifestJournal`]) and rewrites the
//! manifest whole at the end of the run. [`Manifest::load`] reads both: journal entries newer
//! than the manifest's [`Manifest::journal_seq`] are applied in order, and a torn last entry
//! (the process died while appending it) is ignored.

use std::collections::BTreeMap;

use acgs_core::Usd;
use acgs_core::catalog::Params;
use acgs_core::ledger::ReservationId;
use acgs_core::request::JobHandle;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::output::RunDir;

/// Current manifest schema.
pub const MANIFEST_SCHEMA: u32 = 1;

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest journal's file name.
pub const JOURNAL_FILE: &str = "manifest.journal";

/// The largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// The largest journal read.
const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// A single generation or a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// One command.
    Single,
    /// A YAML pipeline.
    Pipeline,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// About to send: the outcome is unknown if the process dies here.
    Submitting,
    /// Accepted by the provider; the job handle is recorded.
    Submitted,
    /// Finished and stored.
    Done,
    /// Failed.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Not run: the list item it was for does not exist (the list was shorter than its bound).
    Skipped,
}

/// One stored output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// File name in the run folder.
    pub path: String,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// MIME type (sniffed).
    pub content_type: String,
}

/// When things happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    /// Submitted to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<jiff::Timestamp>,
    /// Finished (any outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<jiff::Timestamp>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step id.
    pub id: String,
    /// Catalogue key.
    pub model: String,
    /// Provider endpoint.
    pub endpoint: String,
    /// Wire parameters.
    pub params: Params,
    /// Status.
    pub status: StepStatus,
    /// Worst-case estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Usd>,
    /// Actual cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<Usd>,
    /// The quantity priced, and what the provider said it billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<acgs_core::Quantity>,
    /// The reservation paying for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
    /// The provider job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobHandle>,
    /// Stored outputs.
    #[serde(default)]
    pub outputs: Vec<OutputRecord>,
    /// Timings.
    #[serde(default)]
    pub timings: Timings,
    /// Stable error code when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// What the user asked for, so that `acgs resume` can go through the guarded path again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestRecord>,
    /// The seal acgs put on this record when it wrote it ([`RecordKey`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// Seals step records so that `acgs resume` can tell a record acgs wrote from one edited in the
/// run folder: an HMAC-SHA256, under a key derived from the per-install audit key, of the run
/// id and every field of the record but the seal.
#[derive(Debug, Clone)]
pub struct RecordKey(crate::audit::AuditKey);

impl RecordKey {
    /// The record key of an install, derived from its audit key.
    #[must_use]
    pub fn from_audit_key(key: &crate::audit::AuditKey) -> Self {
        Self(key.derive("acgs manifest step record v1"))
    }

    fn seal_of(&self, run_id: &str, record: &StepRecord) -> String {
        let unsealed = StepRecord {
            seal: None,
            ..record.clone()
        };
        let bytes = serde_json::to_vec(&(run_id, &unsealed)).unwrap_or_default();
        self.0.sign(&bytes)
    }

    /// The seal of a run's own fields: what decides what a resumed pipeline reads and runs.
    fn seal_of_run(&self, manifest: &Manifest) -> String {
        let fields = (
            &manifest.run_id,
            manifest.kind,
            &manifest.pipeline_sha256,
            &manifest.pipeline_dir,
            &manifest.inputs,
        );
        self.0
            .sign(&serde_json::to_vec(&fields).unwrap_or_default())
    }

    /// Seal `record` of run `run_id`.
    pub fn seal(&self, run_id: &str, record: &mut StepRecord) {
        record.seal = Some(self.seal_of(run_id, record));
    }

    /// Whether `record` of run `run_id` carries this key's seal over what it holds now.
    #[must_use]
    pub fn verifies(&self, run_id: &str, record: &StepRecord) -> bool {
        record
            .seal
            .as_deref()
            .is_some_and(|seal| seal == self.seal_of(run_id, record))
    }
}

/// The newest [`RequestRecord::version`].
pub const REQUEST_RECORD_VERSION: u32 = 1;

/// What a step asked for, as the manifest keeps it: its own versioned shape, so that a change to
/// the library's request type cannot silently change the checkpoint format. Version 0 is the
/// shape written before records had a version (a serialized request); it still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// [`REQUEST_RECORD_VERSION`] when written; 0 for a record written before versions.
    #[serde(default)]
    pub version: u32,
    /// Model key as asked (`key` or `provider:key`).
    pub model: String,
    /// Tasks the command accepted (empty: any).
    #[serde(default)]
    pub tasks: Vec<acgs_core::TaskKind>,
    /// Text by flag, as given (before the guard's inspection).
    #[serde(default)]
    pub texts: BTreeMap<String, String>,
    /// `--param` pairs, as given.
    #[serde(default)]
    pub params: Vec<(String, String)>,
    /// `-n`.
    #[serde(default)]
    pub count: Option<u32>,
    /// `--out`.
    #[serde(default)]
    pub out_stem: Option<String>,
    /// `--timeout` in seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// `--detach`.
    #[serde(default)]
    pub detach: bool,
    /// Local input files by flag.
    #[serde(default)]
    pub inputs: Vec<InputRecord>,
}

/// A local input file of a step: the flag it was given under and its absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "InputRecordWire")]
pub struct InputRecord {
    /// The flag (`image`, `audio` …).
    pub field: String,
    /// The path as opened.
    pub path: std::path::PathBuf,
}

/// An input as written: `{field, path}`, or `[field, path]` in version 0.
#[derive(Deserialize)]
#[serde(untagged)]
enum InputRecordWire {
    Record {
        field: String,
        path: std::path::PathBuf,
    },
    Pair(String, std::path::PathBuf),
}

impl From<InputRecordWire> for InputRecord {
    fn from(wire: InputRecordWire) -> Self {
        match wire {
            InputRecordWire::Record { field, path } | InputRecordWire::Pair(field, path) => {
                Self { field, path }
            }
        }
    }
}

impl StepRecord {
    /// A step of `model` (through `endpoint`) that has not started: nothing else known yet.
    #[must_use]
    pub fn pending(id: &str, model: &str, endpoint: &str) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            endpoint: endpoint.to_owned(),
            params: Params::new(),
            status: StepStatus::Pending,
            estimate: None,
            actual: None,
            quantity: None,
            reservation_id: None,
            job: None,
            outputs: Vec::new(),
            timings: Timings::default(),
            error_code: None,
            request: None,
            seal: None,
        }
    }
}

/// The manifest of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_SCHEMA`].
    pub schema_version: u32,
    /// Single or pipeline.
    pub kind: RunKind,
    /// The run id.
    pub run_id: String,
    /// When the run was created.
    pub created_at: jiff::Timestamp,
    /// sha256 of the pipeline file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_sha256: Option<String>,
    /// The folder the pipeline's relative paths are read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_dir: Option<std::path::PathBuf>,
    /// Pipeline inputs.
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
    /// Steps.
    pub steps: Vec<StepRecord>,
    /// The newest journal entry included (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal_seq: u64,
    /// The seal acgs put on the run's own fields (kind, pipeline, inputs) when it wrote them
    /// ([`RecordKey`]); each step record carries its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

// A serde predicate takes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One journal line: the newest records of the steps that changed.
#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    seq: u64,
    steps: Vec<StepRecord>,
}

impl Manifest {
    /// Seal the run's own fields and every step record with `key`.
    pub fn seal_all(&mut self, key: &RecordKey) {
        self.seal = Some(key.seal_of_run(self));
        for step in &mut self.steps {
            key.seal(&self.run_id, step);
        }
    }

    /// Whether the run's own fields carry `key`'s seal over what they hold now.
    #[must_use]
    pub fn run_sealed_by(&self, key: &RecordKey) -> bool {
        self.seal
            .as_deref()
            .is_some_and(|seal| seal == key.seal_of_run(self))
    }

    /// A new manifest.
    #[must_use]
    pub fn new(kind: RunKind, run_id: &str) -> Self {
        Self {
            schema_version: MANIFEST_SCHEMA,
            kind,
            run_id: run_id.to_owned(),
            created_at: jiff::Timestamp::now(),
            pipeline_sha256: None,
            pipeline_dir: None,
            inputs: BTreeMap::new(),
            steps: Vec::new(),
            journal_seq: 0,
            seal: None,
        }
    }

    /// The step with this id.
    pub fn step_mut(&mut self, id: &str) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    /// Write atomically into the run folder; the journal, now included, is removed.
    pub fn save(&self, run: &RunDir) -> Result<()> {
        run.replace(MANIFEST_FILE, &self.to_json()?)?;
        run.remove(JOURNAL_FILE)
    }

    /// The first save of a run: the manifest, for a pipeline's run an empty journal to append
    /// to, and `beside` (files that belong with it), with one folder sync.
    pub fn save_first(&self, run: &RunDir, beside: &[(&str, &[u8])]) -> Result<()> {
        let json = self.to_json()?;
        let mut files = vec![(MANIFEST_FILE, json.as_slice())];
        if self.kind == RunKind::Pipeline {
            files.push((JOURNAL_FILE, &[][..]));
        }
        files.extend_from_slice(beside);
        run.replace_all(&files)
    }

    /// The manifest as the JSON written to disk.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| StorageError::Corrupt {
            path: std::path::PathBuf::from(MANIFEST_FILE),
            reason: e.to_string(),
        })
    }

    /// Read the manifest of a run folder, with the changes its journal holds.
    pub fn load(run: &RunDir) -> Result<Self> {
        let bytes = run.read(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        let corrupt = |reason: String| StorageError::Corrupt {
            path: run.path().join(MANIFEST_FILE),
            reason,
        };
        let mut manifest: Self =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if manifest.schema_version != MANIFEST_SCHEMA {
            return Err(corrupt(format!(
                "unsupported schema version {}",
                manifest.schema_version
            )));
        }
        if let Some(journal) = run.read_if_exists(JOURNAL_FILE, MAX_JOURNAL_BYTES)? {
            manifest
                .apply_journal(&journal)
                .map_err(|reason| StorageError::Corrupt {
                    path: run.path().join(JOURNAL_FILE),
                    reason,
                })?;
        }
        Ok(manifest)
    }

    /// Apply the complete journal entries newer than this manifest, in order.
    fn apply_journal(&mut self, journal: &[u8]) -> std::result::Result<(), String> {
        if u64::try_from(journal.len()).unwrap_or(u64::MAX) >= MAX_JOURNAL_BYTES {
            return Err("larger than 64 MiB".into());
        }
        let complete = journal
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&journal[..0], |end| &journal[..end]);
        if complete.is_empty() {
            return Ok(());
        }
        for (index, line) in complete.split(|&b| b == b'\n').enumerate() {
            let entry: JournalEntry = serde_json::from_slice(line)
                .map_err(|e| format!("entry {} is unreadable ({e})", index + 1))?;
            if entry.seq <= self.journal_seq {
                continue;
            }
            for record in entry.steps {
                match self.steps.iter_mut().find(|s| s.id == record.id) {
                    Some(step) => *step = record,
                    None => self.steps.push(record),
                }
            }
            self.journal_seq = entry.seq;
        }
        Ok(())
    }
}

/// A run's manifest journal, open for appending: each entry is one line holding the newest
/// records of the steps that changed, written with one `write` and synced before
/// [`ManifestJournal::append`] returns.
#[derive(Debug)]
pub struct ManifestJournal {
    file: std::fs::File,
}

impl ManifestJournal {
    /// Open the journal of `run` (created private if missing); a torn last entry left by a
    /// process that died while appending is cut off first.
    pub fn open(run: &RunDir) -> Result<Self> {
        let file = run.open_append(JOURNAL_FILE)?;
        let torn = run
            .read_if_exists(JOURNAL_FILE, MAX_JOURNAL_BYTES)?
            .filter(|bytes| bytes.last().is_some_and(|&b| b != b'\n'));
        if let Some(bytes) = torn {
            let keep = bytes
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |end| end + 1);
            file.set_len(u64::try_from(keep).unwrap_or(0))
                .map_err(StorageError::io("cutting a torn manifest journal entry"))?;
        }
        Ok(Self { file })
    }

    /// Append entry `seq` with `steps` (their newest records), durably.
    pub fn append(&mut self, seq: u64, steps: Vec<StepRecord>) -> Result<()> {
        use std::io::Write as _;
        let mut line = serde_json::to_vec(&JournalEntry { seq, steps }).map_err(|e| {
            StorageError::Corrupt {
                path: std::path::PathBuf::from(JOURNAL_FILE),
                reason: e.to_string(),
            }
        })?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(StorageError::io("appending to the manifest journal"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::run_in;
    use std::os::unix::fs::PermissionsExt as _;

    fn step(id: &str, status: StepStatus) -> StepRecord {
        StepRecord {
            status,
            ..StepRecord::pending(id, "gemini_2_5_flash", "models/gemini-2.5-flash")
        }
    }

    #[test]
    fn a_request_recorded_before_versions_still_reads() {
        // What manifests held before the record had a version: a serialized library request.
        let old = serde_json::json!({
            "id": "main", "model": "flux_dev", "endpoint": "fal-ai/flux/dev", "params": {},
            "status": "failed",
            "request": {
                "model": "flux_dev", "tasks": ["text_to_image"],
                "texts": {"prompt": "a lighthouse"}, "params": [["image_size", "square"]],
                "count": null, "out_stem": null, "timeout_secs": 30, "detach": false,
                "inputs": [["image", "/tmp/in.png"]],
                "assumed_inputs": []
            }
        });
        let step: StepRecord = serde_json::from_value(old).expect("old record");
        let request = step.request.expect("request");
        assert_eq!(request.version, 0);
        assert_eq!(request.texts["prompt"], "a lighthouse");
        assert_eq!(
            request.params,
            [("image_size".to_owned(), "square".to_owned())]
        );
        assert_eq!(request.inputs[0].field, "image");
        assert_eq!(request.inputs[0].path, std::path::Path::new("/tmp/in.png"));
        assert_eq!(request.timeout_secs, Some(30));
    }

    #[test]
    fn a_sealed_record_verifies_until_any_field_changes() {
        let key = RecordKey::from_audit_key(&crate::audit::AuditKey::from_bytes(vec![7; 32]));
        let mut record = step("a", StepStatus::Pending);
        key.seal("r1", &mut record);
        assert!(key.verifies("r1", &record));
        assert!(!key.verifies("r2", &record), "bound to its run");
        let mut edited = record.clone();
        edited.status = StepStatus::Submitted;
        assert!(!key.verifies("r1", &edited), "status edited");
        let mut edited = record.clone();
        edited.estimate = Some(Usd::from_micros(1));
        assert!(!key.verifies("r1", &edited), "estimate edited");
        let other = RecordKey::from_audit_key(&crate::audit::AuditKey::from_bytes(vec![8; 32]));
        assert!(!other.verifies("r1", &record), "another install's key");
    }

    /// A run folder holding a saved manifest with steps `a` and `b`, both pending.
    fn saved_run(tmp: &tempfile::TempDir) -> (RunDir, Manifest) {
        let run = run_in(tmp, "r1");
        let mut manifest = Manifest::new(RunKind::Pipeline, "r1");
        manifest.steps = vec![
            step("a", StepStatus::Pending),
            step("b", StepStatus::Pending),
        ];
        manifest.save(&run).expect("saved");
        (run, manifest)
    }

    /// [`saved_run`] with entry 1 (`a` submitting) in its journal, which stays open.
    fn journaled_run(tmp: &tempfile::TempDir) -> (RunDir, Manifest, ManifestJournal) {
        let (run, manifest) = saved_run(tmp);
        let mut journal = ManifestJournal::open(&run).expect("journal");
        journal
            .append(1, vec![step("a", StepStatus::Submitting)])
            .expect("1");
        (run, manifest, journal)
    }

    fn statuses(manifest: &Manifest) -> Vec<StepStatus> {
        manifest.steps.iter().map(|s| s.status).collect()
    }

    #[test]
    fn journal_entries_are_applied_in_order_and_a_torn_last_one_is_ignored() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (run, _, mut journal) = journaled_run(&tmp);
        journal
            .append(
                2,
                vec![
                    step("a", StepStatus::Done),
                    step("b", StepStatus::Submitting),
                ],
            )
            .expect("2");
        let path = run.path().join(JOURNAL_FILE);
        let mode = fs_err::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut torn = fs_err::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut torn, br#"{"seq":3,"steps":[{"id":"b","#).expect("torn");
        let loaded = Manifest::load(&run).expect("loaded");
        assert_eq!(
            statuses(&loaded),
            [StepStatus::Done, StepStatus::Submitting]
        );
        assert_eq!(loaded.journal_seq, 2);

        // Appending again first cuts the torn entry off.
        let mut journal = ManifestJournal::open(&run).expect("reopened");
        journal
            .append(3, vec![step("b", StepStatus::Done)])
            .expect("3");
        let loaded = Manifest::load(&run).expect("loaded again");
        assert_eq!(statuses(&loaded), [StepStatus::Done, StepStatus::Done]);
    }

    #[test]
    fn entries_the_manifest_already_includes_are_skipped() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (run, mut manifest, _) = journaled_run(&tmp);
        // The manifest was rewritten with entry 1 and a newer state of `a`, and the process died
        // before removing the journal.
        manifest.steps[0].status = StepStatus::Done;
        manifest.journal_seq = 1;
        run.replace(MANIFEST_FILE, &manifest.to_json().expect("json"))
            .expect("replaced");
        let loaded = Manifest::load(&run).expect("loaded");
        assert_eq!(
            statuses(&loaded),
            [StepStatus::Done, StepStatus::Pending],
            "the older journal entry does not undo the newer manifest"
        );
        manifest.save(&run).expect("saved");
        assert!(
            !run.path().join(JOURNAL_FILE).exists(),
            "saving folds the journal in"
        );
    }

    #[test]
    fn a_first_save_brings_an_empty_journal_that_a_torn_first_entry_leaves_unchanged() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = run_in(&tmp, "r1");
        let mut manifest = Manifest::new(RunKind::Pipeline, "r1");
        manifest.steps = vec![step("a", StepStatus::Pending)];
        manifest
            .save_first(&run, &[("pipeline.yaml", b"version: 1\n")])
            .expect("saved");
        for name in [MANIFEST_FILE, JOURNAL_FILE, "pipeline.yaml"] {
            let mode = fs_err::metadata(run.path().join(name))
                .expect(name)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let read = |name: &str| fs_err::read(run.path().join(name)).expect(name);
        assert_eq!(read("pipeline.yaml"), b"version: 1\n");
        assert!(read(JOURNAL_FILE).is_empty());
        assert_eq!(
            statuses(&Manifest::load(&run).expect("loaded")),
            [StepStatus::Pending]
        );

        // The process died while writing the journal's first entry.
        fs_err::write(run.path().join(JOURNAL_FILE), br#"{"seq":1,"st"#).expect("torn");
        assert_eq!(
            statuses(&Manifest::load(&run).expect("loaded")),
            [StepStatus::Pending]
        );
        let mut journal = ManifestJournal::open(&run).expect("reopened");
        journal
            .append(1, vec![step("a", StepStatus::Done)])
            .expect("1");
        assert_eq!(
            statuses(&Manifest::load(&run).expect("loaded")),
            [StepStatus::Done]
        );
    }

    #[test]
    fn a_damaged_entry_before_the_last_is_corruption() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (run, _, _) = journaled_run(&tmp);
        let path = run.path().join(JOURNAL_FILE);
        let mut text = fs_err::read_to_string(&path).expect("read");
        text.insert_str(0, "{not json}\n");
        fs_err::write(&path, text).expect("write");
        let error = Manifest::load(&run).expect_err("corrupt");
        assert_eq!(acgs_core::UserFacing::code(&error), "storage.corrupt");
        assert!(error.to_string().contains("entry 1"), "{error}");
    }
}
