//! Stage 14: one audit entry per outcome — success, refusal, failure, override — built here for
//! every entrance, so that the same outcome reads the same whoever caused it.

use acgs_core::Usd;
use acgs_core::audit::{AuditEvent, AuditOutcome};
use acgs_core::error::{ErrorKind, UserFacing};

use crate::plan::Plan;
use crate::request::GenerationRequest;
use crate::services::Services;

pub(crate) use crate::run_state::record_all;

/// An event attributed to the suite's caller: its user, entrance and session.
fn who(services: &Services) -> AuditEvent {
    let caller = &services.caller;
    AuditEvent {
        user: caller.user.clone(),
        origin: caller.origin,
        session: caller.session.clone(),
        ..AuditEvent::default()
    }
}

/// The audit outcome of an error: refusals happen before anything is sent.
#[must_use]
pub(crate) fn outcome_of(error: &dyn UserFacing, sent: bool) -> AuditOutcome {
    match error.kind() {
        ErrorKind::Guard | ErrorKind::Money | ErrorKind::Usage if !sent => AuditOutcome::Refused,
        _ if error.exit_code() >= 128 => AuditOutcome::Cancelled,
        _ => AuditOutcome::Failed,
    }
}

/// The entries of `plan`'s outcome: one, and for a success that needed overrides, an override
/// entry naming them.
pub(crate) fn step_entries(
    services: &Services,
    plan: &Plan,
    outcome: AuditOutcome,
    code: Option<&str>,
    actual: Option<Usd>,
    request_id: Option<String>,
) -> Vec<AuditEvent> {
    let key = services.key(plan.model.provider);
    let event = AuditEvent {
        operation: "generate".into(),
        run_id: Some(plan.run_id.clone()),
        step: Some(plan.step.clone()),
        provider: Some(plan.model.provider),
        model: Some(plan.model.key.clone()),
        request_id,
        prompt: Some(plan.prompt()),
        estimate: Some(plan.quote.amount),
        actual,
        key_fingerprint: Some(key.fingerprint).filter(|f| !f.is_empty()),
        key_source: Some(key.source).filter(|s| !s.is_empty()),
        outcome: Some(outcome),
        code: code.map(str::to_owned),
        ..who(services)
    };
    let mut entries = vec![event.clone()];
    if outcome == AuditOutcome::Success && !plan.verdict.overrides.is_empty() {
        entries.push(AuditEvent {
            outcome: Some(AuditOutcome::Override),
            code: Some(plan.verdict.overrides.join(",")),
            ..event
        });
    }
    entries
}

/// The entry of a request refused before anything was reserved or sent: by the guard, the
/// budget, the confirmation, the provider's preflight, or a plan that could not be made.
pub(crate) fn refusal(
    services: &Services,
    request: &GenerationRequest,
    plan: Option<&Plan>,
    step: &str,
    error: &dyn UserFacing,
) -> AuditEvent {
    let model = plan
        .map(|p| std::sync::Arc::clone(&p.model))
        .or_else(|| services.catalog.resolve(&request.model).ok());
    AuditEvent {
        operation: "generate".into(),
        run_id: plan.map(|p| p.run_id.clone()),
        step: Some(step.to_owned()),
        provider: model.as_ref().map(|m| m.provider),
        model: model.as_ref().map(|m| m.key.clone()),
        prompt: Some(plan.map_or_else(|| raw_prompt(request), Plan::prompt)),
        estimate: plan.map(|p| p.quote.amount),
        outcome: Some(outcome_of(error, false)),
        code: Some(error.code().to_owned()),
        ..who(services)
    }
}

/// The entry of a call an entrance refused before it became a request (arguments that do not
/// match, a file it may not read): `operation` names the call (`mcp.generate`).
pub(crate) fn refused_call(services: &Services, operation: &str, code: &str) -> AuditEvent {
    AuditEvent {
        operation: operation.to_owned(),
        outcome: Some(AuditOutcome::Refused),
        code: Some(code.to_owned()),
        ..who(services)
    }
}

/// The entry of a change the caller made outside the guarded path (an admin's change of a
/// user, a token or a limit): what it changed is in `step`.
pub(crate) fn change(services: &Services, operation: &str, subject: &str) -> AuditEvent {
    AuditEvent {
        operation: operation.to_owned(),
        outcome: Some(AuditOutcome::Success),
        step: Some(subject.to_owned()),
        ..who(services)
    }
}

/// The user text of a request no plan was made of (its texts as given, system last).
fn raw_prompt(request: &GenerationRequest) -> String {
    request
        .texts
        .iter()
        .filter(|(flag, _)| *flag != "system")
        .map(|(_, text)| text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The entry of a spend alert: the day's spend crossed `percent` % of the daily limit.
pub(crate) fn alert(services: &Services, run_id: &str, spent: Usd, percent: u32) -> AuditEvent {
    AuditEvent {
        operation: "spend.alert".into(),
        run_id: Some(run_id.to_owned()),
        estimate: Some(spent),
        outcome: Some(AuditOutcome::Alert),
        code: Some(format!("budget.alert_{percent}")),
        ..who(services)
    }
}

/// The entry of a `submitted` reservation written off at its estimate, by `acgs spend
/// abandon` (`code` `spend.abandon`) or `acgs resume --resubmit` (`run.resubmit`).
pub(crate) fn write_off(
    services: &Services,
    record: &acgs_core::ledger::ReservationRecord,
    actual: Option<Usd>,
    code: &str,
) -> AuditEvent {
    AuditEvent {
        operation: "spend.abandon".into(),
        run_id: Some(record.run_id.clone()),
        step: Some(record.step.clone()),
        model: Some(record.model.clone()),
        estimate: Some(record.estimate),
        actual,
        outcome: Some(AuditOutcome::Override),
        code: Some(code.to_owned()),
        ..who(services)
    }
}

/// The entry of a pipeline run's end, after its steps': what it reserved and spent in all,
/// and how many steps did not finish.
pub(crate) fn run_summary(
    services: &Services,
    run_id: &str,
    (estimate, actual): (Usd, Usd),
    failed: usize,
) -> AuditEvent {
    AuditEvent {
        operation: "pipeline".into(),
        run_id: Some(run_id.to_owned()),
        estimate: Some(estimate),
        actual: Some(actual),
        outcome: Some(if failed == 0 {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failed
        }),
        code: (failed > 0).then(|| "pipeline.step_failed".to_owned()),
        ..who(services)
    }
}

/// Append `events` now, in order; the warning if they could not be written.
pub(crate) fn record(services: &Services, events: Vec<AuditEvent>) -> Option<String> {
    let sink = services.audit.as_ref()?;
    record_all(sink.as_ref(), events)
}
