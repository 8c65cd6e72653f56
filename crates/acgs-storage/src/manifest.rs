//! The run manifest, which is also the checkpoint (DESIGN.md §3.6). It is rewritten atomically on
//! every state change.

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
    pub request: Option<serde_json::Value>,
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
}

impl Manifest {
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
        }
    }

    /// The step with this id.
    pub fn step_mut(&mut self, id: &str) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    /// Write atomically into the run folder.
    pub fn save(&self, run: &RunDir) -> Result<()> {
        run.replace(MANIFEST_FILE, &self.to_json()?)
    }

    /// The manifest as the JSON written to disk.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| StorageError::Corrupt {
            path: std::path::PathBuf::from(MANIFEST_FILE),
            reason: e.to_string(),
        })
    }

    /// Read the manifest of a run folder.
    pub fn load(run: &RunDir) -> Result<Self> {
        let bytes = run.read(MANIFEST_FILE, 16 * 1024 * 1024)?;
        let corrupt = |reason: String| StorageError::Corrupt {
            path: run.path().join(MANIFEST_FILE),
            reason,
        };
        let manifest: Self = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if manifest.schema_version != MANIFEST_SCHEMA {
            return Err(corrupt(format!(
                "unsupported schema version {}",
                manifest.schema_version
            )));
        }
        Ok(manifest)
    }
}
