//! Requests, outputs and job handles: what flows between the engine and a provider.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::job::{JOB_HANDLE_SCHEMA, JobHandle, JobRef, is_plain_token};
pub use crate::pricing::Usage;

use crate::catalog::{ModelSpec, Params};
use crate::ledger::ReservationId;
use crate::task::ContentType;

/// One request to a provider, after the guarded path has validated and templated it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The run this request belongs to.
    pub run_id: String,
    /// The step id within the run (`image` for single commands).
    pub step: String,
    /// The resolved model.
    pub model: Arc<ModelSpec>,
    /// Wire parameters: validated, defaulted, text inspected, media fields set to uploaded URLs.
    pub params: Params,
    /// System instruction for text models; user text stays in `params`.
    pub system: Option<String>,
    /// Where a text model's words go as it writes them (`acgs text` shows them as they come),
    /// as progress events with status `text`; `None` asks for the whole answer at once. The
    /// whole text is still checked as model output before it is stored or used.
    pub text_events: Option<crate::progress::EventSink>,
}

/// The guard's verdict on a request: what it warned about and which overrides are in effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Rules that warned without refusing.
    pub warnings: Vec<String>,
    /// Overrides in effect (safety checker off, unpriced model allowed), each audited.
    pub overrides: Vec<String>,
}

/// A request that went through the guarded path: inspected, priced and paid for.
///
/// Providers only accept this type. Its fields are private and its one constructor is
/// [`Authorized::by_engine`], hidden from the documentation: skipping the guarded path is a
/// deliberate, visible act in code review, never an accident of API use.
#[derive(Debug, Clone)]
pub struct Authorized<T> {
    inner: T,
    verdict: Verdict,
    reservation: ReservationId,
}

impl<T> Authorized<T> {
    /// Wrap a request the engine has inspected, priced and reserved. Only `acgs-engine` calls this.
    #[doc(hidden)]
    #[must_use]
    pub fn by_engine(inner: T, verdict: Verdict, reservation: ReservationId) -> Self {
        Self {
            inner,
            verdict,
            reservation,
        }
    }

    /// The authorized request.
    #[must_use]
    pub fn get(&self) -> &T {
        &self.inner
    }

    /// The guard's verdict.
    #[must_use]
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The reservation that pays for it.
    #[must_use]
    pub fn reservation(&self) -> &ReservationId {
        &self.reservation
    }
}

/// A local file given as input, already opened and checked (regular file, size cap, type by magic).
#[derive(Debug, Clone)]
pub struct LocalInput {
    /// The parameter it fills.
    pub field: String,
    /// File name shown to the provider (no directories).
    pub file_name: String,
    /// Sniffed type.
    pub content_type: ContentType,
    /// Size in bytes at the time of the check.
    pub size: u64,
    /// The open file; reading it (with positioned reads) never re-resolves the path.
    pub file: Arc<std::fs::File>,
}

impl LocalInput {
    /// Read `len` bytes at `offset` (positioned, so clones can read concurrently).
    pub fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt as _;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            let n = self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)?;
            if n == 0 {
                buf.truncate(filled);
                break;
            }
            filled += n;
        }
        Ok(buf)
    }
}

/// Where an uploaded input can be read by the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRef {
    /// URL or URI to put in the request.
    pub url: String,
    /// A provider resource to delete after the run (Gemini files), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after_run: Option<String>,
}

/// One produced artifact before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// Media to fetch (without credentials unless same origin as the provider base).
    Url {
        /// The URL as given by the provider (untrusted).
        url: String,
        /// The type the provider claims; the stored type is sniffed, never taken from here.
        claimed_type: Option<String>,
    },
    /// Inline bytes (data URIs, `inlineData`, audio bodies).
    Bytes {
        /// The bytes.
        data: Vec<u8>,
        /// The type the provider claims.
        claimed_type: Option<String>,
    },
    /// Text produced by a model (untrusted; inspected again before reuse).
    Text {
        /// The text.
        text: String,
        /// How to store it.
        content_type: ContentType,
    },
}

/// Safety signals in a provider's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SafetyReport {
    /// Indexes of artifacts the provider flagged (e.g. `has_nsfw_concepts`); never stored.
    pub flagged: Vec<usize>,
    /// The whole output was blocked, with the provider's reason (`SAFETY`, `IMAGE_SAFETY` …).
    pub blocked: Option<String>,
}

/// What a provider produced for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Produced artifacts, in order.
    pub artifacts: Vec<Artifact>,
    /// Reported usage.
    pub usage: Usage,
    /// Safety flags.
    pub safety: SafetyReport,
    /// The provider's request id.
    pub request_id: Option<String>,
    /// The provider said its concurrency for this account was saturated before it answered
    /// (the engine lowers its in-flight cap, as for a saturated failure).
    pub saturated: bool,
}

/// The answer to a submit.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// The provider answered with the output directly.
    Done(Output),
    /// The job is queued or running.
    Pending(JobHandle),
}

/// The answer to a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// Removed before it ran: nothing is charged.
    Cancelled,
    /// A cancel signal was sent to a running job; the outcome is unknown until terminal.
    Requested,
    /// Too late: the job had finished.
    AlreadyCompleted,
    /// The provider does not know the job.
    NotFound,
    /// The provider cannot cancel this kind of job.
    Unsupported,
}
