//! What a run reports when it ends: [`RunReport`] for one generation, [`PipelineReport`] for a
//! pipeline, [`Resumed`] for either.

use std::path::PathBuf;

use acgs_core::Usd;
use acgs_guard::budget::SpendDecision;
use acgs_storage::manifest::StepStatus;
use acgs_storage::output::StoredFile;

use crate::plan::Plan;

/// The result of one generation (a single command, or one step of a pipeline).
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run id.
    pub run_id: String,
    /// The run folder.
    pub folder: PathBuf,
    /// The model key.
    pub model: String,
    /// Stored files.
    pub outputs: Vec<StoredFile>,
    /// Worst case that was reserved.
    pub estimate: Usd,
    /// Settled cost.
    pub actual: Usd,
    /// Provider request id.
    pub request_id: Option<String>,
    /// Warnings (flagged outputs dropped, overruns, audit trouble).
    pub warnings: Vec<String>,
}

impl RunReport {
    /// The file holding what a text model wrote or a transcription heard: the plain text first
    /// (a transcript also comes as JSON word timings and subtitles), else the JSON.
    #[must_use]
    pub fn text_output(&self) -> Option<&StoredFile> {
        let of = |kind| self.outputs.iter().find(|o| o.content_type == kind);
        of(acgs_core::ContentType::Text).or_else(|| of(acgs_core::ContentType::Json))
    }
}

/// The worst case of every step of a pipeline, and of the whole run.
#[derive(Debug, Clone)]
pub struct PipelineEstimate {
    /// Each step's plan, in dependency order.
    pub steps: Vec<Plan>,
    /// Their sum.
    pub total: Usd,
    /// What the limits ask for.
    pub spend: SpendDecision,
}

/// How one step of a pipeline run ended.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The step.
    pub step: String,
    /// Its model.
    pub model: String,
    /// Its status.
    pub status: StepStatus,
    /// Its files.
    pub outputs: Vec<StoredFile>,
    /// Reserved.
    pub estimate: Usd,
    /// Settled.
    pub actual: Usd,
    /// Why it failed (code, sentence), or why it did not run.
    pub error: Option<(String, String)>,
}

/// A pipeline run's result.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// The run.
    pub run_id: String,
    /// Its folder.
    pub folder: PathBuf,
    /// Every step, in dependency order.
    pub steps: Vec<StepOutcome>,
    /// Reserved in all.
    pub estimate: Usd,
    /// Settled in all.
    pub actual: Usd,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl PipelineReport {
    /// Steps that did not finish.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s.status, StepStatus::Done | StepStatus::Skipped))
            .count()
    }
}

/// What `acgs resume` finished.
#[derive(Debug, Clone)]
pub enum Resumed {
    /// A single generation.
    Single(RunReport),
    /// A pipeline run.
    Pipeline(PipelineReport),
}
