//! Errors of `acgs-http`.

use acgs_core::error::{ErrorKind, UserFacing};
use acgs_core::provider::HttpFailure;

/// Whether the request may have reached the server (decides retries and who pays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Provably not sent (refused by policy, connection failed before the request went out).
    NotSent,
    /// Sent, or unknown.
    MaybeSent,
}

/// Errors of HTTP calls. Messages never contain secrets: URLs are shown as origin only and
/// bodies are redacted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The network policy refused the URL or address.
    #[error("refused to connect to {target}: {reason}")]
    Refused {
        /// Scheme and host only.
        target: String,
        /// Which rule.
        reason: String,
    },
    /// The client could not be built (bad CA bundle, proxy).
    #[error("network setup failed: {0}")]
    Setup(String),
    /// Connecting failed before any request was sent.
    #[error("could not connect to {target}")]
    Connect {
        /// Scheme and host only.
        target: String,
        /// Cause, for `-v`.
        detail: String,
    },
    /// TLS verification failed.
    #[error("TLS verification failed for {target}")]
    Tls {
        /// Scheme and host only.
        target: String,
        /// Cause, for `-v`.
        detail: String,
    },
    /// No answer in time.
    #[error("{target} did not answer within {seconds} s ({phase})")]
    Timeout {
        /// Scheme and host only.
        target: String,
        /// `request` or `idle read`.
        phase: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// The transfer broke off after sending.
    #[error("the connection to {target} broke off")]
    Transfer {
        /// Scheme and host only.
        target: String,
        /// Cause, for `-v`.
        detail: String,
    },
    /// A non-success status.
    #[error("{target} answered HTTP {}", failure.status)]
    Status {
        /// Scheme and host only.
        target: String,
        /// Status, headers, redacted body.
        failure: HttpFailure,
    },
    /// The body was larger than allowed.
    #[error("the answer from {target} is larger than {cap} bytes")]
    TooLarge {
        /// Scheme and host only.
        target: String,
        /// The cap.
        cap: u64,
    },
    /// Fewer bytes arrived than announced.
    #[error("the download from {target} was truncated ({got} of {expected} bytes)")]
    Truncated {
        /// Scheme and host only.
        target: String,
        /// Bytes received.
        got: u64,
        /// Content-Length.
        expected: u64,
    },
    /// A redirect could not be followed.
    #[error("redirect refused: {0}")]
    Redirect(String),
    /// The body was not the JSON expected.
    #[error("unexpected answer from {target}: {detail}")]
    Decode {
        /// Scheme and host only.
        target: String,
        /// What was wrong.
        detail: String,
    },
    /// Writing the downloaded bytes failed.
    #[error("could not write the download: {0}")]
    Write(String),
}

impl HttpError {
    /// Whether the request may have reached the server.
    #[must_use]
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Refused { .. } | Self::Setup(_) | Self::Connect { .. } | Self::Tls { .. } => {
                Delivery::NotSent
            }
            _ => Delivery::MaybeSent,
        }
    }

    /// The HTTP failure, when the server answered with a non-success status.
    #[must_use]
    pub fn failure(&self) -> Option<&HttpFailure> {
        match self {
            Self::Status { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

impl UserFacing for HttpError {
    fn code(&self) -> &'static str {
        match self {
            Self::Refused { .. } => "network.refused",
            Self::Setup(_) => "network.setup",
            Self::Connect { .. } => "network.connect",
            Self::Tls { .. } => "network.tls",
            Self::Timeout { .. } => "network.timeout",
            Self::Transfer { .. } => "network.transfer",
            Self::Status { .. } => "provider.http_error",
            Self::TooLarge { .. } => "network.too_large",
            Self::Truncated { .. } => "network.truncated",
            Self::Redirect(_) => "network.redirect",
            Self::Decode { .. } => "provider.bad_response",
            Self::Write(_) => "storage.write_failed",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused { .. } => ErrorKind::Guard,
            Self::Setup(_) => ErrorKind::Usage,
            Self::Write(_) => ErrorKind::Internal,
            _ => ErrorKind::Provider,
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::Connect { detail, .. }
            | Self::Tls { detail, .. }
            | Self::Transfer { detail, .. } => Some(detail.clone()),
            Self::Status { failure, .. } => Some(failure.body.clone()),
            _ => None,
        }
    }
}
