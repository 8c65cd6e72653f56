//! Stage 7: the per-provider submit rate and in-flight cap, with a bounded wait.

use std::time::Duration;

use acgs_core::ProviderId;
use acgs_guard::GuardError;
use acgs_guard::rate::{InFlightPermit, RateLimiter};

/// How long a submit waits for the local rate limit before `rate.limited` (exit 4).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);

/// Wait for a slot.
pub(crate) async fn acquire(
    limiter: &RateLimiter,
    provider: ProviderId,
) -> Result<InFlightPermit, GuardError> {
    limiter.acquire(provider, MAX_WAIT).await
}
