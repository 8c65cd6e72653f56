//! The one retry layer: 408, 429, 5xx and connection failures, with jittered exponential backoff
//! that honours `Retry-After`, `retry-after-ms` and Gemini's `RetryInfo.retryDelay`. Providers
//! never loop; they classify failures and this layer decides.

use std::time::Duration;

use acgs_core::provider::{FailureClass, HttpFailure};

use crate::client::{HttpClient, HttpRequest, HttpResponse};
use crate::error::{Delivery, HttpError};

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 means no retry).
    pub max_attempts: u32,
    /// First backoff delay.
    pub base_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Largest delay a provider may advise; beyond it acgs gives up and reports.
    pub max_advised_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_advised_delay: Duration::from_secs(120),
        }
    }
}

/// Classifies provider failures for the retry layer.
pub type Classifier<'a> = &'a (dyn Fn(&HttpFailure) -> FailureClass + Sync);

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` after `error`, or `None` to give up.
    #[must_use]
    pub fn delay_after(
        &self,
        error: &HttpError,
        attempt: u32,
        submit: bool,
        classify: Classifier<'_>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        match error {
            HttpError::Connect { .. } => Some(self.backoff(attempt)),
            HttpError::Timeout { .. } | HttpError::Transfer { .. } if !submit => {
                Some(self.backoff(attempt))
            }
            HttpError::Status { failure, .. } => {
                let class = classify(failure);
                if !class.retryable() {
                    return None;
                }
                // A submit answered 408/5xx may have been accepted: never re-send it. A 429 is a
                // refusal, so the request was provably not accepted.
                if submit && class == FailureClass::Transient {
                    return None;
                }
                match advised_delay(failure) {
                    Some(advised) if advised > self.max_advised_delay => None,
                    Some(advised) => Some(advised),
                    None => Some(self.backoff(attempt)),
                }
            }
            _ => None,
        }
    }

    /// Exponential backoff with ±50 % jitter: `base × 2^(attempt-1)`, capped.
    ///
    /// Kept by hand rather than taken from `backon`: this is a pure function of the attempt
    /// number (15 lines), so the policy is tested without running a loop, and the decision of
    /// whether and how long to wait (`Retry-After`, what may be sent again) is acgs's own either
    /// way; backon's stateful iterator and one-sided jitter would add a dependency, not remove code.
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        let millis = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(
            millis / 2..=millis.saturating_add(millis / 2),
        ))
    }
}

/// The delay a provider advised: `retry-after-ms`, `Retry-After` (seconds or HTTP date), or a
/// Gemini `RetryInfo.retryDelay` in the body.
#[must_use]
pub fn advised_delay(failure: &HttpFailure) -> Option<Duration> {
    if let Some(ms) = failure
        .header("retry-after-ms")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    if let Some(value) = failure.header("retry-after") {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = jiff::fmt::rfc2822::parse(value) {
            let now = jiff::Timestamp::now();
            let secs = when.timestamp().as_second().saturating_sub(now.as_second());
            return Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
        }
    }
    gemini_retry_delay(&failure.body)
}

/// `error.details[@type=…RetryInfo].retryDelay` such as `"47s"` or `"0.5s"`.
fn gemini_retry_delay(body: &str) -> Option<Duration> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let details = json.get("error")?.get("details")?.as_array()?;
    let delay = details.iter().find_map(|d| {
        let is_retry_info = d.get("@type")?.as_str()?.ends_with("google.rpc.RetryInfo");
        is_retry_info.then(|| d.get("retryDelay")?.as_str())?
    })?;
    parse_seconds(delay)
}

/// `"47s"`, `"47.17s"`, `"0.5s"` → a duration, without floating point.
fn parse_seconds(text: &str) -> Option<Duration> {
    let digits = text.trim().strip_suffix('s')?;
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut millis = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        millis += u64::from(b - b'0') * 10u64.pow(2 - u32::try_from(i).ok()?);
    }
    Some(Duration::from_secs(secs) + Duration::from_millis(millis))
}

impl HttpClient {
    /// [`HttpClient::execute`] under the retry layer.
    pub async fn execute_retrying(
        &self,
        request: &HttpRequest<'_>,
        policy: &RetryPolicy,
        classify: Classifier<'_>,
    ) -> Result<HttpResponse, HttpError> {
        let mut attempt = 1;
        let mut retried = Vec::new();
        loop {
            match self.execute(request).await {
                Ok(mut response) => {
                    response.retried = retried;
                    return Ok(response);
                }
                Err(error) => {
                    let Some(delay) =
                        policy.delay_after(&error, attempt, request.is_submit(), classify)
                    else {
                        return Err(error);
                    };
                    tracing::info!(
                        attempt,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        code = acgs_core::UserFacing::code(&error),
                        not_sent = error.delivery() == Delivery::NotSent,
                        "retrying"
                    );
                    if let Some(failure) = error.failure() {
                        retried.push(classify(failure));
                    }
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, headers: &[(&str, &str)], body: &str) -> HttpFailure {
        HttpFailure {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        }
    }

    fn status_error(f: HttpFailure) -> HttpError {
        HttpError::Status {
            target: "https://x".into(),
            failure: f,
        }
    }

    fn by_status(f: &HttpFailure) -> FailureClass {
        match f.status {
            429 => FailureClass::RateLimited,
            408 | 500..=599 => FailureClass::Transient,
            _ => FailureClass::Rejected,
        }
    }

    #[test]
    fn advised_delays_are_read_from_every_form() {
        assert_eq!(
            advised_delay(&failure(429, &[("retry-after", "3")], "")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            advised_delay(&failure(
                429,
                &[("retry-after-ms", "250"), ("retry-after", "9")],
                ""
            )),
            Some(Duration::from_millis(250))
        );
        let gemini = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"47.17s"}]}}"#;
        assert_eq!(
            advised_delay(&failure(429, &[], gemini)),
            Some(Duration::from_millis(47_170))
        );
        assert_eq!(advised_delay(&failure(429, &[], "not json")), None);
    }

    #[test]
    fn decisions_follow_the_policy() {
        let p = RetryPolicy::default();
        let rate = status_error(failure(429, &[("retry-after", "2")], ""));
        assert_eq!(
            p.delay_after(&rate, 1, true, &by_status),
            Some(Duration::from_secs(2)),
            "429 is retried even for submits"
        );
        let busy = status_error(failure(503, &[], ""));
        assert!(p.delay_after(&busy, 1, false, &by_status).is_some());
        assert_eq!(
            p.delay_after(&busy, 1, true, &by_status),
            None,
            "a 5xx submit may have been accepted"
        );
        let invalid = status_error(failure(422, &[], ""));
        assert_eq!(p.delay_after(&invalid, 1, false, &by_status), None);
        assert_eq!(
            p.delay_after(&busy, p.max_attempts, false, &by_status),
            None,
            "attempts are bounded"
        );
        let too_long = status_error(failure(429, &[("retry-after", "3600")], ""));
        assert_eq!(p.delay_after(&too_long, 1, false, &by_status), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = p.backoff(attempt);
            assert!(d <= p.max_delay + p.max_delay / 2, "{attempt}: {d:?}");
        }
        assert!(p.backoff(1) <= Duration::from_millis(1500));
    }

    #[test]
    fn seconds_parse_without_floats() {
        assert_eq!(parse_seconds("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("12s"), Some(Duration::from_secs(12)));
        assert_eq!(parse_seconds("12"), None);
        assert_eq!(parse_seconds("1.x5s"), None);
    }
}
