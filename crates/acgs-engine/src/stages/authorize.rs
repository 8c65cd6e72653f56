//! Stage 6: authorize the spend — the per-run limit, the warning threshold, confirmation, then an
//! atomic reservation against the daily limit. A held reservation's lease is renewed in the
//! background while this process lives.

use std::sync::Arc;
use std::time::Duration;

use acgs_core::config::Config;
use acgs_core::ledger::{Ledger, OwnerToken, Reservation, ReservationId, ReserveRequest};
use acgs_core::pricing::Quote;
use acgs_core::{ModelSpec, Usd};
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
    /// Ask once for this estimate.
    fn confirm(&self, model: &ModelSpec, estimate: Usd, warn: bool) -> ConfirmAnswer;
}

/// Confirms everything (`--yes`).
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeYes;

impl Confirm for AssumeYes {
    fn confirm(&self, _: &ModelSpec, _: Usd, _: bool) -> ConfirmAnswer {
        ConfirmAnswer::Yes
    }
}

/// Per-run limit and confirmation; no money moves here.
pub fn check(
    quote: &Quote,
    model: &ModelSpec,
    config: &Config,
    confirm: &dyn Confirm,
) -> Result<SpendDecision, EngineError> {
    let decision = check_run(quote.amount, &config.cost_management)?;
    if decision.warn {
        tracing::warn!(estimate = %quote.amount, threshold = %config.cost_management.warn_threshold, "estimate at or above warn_threshold");
    }
    if decision.confirm {
        match confirm.confirm(model, quote.amount, decision.warn) {
            ConfirmAnswer::Yes => {}
            ConfirmAnswer::No => return Err(GuardError::ConfirmationDeclined.into()),
            ConfirmAnswer::Unavailable => {
                return Err(GuardError::ConfirmationRequired {
                    estimate: quote.amount,
                }
                .into());
            }
        }
    }
    Ok(decision)
}

/// Reserve the worst case atomically.
pub async fn reserve(
    ledger: &dyn Ledger,
    request: ReserveRequest,
) -> Result<Reservation, EngineError> {
    Ok(ledger.reserve(request).await?)
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
