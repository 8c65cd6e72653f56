//! Stage 6: authorize the spend of a run — its total against the per-run limit, the warning
//! threshold, one confirmation, then one atomic reservation per step against the daily limit,
//! all or nothing — and report the alert thresholds those reservations crossed. A held
//! reservation's lease is renewed in the background while this process lives.

use std::sync::Arc;
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::config::CostManagement;
use acgs_core::ledger::{
    Ledger, OwnerToken, Reservation, ReservationId, ReserveRequest, SharedLimits,
};
use acgs_core::provider::{EventSink, Stage};
use acgs_guard::GuardError;
use acgs_guard::budget::{SpendDecision, check_run};
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::plan::Plan;
use crate::services::{Caller, ConfirmAnswer, Services, SpendAlert};
use crate::stages::audit;

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

/// Per-run limit, the caller's cap and confirmation; no money moves here.
pub(crate) fn check(
    estimate: Usd,
    what: &str,
    cost: &CostManagement,
    caller: &Caller,
) -> Result<SpendDecision, EngineError> {
    let decision = check_run(estimate, cost)?;
    if let Some(cap) = caller.cap
        && estimate > cap
    {
        return Err(EngineError::OverCap { cap, estimate });
    }
    if decision.confirm || (caller.confirm_always && estimate > Usd::ZERO) {
        match caller.confirm.confirm(what, estimate, decision.warn) {
            ConfirmAnswer::Yes => {}
            ConfirmAnswer::No => return Err(GuardError::ConfirmationDeclined.into()),
            ConfirmAnswer::Unavailable => {
                return Err(GuardError::ConfirmationRequired { estimate }.into());
            }
            ConfirmAnswer::Interrupted(signal) => {
                return Err(EngineError::Interrupted {
                    signal,
                    note: "at the spending question: nothing was reserved or sent".into(),
                });
            }
        }
    }
    Ok(decision)
}

/// Authorize a run of `plans` whose total is `total`: the limits in force (the configured `cost`
/// tightened by a shared ledger's), the per-run limit, the warning, one confirmation of `what`,
/// then every step's reservation or none. Returns the reservations in `plans`' order.
pub(crate) async fn authorize(
    services: &Services,
    ledger: &dyn Ledger,
    (run_id, what): (&str, &str),
    plans: &[Plan],
    cost: &CostManagement,
    events: &EventSink,
) -> Result<Vec<Reservation>, EngineError> {
    let shared = acgs_core::ledger::shared_limits(ledger).await?;
    let cost = effective_limits(cost, &shared);
    let total = plans
        .iter()
        .fold(Usd::ZERO, |sum, p| sum.saturating_add(p.quote.amount));
    events.report(Stage::Preparing, "authorizing", None, None);
    let decision = check(total, what, &cost, &services.caller)?;
    if decision.warn {
        let message = format!(
            "this run may cost up to ${total}, at or above your warn_threshold of ${}",
            cost.warn_threshold
        );
        events.report(Stage::Preparing, "spend_warning", None, Some(message));
    }
    let requests = plans
        .iter()
        .map(|plan| ReserveRequest {
            run_id: run_id.to_owned(),
            step: plan.step.clone(),
            provider: plan.model.provider,
            model: plan.model.key.clone(),
            user: services.caller.user.clone(),
            amount: plan.quote.amount,
            daily_limit: cost.daily_limit,
            timezone: cost.timezone.clone(),
            lease: services.lease(),
            scopes: services.caller.scopes.clone(),
        })
        .collect();
    let reserved = ledger.reserve_all(requests).await?;
    alert(services, ledger, &cost, run_id, &reserved, total, events).await;
    Ok(reserved)
}

/// Report each `alert_at` fraction of the daily limit the run's reservations crossed, once a
/// day: a progress event (the CLI shows a warning), an audit entry and the alert hook (the CLI
/// runs `alert_command`).
async fn alert(
    services: &Services,
    ledger: &dyn Ledger,
    cost: &CostManagement,
    run_id: &str,
    reserved: &[Reservation],
    total: Usd,
    events: &EventSink,
) {
    let Some(first) = reserved.first() else {
        return;
    };
    let after = first.spent_before.saturating_add(total);
    for (fraction, threshold) in crossed_alerts(cost, first.spent_before, after) {
        let key = format!("alert:{}:{fraction}", first.day);
        if !ledger.set_meta(&key, run_id, true).await.unwrap_or(false) {
            continue;
        }
        let percent = fraction / 10;
        let message = format!(
            "spend today reached {percent}% of the daily limit: ${after} counted against ${} (alert at ${threshold})",
            cost.daily_limit
        );
        tracing::warn!(%message, "spend alert");
        events.report(Stage::Preparing, "spend_alert", None, Some(message));
        audit::record(
            services,
            vec![audit::alert(services, run_id, after, percent)],
        );
        if let Some(hook) = &services.alert_hook {
            hook.alert(&SpendAlert {
                fraction_permille: fraction,
                spent: after,
                limit: cost.daily_limit,
                day: first.day.clone(),
            });
        }
    }
}

/// Renews a held reservation every third of its lease until stopped.
#[derive(Debug)]
pub(crate) struct LeaseKeeper {
    stop: CancellationToken,
}

impl LeaseKeeper {
    /// Start renewing `id`.
    #[must_use]
    pub(crate) fn start(
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
pub(crate) fn crossed_alerts(cost: &CostManagement, before: Usd, after: Usd) -> Vec<(u32, Usd)> {
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
