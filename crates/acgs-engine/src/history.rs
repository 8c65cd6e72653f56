//! The runs this machine made (`acgs runs`), newest first: what was asked, how it ended, what it
//! cost and where its files are — read from the runs index and each run's manifest. A manifest
//! is read, not trusted: a summary is for people, and a question of money goes to the ledger
//! (`Suite::run_status`).

use std::path::PathBuf;

use acgs_core::Usd;
use acgs_storage::manifest::{Manifest, RunKind, StepRecord, StepStatus};
use serde::Serialize;

use crate::error::EngineError;
use crate::services::Services;

/// How a run ended, from its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every step is done.
    Done,
    /// A step failed.
    Failed,
    /// A step was cancelled (and none failed).
    Cancelled,
    /// A step is still waiting, sent or being sent: `acgs resume` finishes it.
    Unfinished,
}

impl RunOutcome {
    /// How steps in these states add up: a failure first, then a cancellation, then anything
    /// left to do.
    #[must_use]
    pub fn of(steps: impl IntoIterator<Item = StepStatus>) -> Self {
        let mut outcome = Self::Done;
        for status in steps {
            let this = match status {
                StepStatus::Done | StepStatus::Skipped => Self::Done,
                StepStatus::Failed => Self::Failed,
                StepStatus::Cancelled => Self::Cancelled,
                StepStatus::Pending | StepStatus::Submitting | StepStatus::Submitted => {
                    Self::Unfinished
                }
            };
            outcome = outcome.max_with(this);
        }
        outcome
    }

    fn rank(self) -> u8 {
        match self {
            Self::Done => 0,
            Self::Unfinished => 1,
            Self::Cancelled => 2,
            Self::Failed => 3,
        }
    }

    fn max_with(self, other: Self) -> Self {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The word `--status` takes and the table shows.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unfinished => "unfinished",
        }
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs with a step of this model (catalogue key).
    pub model: Option<String>,
    /// Only runs that ended this way.
    pub status: Option<RunOutcome>,
    /// Only runs made at or after this instant.
    pub since: Option<jiff::Timestamp>,
    /// At most this many (newest first); 0 means all.
    pub limit: usize,
}

/// One run of the list.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run.
    pub run_id: String,
    /// When it was made.
    pub created_at: jiff::Timestamp,
    /// One generation or a pipeline.
    pub kind: RunKind,
    /// Its folder: where to open its files.
    pub folder: PathBuf,
    /// How it ended.
    pub status: RunOutcome,
    /// The models of its steps, each once, in step order.
    pub models: Vec<String>,
    /// What was asked: the first step's prompt or text, or a pipeline's first text input.
    pub prompt: Option<String>,
    /// What its steps cost, as the manifest recorded it.
    pub cost: Usd,
    /// How many files it stored.
    pub files: usize,
}

/// The runs `filter` lets through, newest first; runs whose folder or manifest is gone or
/// unreadable are left out.
pub(crate) fn list(
    services: &Services,
    filter: &RunFilter,
) -> Result<Vec<RunSummary>, EngineError> {
    let mut found = Vec::new();
    for entry in services.runs()?.list()? {
        if filter.since.is_some_and(|since| entry.created_at < since) {
            break;
        }
        let Ok((dir, manifest)) = crate::run_state::open_run(&entry) else {
            continue;
        };
        let summary = summary(dir.path().to_owned(), &manifest);
        let wanted = filter.status.is_none_or(|s| s == summary.status)
            && filter
                .model
                .as_ref()
                .is_none_or(|m| summary.models.contains(m));
        if wanted {
            found.push(summary);
            if found.len() == filter.limit {
                break;
            }
        }
    }
    Ok(found)
}

fn summary(folder: PathBuf, manifest: &Manifest) -> RunSummary {
    let mut models: Vec<String> = Vec::new();
    for step in &manifest.steps {
        if !models.contains(&step.model) {
            models.push(step.model.clone());
        }
    }
    let cost = manifest
        .steps
        .iter()
        .filter_map(|s| s.actual)
        .fold(Usd::ZERO, Usd::saturating_add);
    RunSummary {
        run_id: manifest.run_id.clone(),
        created_at: manifest.created_at,
        kind: manifest.kind,
        folder,
        status: RunOutcome::of(manifest.steps.iter().map(|s| s.status)),
        models,
        prompt: prompt_of(manifest),
        cost,
        files: manifest.steps.iter().map(|s| s.outputs.len()).sum(),
    }
}

/// What was asked: the first step's prompt (or text, or question), else a pipeline's first
/// text input.
pub(crate) fn prompt_of(manifest: &Manifest) -> Option<String> {
    let asked = |step: &StepRecord| {
        let texts = &step.request.as_ref()?.texts;
        ["prompt", "text", "question"]
            .iter()
            .find_map(|flag| texts.get(*flag))
            .cloned()
    };
    manifest.steps.iter().find_map(asked).or_else(|| {
        manifest
            .inputs
            .values()
            .find_map(|v| v.as_str().map(str::to_owned))
    })
}

#[cfg(test)]
mod tests {
    use super::{RunOutcome, StepStatus};

    #[test]
    fn a_failure_outweighs_a_cancellation_which_outweighs_work_left() {
        use StepStatus::{Cancelled, Done, Failed, Pending, Submitted};
        assert_eq!(RunOutcome::of([Done, Done]), RunOutcome::Done);
        assert_eq!(RunOutcome::of([Done, Submitted]), RunOutcome::Unfinished);
        assert_eq!(RunOutcome::of([Pending, Cancelled]), RunOutcome::Cancelled);
        assert_eq!(
            RunOutcome::of([Cancelled, Failed, Done]),
            RunOutcome::Failed
        );
        assert_eq!(RunOutcome::of([]), RunOutcome::Done);
    }
}
