//! Stage 12: settle the reservation as soon as the provider reports completion — at the actual
//! cost from reported usage, else at the estimate — and apply the charge table (DESIGN.md §4.5)
//! to failures. A settlement the ledger does not take is journaled for the next command; the
//! reservation keeps counting meanwhile.

use acgs_core::Usd;
use acgs_core::audit::AuditOutcome;
use acgs_core::catalog::{ModelSpec, Params};
use acgs_core::ledger::{Ledger, LedgerError, ReservationId, ReservationState};
use acgs_core::provider::Charge;
use acgs_core::request::Usage;
use acgs_storage::journal::{PendingAction, PendingEntry};

use crate::plan::Plan;
use crate::services::Services;
use crate::stages::audit;

/// The actual cost of `requests` requests with this usage, or the estimate when usage does not
/// carry what the price needs.
#[must_use]
pub(crate) fn actual_cost(model: &ModelSpec, params: &Params, usage: &Usage, estimate: Usd) -> Usd {
    model
        .pricing
        .as_ref()
        .and_then(|p| p.actual(params, usage))
        .unwrap_or(estimate)
}

/// Settle `plan`'s reservation `id` at the actual cost of `usage`: returns that cost, and a
/// warning (audited as `budget.overrun`) when it exceeded the estimate. A reservation settled
/// before (by a process that stopped before recording it) is left as it is.
pub(crate) async fn settle(
    services: &Services,
    ledger: &dyn Ledger,
    plan: &Plan,
    id: &ReservationId,
    (usage, request_id): (&Usage, Option<&String>),
) -> (Usd, Option<String>) {
    let actual = actual_cost(&plan.model, &plan.params, usage, plan.quote.amount);
    match ledger.settle(id, actual).await {
        Ok(settlement) => {
            let Some(over) = settlement.overrun() else {
                return (actual, None);
            };
            let entries = audit::step_entries(
                services,
                plan,
                AuditOutcome::Override,
                Some("budget.overrun"),
                Some(settlement.actual),
                request_id.cloned(),
            );
            audit::record(services, entries);
            (
                actual,
                Some(format!("the actual cost exceeded the estimate by ${over}")),
            )
        }
        Err(LedgerError::InvalidTransition {
            from: Some(ReservationState::Settled),
            ..
        }) => {
            tracing::debug!("the reservation was settled before this process stopped");
            (actual, None)
        }
        Err(e) => {
            tracing::error!(
                code = acgs_core::UserFacing::code(&e),
                "settling failed; the reservation stays counted"
            );
            journal_pending(services, id, PendingAction::Settle { actual });
            (actual, None)
        }
    }
}

/// Apply the charge table to a failed request paid by `id`: release it, or settle it at
/// `estimate`. Trouble settling is journaled (the reservation stays counted).
pub(crate) async fn charge_failure(
    services: &Services,
    ledger: &dyn Ledger,
    id: &ReservationId,
    charge: Charge,
    estimate: Usd,
) {
    let charged = match charge {
        Charge::Release => ledger.release(id).await,
        Charge::Estimate => ledger.settle(id, estimate).await.map(|_| ()),
    };
    if let Err(e) = charged {
        tracing::error!(
            code = acgs_core::UserFacing::code(&e),
            "could not settle a failed request; its reservation stays counted"
        );
        let action = match charge {
            Charge::Release => PendingAction::Release,
            Charge::Estimate => PendingAction::Settle { actual: estimate },
        };
        journal_pending(services, id, action);
    }
}

/// Keep a settlement the ledger did not take for the next command to retry.
fn journal_pending(services: &Services, id: &ReservationId, action: PendingAction) {
    if let Some(journal) = &services.journal {
        let entry = PendingEntry {
            reservation_id: id.clone(),
            action,
        };
        if let Err(e) = journal.record(&entry) {
            tracing::error!(
                code = acgs_core::UserFacing::code(&e),
                "the pending settlement could not be journaled"
            );
        }
    }
}
