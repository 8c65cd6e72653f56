//! Where things are, read-only: a run (its manifest's word on each step beside the ledger's —
//! the run folder may have been edited, so the ledger's state is the one that counts for money)
//! and the caller's spend (today against the daily limit, each of its scopes against its own).

use std::path::PathBuf;

use acgs_core::Usd;
use acgs_core::ledger::{DaySpend, ReservationState, ScopeSpend};
use acgs_storage::manifest::{RunKind, StepStatus};
use serde::Serialize;

use crate::error::EngineError;
use crate::history::RunOutcome;
use crate::services::Services;
use crate::stages::authorize::effective_limits;

/// A run as its folder and the ledger describe it.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The run.
    pub run_id: String,
    /// One generation or a pipeline.
    pub kind: RunKind,
    /// Its folder.
    pub folder: PathBuf,
    /// When it was made.
    pub created_at: jiff::Timestamp,
    /// How it ended, from its steps.
    pub status: RunOutcome,
    /// What was asked (the first step's prompt or text, or a pipeline's first text input).
    pub prompt: Option<String>,
    /// Each step, in the manifest's order.
    pub steps: Vec<StepState>,
}

impl RunStatus {
    /// Whether `resume` has anything left to do: a step not done.
    #[must_use]
    pub fn resumable(&self) -> bool {
        self.steps.iter().any(|s| s.status != StepStatus::Done)
    }
}

/// One step of a [`RunStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct StepState {
    /// The step id.
    pub step: String,
    /// Its model.
    pub model: String,
    /// What the manifest says.
    pub status: StepStatus,
    /// What the ledger says of its newest reservation (none: never reserved).
    pub reservation: Option<ReservationState>,
    /// The reservation's worst case.
    pub estimate: Option<Usd>,
    /// What it cost, once settled.
    pub actual: Option<Usd>,
    /// Its stored files (names that would leave the folder are left out).
    pub outputs: Vec<OutputState>,
    /// The stable code of its failure.
    pub error_code: Option<String>,
}

/// One stored file of a step.
#[derive(Debug, Clone, Serialize)]
pub struct OutputState {
    /// Absolute path.
    pub path: PathBuf,
    /// MIME type acgs sniffed when it stored the file.
    pub content_type: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The status of run `run_id`, found through the runs index.
pub(crate) async fn status(services: &Services, run_id: &str) -> Result<RunStatus, EngineError> {
    let (dir, manifest) = crate::run_state::find_run(services.runs()?, run_id)?;
    // Reservations are made after the manifest: none of the run's is older than the day
    // before it was created (the ledger's days are local to its time zone).
    let since = manifest
        .created_at
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(manifest.created_at)
        .strftime("%Y-%m-%d")
        .to_string();
    let mut rows = services.ledger()?.reservations(Some(&since)).await?;
    rows.retain(|r| r.run_id == manifest.run_id);
    let steps = manifest
        .steps
        .iter()
        .map(|record| {
            // Newest first: the first row of a step is its newest reservation.
            let newest = rows.iter().find(|r| r.step == record.id);
            StepState {
                step: record.id.clone(),
                model: record.model.clone(),
                status: record.status,
                reservation: newest.map(|r| r.state),
                estimate: newest.map(|r| r.estimate),
                actual: newest.and_then(|r| r.actual),
                outputs: record
                    .outputs
                    .iter()
                    .filter(|o| is_plain_name(&o.path))
                    .map(|o| OutputState {
                        path: dir.path().join(&o.path),
                        content_type: o.content_type.clone(),
                        bytes: o.bytes,
                    })
                    .collect(),
                error_code: record.error_code.clone(),
            }
        })
        .collect();
    Ok(RunStatus {
        run_id: manifest.run_id.clone(),
        kind: manifest.kind,
        folder: dir.path().to_owned(),
        created_at: manifest.created_at,
        status: RunOutcome::of(manifest.steps.iter().map(|s| s.status)),
        prompt: crate::history::prompt_of(&manifest),
        steps,
    })
}

/// What the caller may still spend: the day in the limits' time zone, and each of its scopes.
#[derive(Debug, Clone, Serialize)]
pub struct SpendNow {
    /// Today's spend.
    pub today: DaySpend,
    /// The daily limit in force (tightened by a shared ledger's).
    pub daily_limit: Usd,
    /// The per-run limit in force.
    pub max_cost_per_run: Usd,
    /// The caller's scopes (an agent session's allowance).
    pub scopes: Vec<ScopeNow>,
}

impl SpendNow {
    /// What the next reservation may be at most: the least room left anywhere.
    #[must_use]
    pub fn remaining(&self) -> Usd {
        let day = self.daily_limit.saturating_sub(self.today.total());
        self.scopes
            .iter()
            .map(ScopeNow::remaining)
            .fold(day.min(self.max_cost_per_run), Usd::min)
            .max(Usd::ZERO)
    }
}

/// One scope of a [`SpendNow`].
#[derive(Debug, Clone, Serialize)]
pub struct ScopeNow {
    /// What it counts.
    pub spend: ScopeSpend,
    /// Its limit.
    pub limit: Usd,
}

impl ScopeNow {
    /// Room left under its limit.
    #[must_use]
    pub fn remaining(&self) -> Usd {
        self.limit.saturating_sub(self.spend.total()).max(Usd::ZERO)
    }
}

/// The spend of the caller of `services`.
pub(crate) async fn spend(services: &Services) -> Result<SpendNow, EngineError> {
    let ledger = services.ledger()?;
    let shared = acgs_core::ledger::shared_limits(ledger.as_ref()).await?;
    let cost = effective_limits(&services.config.cost_management, &shared);
    let today = ledger.today(&cost.timezone).await?;
    let mut scopes = Vec::new();
    for scope in &services.caller.scopes {
        scopes.push(ScopeNow {
            spend: ledger.scope_spend(&scope.scope).await?,
            limit: scope.limit,
        });
    }
    Ok(SpendNow {
        today,
        daily_limit: cost.daily_limit,
        max_cost_per_run: cost.max_cost_per_run,
        scopes,
    })
}

/// A file name with no folder part: what acgs writes, and all a status may point at.
fn is_plain_name(name: &str) -> bool {
    let path = std::path::Path::new(name);
    !name.is_empty() && path.file_name().is_some_and(|n| n == name) && name != ".."
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names_are_shown() {
        for name in ["a.png", "step-1.mp4"] {
            assert!(super::is_plain_name(name), "{name}");
        }
        for name in ["", "..", ".", "../x", "/etc/passwd", "a/b"] {
            assert!(!super::is_plain_name(name), "{name}");
        }
    }
}
