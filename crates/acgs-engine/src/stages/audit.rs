//! Stage 14: one audit entry per outcome — success, refusal, failure, override.

use acgs_core::audit::{AuditEvent, AuditOutcome, AuditSink};
use acgs_core::error::{ErrorKind, UserFacing};

/// The audit outcome of an error: refusals happen before anything is sent.
#[must_use]
pub fn outcome_of(error: &dyn UserFacing, sent: bool) -> AuditOutcome {
    match error.kind() {
        ErrorKind::Guard | ErrorKind::Money | ErrorKind::Usage if !sent => AuditOutcome::Refused,
        _ if error.exit_code() >= 128 => AuditOutcome::Cancelled,
        _ => AuditOutcome::Failed,
    }
}

/// Append `events` in order; the warning of the first that failed.
pub fn record_all(sink: &dyn AuditSink, events: Vec<AuditEvent>) -> Option<String> {
    events
        .into_iter()
        .fold(None, |warning, event| warning.or(record(sink, event)))
}

/// Append `event`; a failure to audit is reported loudly but does not undo what happened.
pub fn record(sink: &dyn AuditSink, event: AuditEvent) -> Option<String> {
    match sink.record(event) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(code = e.code(), "audit entry not written");
            Some(format!("the audit log could not be written: {e}"))
        }
    }
}
