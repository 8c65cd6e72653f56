//! Local rate limiting per provider (DESIGN.md §4.6): submits per minute (a sliding window) and
//! jobs in flight (a semaphore that can be lowered when a provider says it is saturated). Only
//! submits count, never polls or downloads. Waits are bounded; past the bound the answer is
//! [`GuardError::RateLimited`] (exit 4).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use acgs_core::ProviderId;
use acgs_core::config::{RateLimit, RateLimits};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::GuardError;

const WINDOW: Duration = Duration::from_secs(60);

struct ProviderLimiter {
    per_minute: usize,
    submits: Mutex<VecDeque<Instant>>,
    in_flight: Arc<Semaphore>,
}

/// Holds one in-flight slot until dropped (when the job ends).
#[derive(Debug)]
pub struct InFlightPermit {
    _permit: OwnedSemaphorePermit,
}

/// Rate limiters for every provider.
pub struct RateLimiter {
    providers: BTreeMap<ProviderId, ProviderLimiter>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimiter")
    }
}

impl RateLimiter {
    /// Limiters from the `[rate_limits]` configuration.
    #[must_use]
    pub fn new(limits: &RateLimits) -> Self {
        let entry = |limit: RateLimit| ProviderLimiter {
            per_minute: usize::try_from(limit.per_minute.max(1)).unwrap_or(usize::MAX),
            submits: Mutex::new(VecDeque::new()),
            in_flight: Arc::new(Semaphore::new(
                usize::try_from(limit.in_flight.max(1)).unwrap_or(1),
            )),
        };
        Self {
            providers: limits
                .iter()
                .map(|(id, limit)| (id, entry(limit)))
                .collect(),
        }
    }

    /// Wait (at most `max_wait`) for an in-flight slot and a submit slot for `provider`.
    pub async fn acquire(
        &self,
        provider: ProviderId,
        max_wait: Duration,
    ) -> Result<InFlightPermit, GuardError> {
        let refused = || GuardError::RateLimited {
            provider,
            waited_secs: max_wait.as_secs(),
        };
        let limiter = self.providers.get(&provider).ok_or_else(refused)?;
        let deadline = Instant::now() + max_wait;
        let permit =
            tokio::time::timeout_at(deadline, Arc::clone(&limiter.in_flight).acquire_owned())
                .await
                .map_err(|_| refused())?
                .map_err(|_| refused())?;
        loop {
            let mut submits = limiter.submits.lock().await;
            let now = Instant::now();
            while submits
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                submits.pop_front();
            }
            if submits.len() < limiter.per_minute {
                submits.push_back(now);
                return Ok(InFlightPermit { _permit: permit });
            }
            let free_at = submits.front().map_or(now, |oldest| *oldest + WINDOW);
            drop(submits);
            if free_at > deadline {
                return Err(refused());
            }
            tokio::time::sleep_until(free_at).await;
        }
    }

    /// Lower `provider`'s in-flight cap by one (never below one), when it reports saturation.
    pub fn lower_in_flight(&self, provider: ProviderId) {
        if let Some(limiter) = self.providers.get(&provider)
            && limiter.in_flight.available_permits() > 1
        {
            limiter.in_flight.forget_permits(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, in_flight: u32) -> RateLimits {
        let l = RateLimit {
            per_minute,
            in_flight,
        };
        let mut limits = RateLimits::default();
        for provider in ProviderId::ALL {
            limits.set(provider, l);
        }
        limits
    }

    #[tokio::test]
    async fn submits_beyond_the_window_are_refused_after_the_bounded_wait() {
        let limiter = RateLimiter::new(&limits(2, 10));
        let a = limiter
            .acquire(ProviderId::Fal, Duration::ZERO)
            .await
            .expect("first");
        let b = limiter
            .acquire(ProviderId::Fal, Duration::ZERO)
            .await
            .expect("second");
        let err = limiter
            .acquire(ProviderId::Fal, Duration::from_millis(10))
            .await
            .expect_err("third");
        assert!(matches!(
            err,
            GuardError::RateLimited {
                provider: ProviderId::Fal,
                ..
            }
        ));
        drop((a, b));
        assert!(
            limiter
                .acquire(ProviderId::Gemini, Duration::ZERO)
                .await
                .is_ok(),
            "providers are separate"
        );
    }

    #[tokio::test]
    async fn in_flight_slots_are_released_when_the_permit_drops() {
        let limiter = RateLimiter::new(&limits(100, 1));
        let first = limiter
            .acquire(ProviderId::Fal, Duration::ZERO)
            .await
            .expect("first");
        assert!(
            limiter
                .acquire(ProviderId::Fal, Duration::from_millis(10))
                .await
                .is_err()
        );
        drop(first);
        assert!(
            limiter
                .acquire(ProviderId::Fal, Duration::from_millis(10))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn saturation_lowers_the_cap_but_not_below_one() {
        let limiter = RateLimiter::new(&limits(100, 2));
        limiter.lower_in_flight(ProviderId::ElevenLabs);
        limiter.lower_in_flight(ProviderId::ElevenLabs);
        let one = limiter
            .acquire(ProviderId::ElevenLabs, Duration::ZERO)
            .await
            .expect("one slot left");
        assert!(
            limiter
                .acquire(ProviderId::ElevenLabs, Duration::from_millis(10))
                .await
                .is_err()
        );
        drop(one);
    }
}
