//! Stage 12: settle the reservation as soon as the provider reports completion — at the actual
//! cost from reported usage, else at the estimate — and apply the charge table to failures.

use acgs_core::Usd;
use acgs_core::catalog::{ModelSpec, Params};
use acgs_core::ledger::{Ledger, LedgerError, ReservationId, Settlement};
use acgs_core::provider::Charge;
use acgs_core::request::Usage;

/// The actual cost of `requests` requests with this usage, or the estimate when usage does not
/// carry what the price needs.
#[must_use]
pub fn actual_cost(model: &ModelSpec, params: &Params, usage: &Usage, estimate: Usd) -> Usd {
    model
        .pricing
        .as_ref()
        .and_then(|p| p.actual(params, usage))
        .unwrap_or(estimate)
}

/// Settle at `actual`.
pub async fn settle(
    ledger: &dyn Ledger,
    id: &ReservationId,
    actual: Usd,
) -> Result<Settlement, LedgerError> {
    ledger.settle(id, actual).await
}

/// Apply the charge table to a failed request: release, or settle at the estimate.
pub async fn charge_failure(
    ledger: &dyn Ledger,
    id: &ReservationId,
    charge: Charge,
    estimate: Usd,
) -> Result<Usd, LedgerError> {
    match charge {
        Charge::Release => ledger.release(id).await.map(|()| Usd::ZERO),
        Charge::Estimate => ledger.settle(id, estimate).await.map(|s| s.actual),
    }
}
