//! Progress and cancellation of one tool call. The engine's progress events become MCP progress
//! notifications (stage, queue position, provider log lines made printable, elapsed time) when
//! the client asked for them; the client's cancellation fires the engine's interrupt, which
//! cancels the provider job and settles by the charge table.

use std::sync::Arc;
use std::time::Instant;

use acgs_core::provider::{EventSink, ProgressEvent};
use acgs_core::redact::Redactor;
use acgs_engine::{Interrupt, Signal};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::session::Session;

/// The progress sink and the interrupt of one call; dropping it stops both forwarders.
pub(crate) struct CallWatch {
    /// Where the engine reports progress.
    pub(crate) events: EventSink,
    /// Fired when the client cancels the call.
    pub(crate) interrupt: Interrupt,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for CallWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl CallWatch {
    /// Watch the call of `context` in `session`: every run it starts is remembered as the
    /// session's, and progress goes to the client if it asked (keys masked).
    pub(crate) fn new(context: &RequestContext<RoleServer>, session: &Arc<Session>) -> Self {
        let interrupt = Interrupt::new();
        let cancelled = context.ct.clone();
        let fire = interrupt.clone();
        let mut tasks = vec![tokio::spawn(async move {
            cancelled.cancelled().await;
            fire.fire(Signal::Interrupt);
        })];
        let progress = context.meta.get_progress_token().map(|token| {
            let redactor = session.suite().guard().redactor().clone();
            let (tx, task) = forward(token, context.peer.clone(), redactor);
            tasks.push(task);
            tx
        });
        let session = Arc::clone(session);
        let events = EventSink::new(move |event| {
            session.remember_run(&event.run_id);
            if let Some(tx) = &progress {
                let _ = tx.send(event);
            }
        });
        Self {
            events,
            interrupt,
            tasks,
        }
    }
}

/// A channel whose events are sent, in order, as progress notifications for `token`.
fn forward(
    token: ProgressToken,
    peer: Peer<RoleServer>,
    redactor: Redactor,
) -> (mpsc::UnboundedSender<ProgressEvent>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<ProgressEvent>();
    let started = Instant::now();
    let task = tokio::spawn(async move {
        let mut count = 0u32;
        while let Some(event) = rx.recv().await {
            count = count.saturating_add(1);
            let param = ProgressNotificationParam::new(token.clone(), f64::from(count))
                .with_message(
                    redactor
                        .redact(&message(&event, started.elapsed().as_secs()))
                        .into_owned(),
                );
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// One line for a progress notification: run, step, stage, status, queue position, elapsed time,
/// and the provider's note made printable.
fn message(event: &ProgressEvent, elapsed_secs: u64) -> String {
    let stage = format!("{:?}", event.stage).to_lowercase();
    let mut text = format!(
        "run {} step {}: {stage} {}",
        event.run_id, event.step, event.status
    );
    if let Some(position) = event.queue_position {
        text.push_str(&format!(", queue position {position}"));
    }
    text.push_str(&format!(", {elapsed_secs} s"));
    if let Some(note) = &event.message {
        text.push_str(": ");
        text.push_str(&crate::results::printable(note));
    }
    text
}
