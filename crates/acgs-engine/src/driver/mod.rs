//! The one driver of the guarded path. Every entrance — a single command, a pipeline's
//! scheduler, `acgs resume`, and the library calls behind them — turns its input into plans and
//! calls these, in this order:
//!
//! 1. [`prepare`]: stages 1–5 for each step (no network, no key, no money);
//! 2. [`start`]: admission of the whole run ([`admit`]: moderation, preflight, limits, one
//!    confirmation, every reservation or none, alerts, the audit entry of any refusal), then its
//!    run folder and manifest;
//! 3. for each step, [`Attempt::run`]: stages 7–14, and the one place a failure is booked. A step
//!    planned with stand-ins is first made again on what exists and admitted again
//!    ([`admit_step`], or [`refuse_step`]).
//!
//! `acgs resume` enters the attempt at Wait for a step the ledger shows as sent. The driver
//! knows nothing of pipelines: a scheduler learns of a step's answer through a
//! [`StepObserver`].

mod admit;
mod attempt;
mod prepare;

use acgs_core::Provider;
use acgs_core::config::CostManagement;
use acgs_core::ledger::Reservation;
use acgs_core::provider::EventSink;
use acgs_core::request::{Artifact, RemoteRef};
use acgs_storage::StorageError;
use acgs_storage::manifest::{Manifest, StepRecord, Timings};
use acgs_storage::output::OutputRoot;

pub(crate) use admit::{Admitted, admit, admit_step, refuse_step};
pub(crate) use attempt::{Attempt, Entry};
pub(crate) use prepare::prepare;

use crate::error::EngineError;
use crate::plan::Plan;
use crate::run_state::RunState;
use crate::services::Services;

/// Learns what a running step does, besides its progress events.
pub(crate) trait StepObserver: Send + Sync {
    /// Step `step`'s answer is in hand and checked (flagged outputs dropped), before it is
    /// stored and settled.
    fn answered(&self, step: &str, artifacts: &[Artifact]);
}

/// An observer that learns nothing.
pub(crate) struct Unobserved;

impl StepObserver for Unobserved {
    fn answered(&self, _: &str, _: &[Artifact]) {}
}

/// Start run `run_id` of `plans`: admit it (asking to confirm `what`), then create its folder
/// with the manifest `manifest` builds from the reservations, and `files` beside it. A folder
/// that cannot be made releases every reservation.
pub(crate) async fn start(
    services: &Services,
    (run_id, what): (&str, &str),
    plans: &[Plan],
    cost: &CostManagement,
    (manifest, files): (
        impl FnOnce(&[Reservation]) -> Manifest,
        Vec<(&'static str, String)>,
    ),
    events: &EventSink,
) -> Result<(RunState, Admitted), EngineError> {
    let admitted = admit(services, (run_id, what), plans, cost, events).await?;
    let manifest = manifest(&admitted.reservations);
    match create_run(services, manifest, files).await {
        Ok(run) => Ok((run, admitted)),
        Err(e) => {
            if let Ok(ledger) = services.ledger() {
                for r in &admitted.reservations {
                    let _ = ledger.release(&r.id).await;
                }
            }
            Err(e)
        }
    }
}

/// Admit `plans` again in the existing `run` (`acgs resume`), asking to confirm `what`: each
/// step's record is then reset for a new attempt paid by its new reservation.
pub(crate) async fn restart(
    services: &Services,
    run: &RunState,
    what: &str,
    plans: &[Plan],
    cost: &CostManagement,
    events: &EventSink,
) -> Result<Admitted, EngineError> {
    let run_id = run.run_id();
    let admitted = admit(services, (&run_id, what), plans, cost, events).await?;
    for (plan, reservation) in plans.iter().zip(&admitted.reservations) {
        let fresh = step_record(plan, reservation);
        run.update_step(&plan.step, |s| *s = fresh).await?;
    }
    Ok(admitted)
}

/// The run folder with its first manifest and `files`, entered in the runs index at the same
/// time (off the async threads).
async fn create_run(
    services: &Services,
    mut manifest: Manifest,
    files: Vec<(&'static str, String)>,
) -> Result<RunState, EngineError> {
    if let Some(key) = &services.record_key {
        manifest.seal_all(key);
    }
    let root = OutputRoot::open(&services.config.output_dir)?;
    let run_id = manifest.run_id.clone();
    let (folder, index) = (root.path().join(&run_id), services.runs.clone());
    let id = run_id.clone();
    let indexed = tokio::task::spawn_blocking(move || match index {
        Some(runs) => runs.append(&id, &folder),
        None => Ok(()),
    });
    let first = manifest.clone();
    let id_for_mark = first.run_id.clone();
    let created = tokio::task::spawn_blocking(move || {
        let dir = root.create_run(&run_id)?;
        let extra: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        first.save_first(&dir, &extra)?;
        Ok::<_, StorageError>(dir)
    });
    // The ledger remembers that this run's records are sealed, so that stripping the seals from
    // its folder cannot pass it off as a run written before records were sealed.
    let marked = async {
        match (&services.record_key, &services.ledger) {
            (Some(_), Some(ledger)) => ledger
                .set_meta(&sealed_meta(&id_for_mark), "1", false)
                .await
                .map(|_| ()),
            _ => Ok(()),
        }
    };
    let (created, indexed, marked) = tokio::join!(created, indexed, marked);
    let stopped = |e: tokio::task::JoinError| StorageError::Io {
        what: "creating the run folder".into(),
        source: std::io::Error::other(e),
    };
    let dir = created.map_err(stopped)??;
    indexed.map_err(stopped)??;
    marked?;
    Ok(RunState::new(dir, manifest).sealed_by(services.record_key.clone()))
}

/// The ledger `meta` key that marks run `run_id`'s records as sealed.
pub(crate) fn sealed_meta(run_id: &str) -> String {
    format!("sealed:{run_id}")
}

/// A new manifest record for `plan`'s step, paid for by `reservation`.
pub(crate) fn step_record(plan: &Plan, reservation: &Reservation) -> StepRecord {
    StepRecord {
        params: plan.params.clone(),
        estimate: Some(plan.quote.amount),
        reservation_id: Some(reservation.id.clone()),
        timings: Timings::default(),
        request: Some(plan.request.record()),
        ..StepRecord::pending(&plan.step, &plan.model.key, &plan.model.endpoint)
    }
}

/// Delete what the upload stage left on the provider for one request (Gemini files) once the
/// provider has answered it; a failure is a warning (such files expire on their own).
async fn delete_uploads(provider: &dyn Provider, uploads: &[RemoteRef]) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in uploads.iter().filter_map(|r| r.delete_after_run.as_deref()) {
        if let Err(e) = provider.delete_upload(name).await {
            warnings.push(format!(
                "an uploaded input could not be deleted from the provider ({e}); it expires on its own"
            ));
        }
    }
    warnings
}
