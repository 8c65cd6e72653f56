//! The audit trail trait: one entry per outcome of every operation that can spend or refuse.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, UserFacing};
use crate::money::Usd;
use crate::task::ProviderId;

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Completed and stored.
    Success,
    /// Refused before sending (guard, budget, confirmation, rate).
    Refused,
    /// Sent and failed (provider error, safety block, deadline).
    Failed,
    /// Interrupted by the user.
    Cancelled,
    /// A safeguard was overridden (safety checker off, unpriced model, spend written off).
    Override,
    /// A spend alert fired (a fraction of the daily limit was crossed).
    Alert,
}

/// The entrance a request came through, recorded in every audit entry so that what an agent
/// or a service user did can be told from what was typed at a terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A program using the library directly.
    #[default]
    Library,
    /// The `acgs` command line.
    Cli,
    /// An agent through `acgs mcp`.
    Mcp,
    /// A user of `acgs serve`.
    Service,
}

impl Origin {
    /// The name used in the audit log and in `--origin` filters.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Library => "library",
            Self::Cli => "cli",
            Self::Mcp => "mcp",
            Self::Service => "service",
        }
    }
}

/// What the engine reports for one outcome; the sink adds `seq`, `prev`, `ts`, `os_user` and digests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// `generate`, `pipeline`, `spend.abandon`, …
    pub operation: String,
    /// The run, if any.
    pub run_id: Option<String>,
    /// The step, if any.
    pub step: Option<String>,
    /// Provider.
    pub provider: Option<ProviderId>,
    /// Catalogue key.
    pub model: Option<String>,
    /// The provider's request id.
    pub request_id: Option<String>,
    /// The user text; the sink stores only its length and a keyed digest unless configured to
    /// keep it, and never keeps the text of a refused request.
    pub prompt: Option<String>,
    /// Worst-case estimate.
    pub estimate: Option<Usd>,
    /// Actual cost.
    pub actual: Option<Usd>,
    /// The quantity priced, and what the provider said it billed.
    pub quantity: Option<crate::money::Quantity>,
    /// Fingerprint of the key used (12 hex digits of its sha256).
    pub key_fingerprint: Option<String>,
    /// Where the key came from.
    pub key_source: Option<String>,
    /// The acgs user.
    pub user: String,
    /// The entrance it came through.
    pub origin: Origin,
    /// The entrance's session (an MCP connection, a service token's session), if any.
    pub session: Option<String>,
    /// How it ended; `None` is not allowed when recording.
    pub outcome: Option<AuditOutcome>,
    /// Stable error or override code.
    pub code: Option<String>,
}

/// Audit failures.
#[derive(Debug, thiserror::Error)]
#[error("the audit log could not be written: {0}")]
pub struct AuditError(pub String);

impl UserFacing for AuditError {
    fn code(&self) -> &'static str {
        "audit.write_failed"
    }
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Where audit entries go.
pub trait AuditSink: Send + Sync {
    /// Append one entry.
    fn record(&self, event: AuditEvent) -> Result<(), AuditError>;

    /// Append `events` in order (a sink may write them at once: one lock, one sync); stops at
    /// the first that cannot be written.
    fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        events.into_iter().try_for_each(|event| self.record(event))
    }
}
