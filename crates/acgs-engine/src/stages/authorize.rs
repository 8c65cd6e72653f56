//! Stage 6: authorize the spend — the per-run limit, the warning threshold, confirmation, then an
//! atomic reservation against the daily limit. A held reservation's lease is renewed in the
//! background while this process lives.

use std::sync::Arc;
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::config::CostManagement;
use acgs_core::ledger::{Ledger, OwnerToken, ReservationId, SharedLimits};
use acgs_guard::GuardError;
use acgs_guard::budget::{SpendDecision, check_run};
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;

/// The answer to a spending confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmAnswer {
    /// Go ahead.
    Yes,
    /// Do not spend.
    No,
    /// Nobody can be asked (no terminal, no `--yes`).
    Unavailable,
}

/// Asks the user to confirm a worst-case spend.
pub trait Confirm: Send + Sync {
    /// Ask once whether to spend up to `estimate` on `what` (a model key, or a pipeline).
    fn confirm(&self, what: &str, estimate: Usd, warn: bool) -> ConfirmAnswer;
}

/// Confirms everything (`--yes`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeYes;

impl Confirm for AssumeYes {
    fn confirm(&self, _: &str, _: Usd, _: bool) -> ConfirmAnswer {
        ConfirmAnswer::Yes
    }
}

/// The limits in force: the configured ones, tightened by any a shared ledger keeps (clients can
/// only tighten them; a shared ledger's time zone wins).
#[must_use]
pub fn effective_limits(config: &CostManagement, shared: &SharedLimits) -> CostManagement {
    let mut cost = config.clone();
    if let Some(daily) = shared.daily_limit {
        cost.daily_limit = cost.daily_limit.min(daily);
    }
    if let Some(per_run) = shared.max_cost_per_run {
        cost.max_cost_per_run = cost.max_cost_per_run.min(per_run);
    }
    if let Some(zone) = &shared.timezone {
        cost.timezone.clone_from(zone);
    }
    cost
}

/// Per-run limit and confirmation; no money moves here.
pub fn check(
    estimate: Usd,
    what: &str,
    cost: &CostManagement,
    confirm: &dyn Confirm,
) -> Result<SpendDecision, EngineError> {
    let decision = check_run(estimate, cost)?;
    if decision.confirm {
        match confirm.confirm(what, estimate, decision.warn) {
            ConfirmAnswer::Yes => {}
            ConfirmAnswer::No => return Err(GuardError::ConfirmationDeclined.into()),
            ConfirmAnswer::Unavailable => {
                return Err(GuardError::ConfirmationRequired { estimate }.into());
            }
        }
    }
    Ok(decision)
}

/// Renews a held reservation every third of its lease until stopped.
#[derive(Debug)]
pub struct LeaseKeeper {
    stop: CancellationToken,
}

impl LeaseKeeper {
    /// Start renewing `id`.
    #[must_use]
    pub fn start(
        ledger: Arc<dyn Ledger>,
        id: ReservationId,
        owner: OwnerToken,
        lease: Duration,
    ) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(every) => {
                        if ledger.renew(&id, &owner, lease).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Self { stop }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The alert fractions a reservation crossed: `(fraction in thousandths, threshold)` for each
/// `alert_at` fraction between the day's spend before and after it.
#[must_use]
pub fn crossed_alerts(cost: &CostManagement, before: Usd, after: Usd) -> Vec<(u32, Usd)> {
    cost.alert_at
        .iter()
        .filter_map(|f| {
            let threshold = cost.daily_limit.mul_div_ceil(i64::from(f.0), 1000)?;
            (before < threshold && after >= threshold).then_some((f.0, threshold))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::config::Fraction;

    #[test]
    fn shared_limits_only_tighten() {
        let config = CostManagement::default();
        let shared = SharedLimits {
            daily_limit: Some(Usd::from_dollars(500)),
            max_cost_per_run: Some(Usd::from_dollars(2)),
            timezone: Some("Europe/Paris".into()),
        };
        let cost = effective_limits(&config, &shared);
        assert_eq!(
            cost.daily_limit,
            Usd::from_dollars(100),
            "a looser shared limit does not raise ours"
        );
        assert_eq!(cost.max_cost_per_run, Usd::from_dollars(2));
        assert_eq!(cost.timezone, "Europe/Paris");
    }

    #[test]
    fn alerts_fire_on_crossing_only() {
        let cost = CostManagement {
            daily_limit: Usd::from_dollars(10),
            alert_at: vec![Fraction(500), Fraction(800), Fraction(1000)],
            ..CostManagement::default()
        };
        let crossed = crossed_alerts(&cost, Usd::from_dollars(4), Usd::from_dollars(9));
        assert_eq!(
            crossed.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            vec![500, 800]
        );
        assert!(crossed_alerts(&cost, Usd::from_dollars(6), Usd::from_dollars(7)).is_empty());
        assert_eq!(
            crossed_alerts(&cost, Usd::from_dollars(9), Usd::from_dollars(10)).len(),
            1
        );
    }
}
