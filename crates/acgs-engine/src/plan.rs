//! [`Plan`]: everything decided about one step before any money moves.

use std::sync::Arc;

use acgs_core::catalog::{ModelSpec, Params};
use acgs_core::pricing::Quote;
use acgs_core::request::Verdict;
use acgs_core::task::{MediaKind, TaskKind};
use acgs_guard::budget::SpendDecision;

use crate::inputs::OpenedInputs;
use crate::request::GenerationRequest;

/// The step id of a single generation.
pub const MAIN_STEP: &str = "main";

/// Everything decided before any money moves: stages 1–5 (resolve, validate, inspect, template,
/// price) for one step, and what the per-run limit says of its worst case.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The run id this generation will use.
    pub run_id: String,
    /// The step id within the run (`main` for single commands).
    pub step: String,
    /// The resolved model.
    pub model: Arc<ModelSpec>,
    /// Wire parameters, inspected text templated in.
    pub params: Params,
    /// System instruction (text models).
    pub system: Option<String>,
    /// Requests to send.
    pub requests: u32,
    /// Worst case, margin included.
    pub quote: Quote,
    /// Warnings and overrides (overrides are audited with the outcome).
    pub verdict: Verdict,
    /// What the sanitizer changed.
    pub sanitizer_changes: Vec<String>,
    /// Whether to warn and confirm; `None` for a plan rebuilt by `acgs resume` for a job that
    /// was authorized before.
    pub spend: Option<SpendDecision>,
    /// Made with stand-ins for what earlier steps of a pipeline have not made yet: it is made
    /// again, moderated and preflighted when the step runs, and may cost at most its estimate.
    pub provisional: bool,
    /// File stem for outputs.
    pub stem: String,
    /// Whether the user chose the stem.
    pub stem_named: bool,
    /// Local inputs, opened and checked (none for a rebuilt plan: its inputs were sent).
    pub inputs: OpenedInputs,
    /// The request this plan was made from.
    pub request: GenerationRequest,
    /// Inspected texts by flag, the system instruction last: what moderators judge and what the
    /// audit digests.
    pub(crate) texts: Vec<(String, String)>,
}

impl Plan {
    /// The user text of the request (every inspected text but the system instruction), for the
    /// audit log's length and digest.
    pub(crate) fn prompt(&self) -> String {
        self.texts
            .iter()
            .filter(|(flag, _)| flag != "system")
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The file stem of a task's outputs when the user names none.
pub(crate) fn default_stem(task: TaskKind) -> String {
    if task == TaskKind::SpeechToText {
        return "transcript".into();
    }
    match task.output() {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Text => "text",
    }
    .into()
}
