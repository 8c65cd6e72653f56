//! The [`Provider`] trait, provider failures and their classification; progress events come
//! from [`crate::progress`].

use std::time::Duration;

use serde::Serialize;
pub use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, UserFacing};
pub use crate::progress::{EventSink, ProgressEvent, Stage};
use crate::request::{
    Authorized, CancelOutcome, JobHandle, LocalInput, Output, RemoteRef, Request, Submitted,
};
use crate::task::ProviderId;

/// An HTTP answer that was not a success, as the retry layer and providers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFailure {
    /// Status code.
    pub status: u16,
    /// Response headers (names lowercase), the ones classification needs.
    pub headers: Vec<(String, String)>,
    /// The body, capped and redacted.
    pub body: String,
}

impl HttpFailure {
    /// The first header with this (lowercase) name.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a failure means, decided by the provider; the one retry layer acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The key is missing, wrong or lacks permission (exit 5).
    Auth,
    /// Balance, credit or quota exhausted (exit 4).
    Quota,
    /// Rate limited: retry after the advised delay.
    RateLimited,
    /// The provider's concurrency for this account is saturated: lower in-flight, then retry.
    Saturated,
    /// Temporary upstream failure (408, 5xx): retry.
    Transient,
    /// The request was rejected as invalid (422 and most 4xx).
    Rejected,
    /// The content was blocked by the provider's safety system.
    SafetyBlocked,
    /// A timeout the user asked for (not retried).
    Timeout,
    /// The job or resource does not exist.
    NotFound,
    /// The request names something the provider does not have (a voice, a preset): the user's
    /// mistake, found before anything was reserved (exit 2).
    UnknownName,
    /// Anything else.
    Other,
}

impl FailureClass {
    /// Whether the one retry layer may try again.
    #[must_use]
    pub const fn retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Saturated | Self::Transient)
    }

    /// The exit-code kind of a failure of this class.
    #[must_use]
    pub const fn error_kind(self) -> ErrorKind {
        match self {
            Self::Auth => ErrorKind::Auth,
            Self::Quota => ErrorKind::Money,
            Self::UnknownName => ErrorKind::Usage,
            _ => ErrorKind::Provider,
        }
    }
}

/// Who pays for a failed request (DESIGN.md §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Charge {
    /// Nothing was (or will be) billed: release the reservation.
    Release,
    /// The provider may have billed: settle at the estimate.
    Estimate,
}

/// A provider failure with its class, stable code and charge.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What it means.
    pub class: FailureClass,
    /// Stable code, e.g. `provider.job_failed`.
    pub code: &'static str,
    /// One sentence for the user (no secrets, no raw bodies).
    pub message: String,
    /// Redacted provider body or internals for `-v`.
    pub detail: Option<String>,
    /// Who pays.
    pub charge: Charge,
    /// Delay the provider advised before a retry.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// A failure with no detail, no retry delay.
    #[must_use]
    pub fn new(
        class: FailureClass,
        code: &'static str,
        message: impl Into<String>,
        charge: Charge,
    ) -> Self {
        Self {
            class,
            code,
            message: message.into(),
            detail: None,
            charge,
            retry_after: None,
        }
    }

    /// Attach a (redacted) detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl UserFacing for ProviderError {
    fn code(&self) -> &'static str {
        self.code
    }
    fn kind(&self) -> ErrorKind {
        self.class.error_kind()
    }
    fn hint(&self) -> Option<String> {
        match self.class {
            FailureClass::Auth => Some(
                "check the key with `acgs keys status`; run with -v for the provider's answer"
                    .into(),
            ),
            FailureClass::Quota => {
                Some("top up or raise the quota in the provider's dashboard".into())
            }
            FailureClass::Transient | FailureClass::RateLimited | FailureClass::Saturated => {
                Some("the provider is busy; try again later".into())
            }
            FailureClass::UnknownName => None,
            _ => Some("run with -v for the provider's answer".into()),
        }
    }
    fn detail(&self) -> Option<String> {
        self.detail.clone()
    }
}

/// Result alias for provider calls.
pub type ProviderResult<T> = Result<T, ProviderError>;

/// A provider: the wire protocol behind a catalogue. Implementations make one attempt per call;
/// retries belong to the one retry layer in `acgs-http`, which asks [`Provider::classify`].
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn id(&self) -> ProviderId;

    /// Quota or capability checks before any money is reserved. A check that could not be made
    /// (e.g. a key without permission to read the quota) is a warning in the answer, not an error.
    async fn preflight(&self, request: &Request) -> ProviderResult<Vec<String>>;

    /// Send the request. Only guarded, paid-for requests can be submitted.
    async fn submit(&self, request: &Authorized<Request>) -> ProviderResult<Submitted>;

    /// Wait for a pending job, reporting progress, until it ends, fails or `cancel` fires.
    async fn wait(
        &self,
        job: &JobHandle,
        events: &EventSink,
        cancel: CancellationToken,
    ) -> ProviderResult<Output>;

    /// Ask the provider to cancel a job.
    async fn cancel(&self, job: &JobHandle) -> ProviderResult<CancelOutcome>;

    /// Make a local input readable by the provider.
    async fn upload(&self, input: LocalInput) -> ProviderResult<RemoteRef>;

    /// Delete what [`Provider::upload`] left on the provider under `name`
    /// ([`RemoteRef::delete_after_run`]) once the request no longer needs it. The default does
    /// nothing: it is for providers whose uploads expire on their own and name nothing to delete.
    async fn delete_upload(&self, name: &str) -> ProviderResult<()> {
        let _ = name;
        Ok(())
    }

    /// Stream a result URL from this provider's output into `sink`, at most `cap` bytes; returns
    /// the bytes written. The key is attached only when the URL is on the provider's own base
    /// origin (and never to a redirect target elsewhere), so media hosts get no credentials.
    async fn download(
        &self,
        url: &str,
        sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        cap: u64,
    ) -> ProviderResult<u64>;

    /// What an HTTP failure from this provider means.
    fn classify(&self, failure: &HttpFailure) -> FailureClass;
}
