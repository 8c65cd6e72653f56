//! Admission: the part of the guarded path that decides whether money may move (stages 3's
//! external moderation and 6, with the provider's preflight between them). A run is admitted
//! whole — every step whose request is final moderated and preflighted, the total against the
//! limits, one confirmation, every reservation or none, alerts — and a step planned with
//! stand-ins is admitted again when it runs, within what was reserved for it. Every refusal is
//! audited here.

use std::collections::BTreeMap;

use acgs_core::config::CostManagement;
use acgs_core::ledger::Reservation;
use acgs_core::provider::EventSink;
use acgs_core::request::Request;
use acgs_core::{Usd, UserFacing as _};
use acgs_storage::manifest::StepStatus;

use crate::error::EngineError;
use crate::plan::Plan;
use crate::request::GenerationRequest;
use crate::run_state::RunState;
use crate::services::Services;
use crate::stages::{audit, authorize, inspect};

/// What admission granted: each step's reservation, and the provider's preflight warnings.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// In the order of the plans.
    pub(crate) reservations: Vec<Reservation>,
    /// By step.
    pub(crate) warnings: BTreeMap<String, Vec<String>>,
}

/// A refusal and the step it concerns (`None`: the whole run).
type Refusal = (Option<String>, EngineError);

/// Admit run `run_id` of `plans` under `cost`, asking to confirm `what`. A refusal leaves nothing
/// reserved and is audited: for the step refused, or for every step when the run is.
pub(crate) async fn admit(
    services: &Services,
    (run_id, what): (&str, &str),
    plans: &[Plan],
    cost: &CostManagement,
    events: &EventSink,
) -> Result<Admitted, EngineError> {
    match try_admit(services, (run_id, what), plans, cost, events).await {
        Ok(admitted) => Ok(admitted),
        Err((step, error)) => {
            let entries = plans
                .iter()
                .filter(|p| step.as_ref().is_none_or(|s| *s == p.step))
                .map(|p| audit::refusal(services, &p.request, Some(p), &p.step, &error))
                .collect();
            audit::record(services, entries);
            Err(error)
        }
    }
}

async fn try_admit(
    services: &Services,
    run: (&str, &str),
    plans: &[Plan],
    cost: &CostManagement,
    events: &EventSink,
) -> Result<Admitted, Refusal> {
    let mut warnings = BTreeMap::new();
    for plan in plans.iter().filter(|p| !p.provisional) {
        let found = check_step(services, plan)
            .await
            .map_err(|e| (Some(plan.step.clone()), e))?;
        warnings.insert(plan.step.clone(), found);
    }
    let ledger = services.ledger().map_err(|e| (None, e))?;
    let reservations = authorize::authorize(services, ledger.as_ref(), run, plans, cost, events)
        .await
        .map_err(|e| (None, e))?;
    Ok(Admitted {
        reservations,
        warnings,
    })
}

/// Admit a step planned again when it runs (its request was provisional): it may cost at most
/// the `reserved` amount, and is moderated and preflighted. Returns the preflight's warnings.
pub(crate) async fn admit_step(
    services: &Services,
    plan: &Plan,
    reserved: Usd,
) -> Result<Vec<String>, EngineError> {
    if plan.quote.amount > reserved {
        return Err(EngineError::OverStepEstimate {
            step: plan.step.clone(),
            needed: plan.quote.amount,
            reserved,
        });
    }
    check_step(services, plan).await
}

/// Refuse step `step` of `run` when it was about to run: its reservation released, its record
/// failed with the refusal's code, and the refusal audited.
pub(crate) async fn refuse_step(
    services: &Services,
    run: &RunState,
    (step, request, plan): (&str, &GenerationRequest, Option<&Plan>),
    reservation: &Reservation,
    error: &EngineError,
) {
    if let Some(ledger) = &services.ledger {
        let _ = ledger.release(&reservation.id).await;
    }
    let code = error.code();
    let _ = run
        .update_step(step, |s| {
            s.status = StepStatus::Failed;
            s.error_code = Some(code.to_owned());
            s.timings.finished_at = Some(jiff::Timestamp::now());
        })
        .await;
    let mut entry = audit::refusal(services, request, plan, step, error);
    entry.run_id = Some(run.run_id());
    audit::record(services, vec![entry]);
}

/// External moderation of every inspected text, then the provider's preflight; its warnings.
async fn check_step(services: &Services, plan: &Plan) -> Result<Vec<String>, EngineError> {
    inspect::moderate(&services.moderators, &plan.texts).await?;
    let provider = services.provider(plan.model.provider)?;
    Ok(provider.preflight(&wire_request(plan)).await?)
}

/// The request `plan` sends (before its inputs are uploaded).
pub(crate) fn wire_request(plan: &Plan) -> Request {
    Request {
        run_id: plan.run_id.clone(),
        step: plan.step.clone(),
        model: std::sync::Arc::clone(&plan.model),
        params: plan.params.clone(),
        system: plan.system.clone(),
        text_events: None,
    }
}
