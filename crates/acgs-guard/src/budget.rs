//! Budget policy over the ledger: the per-run limit, the warning threshold and confirmation.
//! The daily limit is enforced atomically by the ledger's `reserve`.

use acgs_core::Usd;
use acgs_core::config::CostManagement;

use crate::error::GuardError;

/// What the policy asks of the caller before spending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendDecision {
    /// The estimate is at or above `warn_threshold`: warn in any case.
    pub warn: bool,
    /// Ask for confirmation (or require `--yes` without a terminal).
    pub confirm: bool,
}

/// Check a run's worst-case `estimate` against the per-run limit.
pub fn check_run(estimate: Usd, cost: &CostManagement) -> Result<SpendDecision, GuardError> {
    if estimate > cost.max_cost_per_run {
        return Err(GuardError::OverRunLimit {
            estimate,
            limit: cost.max_cost_per_run,
        });
    }
    Ok(SpendDecision {
        warn: estimate >= cost.warn_threshold && estimate > Usd::ZERO,
        confirm: cost.require_confirmation && estimate > Usd::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_warnings_and_confirmation() {
        let cost = CostManagement::default();
        assert!(check_run(Usd::from_dollars(11), &cost).is_err());
        let d = check_run(Usd::from_dollars(10), &cost).expect("at the limit is allowed");
        assert!(d.warn && d.confirm);
        let d = check_run(Usd::parse("0.025").expect("usd"), &cost).expect("small");
        assert!(!d.warn && d.confirm);
        let d = check_run(Usd::ZERO, &cost).expect("free");
        assert!(!d.confirm);
    }
}
