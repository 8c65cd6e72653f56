//! The service's failures and how each answers over HTTP: a status, a stable code and a message,
//! as `{"error": {"code", "message"}}`.

use acgs_core::{ErrorKind, UserFacing};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What can go wrong serving a request or keeping the records.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No token, or one that is unknown, revoked or expired.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The route is for admins, and the caller is not one.
    #[error("this route is for admins")]
    Forbidden,
    /// No such job (or one of another user's: they look the same).
    #[error("no such job")]
    NotFound,
    /// The body is larger than [`crate::BODY_LIMIT`]; it was not read past the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body did not arrive within this many seconds.
    #[error("the body did not arrive within {0} s")]
    TooSlow(u64),
    /// The body is not the JSON this endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    /// The engine refused the request; its code and kind are kept.
    #[error("{message}")]
    Refused {
        /// The engine's stable code.
        code: &'static str,
        /// Its kind, which picks the status.
        kind: ErrorKind,
        /// Its message.
        message: String,
    },
    /// The user has [`crate::store::MAX_OPEN_JOBS`] jobs queued or running already.
    #[error("you have {0} jobs queued or running; wait for some to end")]
    TooManyJobs(u64),
    /// The user's uploads take their whole quota.
    #[error("your uploads take your whole quota (2 GiB or 256 files)")]
    TooManyFiles,
    /// The user made more requests than their rate allows; retry after this many seconds.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// Too many event streams are open.
    #[error("too many event streams are open; poll the job instead")]
    Busy,
    /// No live token has this id.
    #[error("no live token `{0}`")]
    UnknownToken(String),
    /// A user `serve token create` names does not exist.
    #[error("no user named `{0}`; add one with `acgs serve user add NAME --daily AMOUNT`")]
    UnknownUser(String),
    /// The service's own records failed.
    #[error("the service's records failed: {0}")]
    Store(String),
}

impl From<rusqlite::Error> for ServerError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.to_string())
    }
}

impl ServerError {
    /// An engine refusal, keeping its code, kind and (already redacted) message.
    pub(crate) fn refused(error: &acgs_engine::EngineError) -> Self {
        Self::Refused {
            code: error.code(),
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Refused { kind, .. } => match kind {
                ErrorKind::Usage | ErrorKind::Guard => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::Money => StatusCode::PAYMENT_REQUIRED,
                ErrorKind::Auth | ErrorKind::Provider => StatusCode::BAD_GATEWAY,
                ErrorKind::Check | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::UnknownUser(_) | Self::UnknownToken(_) => StatusCode::NOT_FOUND,
            Self::TooManyJobs(_) | Self::TooManyFiles | Self::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl UserFacing for ServerError {
    fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "auth.token_required",
            Self::NotFound => "job.not_found",
            Self::Forbidden => "auth.not_admin",
            Self::BadRequest(_) => "request.invalid",
            Self::TooLarge(_) => "request.too_large",
            Self::TooSlow(_) => "request.too_slow",
            Self::Refused { code, .. } => code,
            Self::UnknownUser(_) => "server.unknown_user",
            Self::UnknownToken(_) => "server.unknown_token",
            Self::TooManyJobs(_) => "rate.too_many_jobs",
            Self::TooManyFiles => "rate.upload_quota",
            Self::RateLimited(_) => "rate.limited",
            Self::Busy => "server.busy",
            Self::Store(_) => "server.store",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unauthorized | Self::Forbidden => ErrorKind::Auth,
            Self::NotFound
            | Self::BadRequest(_)
            | Self::TooLarge(_)
            | Self::TooSlow(_)
            | Self::UnknownUser(_)
            | Self::UnknownToken(_) => ErrorKind::Usage,
            Self::Refused { kind, .. } => *kind,
            Self::TooManyJobs(_) | Self::TooManyFiles | Self::RateLimited(_) | Self::Busy => {
                ErrorKind::Money
            }
            Self::Store(_) => ErrorKind::Internal,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        // The records' own failure is logged whole, and shown without its details (database
        // messages, paths of this machine).
        let message = match &self {
            Self::Store(detail) => {
                tracing::error!(error = %detail, "the service's records failed");
                "the service's records failed; the operator's log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let body = serde_json::json!({"error": {"code": self.code(), "message": message}});
        let mut response = crate::api::json(self.status(), &body);
        if let Self::RateLimited(secs) = self
            && let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
