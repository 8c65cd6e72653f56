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
        confirm: cost.require_confirmation && estimate > cost.confirm_above.max(Usd::ZERO),
    })
}

/// Limits one run asks for (a pipeline's `settings.cost_management`): each may only tighten the
/// configured ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostOverrides {
    /// A lower per-run limit.
    pub max_cost_per_run: Option<Usd>,
    /// A lower daily limit.
    pub daily_limit: Option<Usd>,
    /// A lower warning threshold.
    pub warn_threshold: Option<Usd>,
    /// Confirmation on (it cannot be turned off).
    pub require_confirmation: Option<bool>,
}

/// `cost` with `overrides` applied, or the name of the first setting that would loosen it.
pub fn tighten(
    cost: &CostManagement,
    overrides: &CostOverrides,
) -> Result<CostManagement, &'static str> {
    let mut out = cost.clone();
    let lower = |current: &mut Usd, wanted: Option<Usd>, key: &'static str| match wanted {
        Some(w) if w > *current => Err(key),
        Some(w) => {
            *current = w;
            Ok(())
        }
        None => Ok(()),
    };
    lower(
        &mut out.max_cost_per_run,
        overrides.max_cost_per_run,
        "max_cost_per_run",
    )?;
    lower(&mut out.daily_limit, overrides.daily_limit, "daily_limit")?;
    lower(
        &mut out.warn_threshold,
        overrides.warn_threshold,
        "warn_threshold",
    )?;
    match overrides.require_confirmation {
        Some(false) if cost.require_confirmation => return Err("require_confirmation"),
        Some(wanted) => out.require_confirmation = wanted,
        None => {}
    }
    Ok(out)
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
        assert!(!d.warn && !d.confirm, "under confirm_above nobody is asked");
        let d = check_run(Usd::parse("0.06").expect("usd"), &cost).expect("above");
        assert!(!d.warn && d.confirm);
        let always = CostManagement {
            confirm_above: Usd::ZERO,
            ..CostManagement::default()
        };
        let d = check_run(Usd::parse("0.0001").expect("usd"), &always).expect("tiny");
        assert!(d.confirm, "confirm_above = 0 asks about any spend");
        let d = check_run(Usd::ZERO, &always).expect("free");
        assert!(!d.confirm);
    }
}
