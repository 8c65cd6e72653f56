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

/// Append `event`; a failure to audit is reported loudly but does not undo what happened.
pub fn record(sink: &dyn AuditSink, event: AuditEvent) -> Option<String> {
    record_all(sink, vec![event])
}

/// Append `events` at once, in order; the warning if they could not be written.
pub fn record_all(sink: &dyn AuditSink, events: Vec<AuditEvent>) -> Option<String> {
    match sink.record_all(events) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(code = e.code(), "audit entry not written");
            Some(format!("the audit log could not be written: {e}"))
        }
    }
}
