//! Turning HTTP failures into provider failures with a class, a stable code and a charge.

use acgs_core::provider::{Charge, FailureClass, ProviderError};

use crate::error::{Delivery, HttpError};
use crate::retry::{Classifier, advised_delay};

/// The stable code of a failure class.
#[must_use]
pub const fn code_for(class: FailureClass) -> &'static str {
    match class {
        FailureClass::Auth => "provider.auth_failed",
        FailureClass::Quota => "provider.quota_exhausted",
        FailureClass::RateLimited => "provider.rate_limited",
        FailureClass::Saturated => "provider.saturated",
        FailureClass::Transient => "provider.unavailable",
        FailureClass::Rejected => "provider.rejected",
        FailureClass::SafetyBlocked => "provider.safety_blocked",
        FailureClass::Timeout => "provider.timeout",
        FailureClass::NotFound => "provider.not_found",
        FailureClass::UnknownName => "input.unknown_name",
        FailureClass::Other => "provider.error",
    }
}

/// A provider failure for an HTTP error of `provider` (display name), classified by `classify`.
///
/// Default charges (DESIGN.md §4.5), which providers may refine: nothing sent, a refusal status
/// (401, 403, 429) or a server error (5xx) releases the reservation; a 422 or other rejection, or
/// a failure after the request went out, settles at the estimate.
#[must_use]
pub fn provider_error(provider: &str, error: HttpError, classify: Classifier<'_>) -> ProviderError {
    let not_sent = error.delivery() == Delivery::NotSent;
    match error {
        HttpError::Status { failure, .. } => {
            let class = classify(&failure);
            let released = matches!(failure.status, 401 | 403 | 429) || failure.status >= 500;
            let message = match class {
                FailureClass::Auth => format!(
                    "{provider} did not accept the key (HTTP {})",
                    failure.status
                ),
                FailureClass::Quota => format!("{provider} says the balance or quota is exhausted"),
                FailureClass::RateLimited | FailureClass::Saturated => {
                    format!("{provider} kept refusing for rate or concurrency limits")
                }
                FailureClass::Transient => {
                    format!("{provider} is unavailable (HTTP {})", failure.status)
                }
                FailureClass::SafetyBlocked => {
                    format!("{provider}'s content checker refused the request")
                }
                FailureClass::NotFound => {
                    format!("{provider} does not know this job or model (HTTP 404)")
                }
                _ => format!("{provider} rejected the request (HTTP {})", failure.status),
            };
            ProviderError {
                class,
                code: code_for(class),
                message,
                retry_after: advised_delay(&failure),
                detail: Some(failure.body),
                charge: if released {
                    Charge::Release
                } else {
                    Charge::Estimate
                },
            }
        }
        other => {
            let class = match &other {
                HttpError::Connect { .. } | HttpError::Transfer { .. } => FailureClass::Transient,
                HttpError::Timeout { .. } => FailureClass::Timeout,
                _ => FailureClass::Other,
            };
            let code = acgs_core::UserFacing::code(&other);
            let detail = acgs_core::UserFacing::detail(&other);
            ProviderError {
                class,
                code,
                message: other.to_string(),
                detail,
                charge: if not_sent {
                    Charge::Release
                } else {
                    Charge::Estimate
                },
                retry_after: None,
            }
        }
    }
}
