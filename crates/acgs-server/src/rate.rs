//! Per-user request rates: a token bucket per user, refilled continuously, as deep as a
//! minute's allowance. Written here rather than taken from `governor`: it is one map and a few
//! lines of integer arithmetic, where the crate would bring a clock and a concurrent map of its
//! own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One token, in thousandths.
const TOKEN: u64 = 1000;
/// The most users tracked at once; beyond it, full buckets are forgotten first.
const MAX_USERS: usize = 100_000;

/// Each user's bucket.
#[derive(Debug)]
pub(crate) struct Rates {
    per_minute: u64,
    buckets: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Rates {
    /// At most `per_minute` requests a minute per user, in bursts of as many.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute: u64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take a request of `user`'s at `now`: `Ok`, or how long until one is allowed.
    pub(crate) fn take(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let full = self.per_minute * TOKEN;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_USERS && !buckets.contains_key(user) {
            let per_minute = self.per_minute;
            buckets.retain(|_, (tokens, at)| refilled(*tokens, *at, now, per_minute) < full);
        }
        let (tokens, at) = buckets.entry(user.to_owned()).or_insert((full, now));
        let available = refilled(*tokens, *at, now, self.per_minute).min(full);
        if available >= TOKEN {
            *tokens = available - TOKEN;
            *at = now;
            return Ok(());
        }
        *tokens = available;
        *at = now;
        // Wait for the rest of one token, at `per_minute` tokens a minute.
        let missing = TOKEN - available;
        Err(Duration::from_millis(
            (missing * 60_000).div_ceil(self.per_minute * TOKEN),
        ))
    }
}

/// Milli-tokens after refilling `tokens` from `at` to `now` at `per_minute` tokens a minute.
fn refilled(tokens: u64, at: Instant, now: Instant, per_minute: u64) -> u64 {
    let ms = u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX);
    tokens.saturating_add(ms.saturating_mul(per_minute).saturating_mul(TOKEN) / 60_000)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Rates;

    #[test]
    fn a_user_gets_a_minutes_allowance_then_waits_and_others_are_apart() {
        let rates = Rates::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert!(rates.take("ada", start).is_ok());
        }
        let wait = rates.take("ada", start).expect_err("the 61st waits");
        assert_eq!(wait, Duration::from_secs(1), "one a second comes back");
        assert!(rates.take("bob", start).is_ok(), "bob has his own bucket");
        assert!(
            rates
                .take("ada", start + Duration::from_millis(999))
                .is_err()
        );
        assert!(rates.take("ada", start + Duration::from_secs(1)).is_ok());
        // A long pause refills only up to a minute's allowance.
        let later = start + Duration::from_secs(3600);
        for _ in 0..60 {
            assert!(rates.take("ada", later).is_ok());
        }
        assert!(rates.take("ada", later).is_err());
    }
}
