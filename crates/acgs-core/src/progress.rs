//! Progress events: where a generation is on the guarded path ([`Stage`]), one event
//! ([`ProgressEvent`]), and the sink that receives them ([`EventSink`]) — below the provider
//! interface, so that a request can carry a sink for a model's streamed words.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Where a generation is on the guarded path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Checking, pricing, reserving.
    Preparing,
    /// Uploading inputs.
    Uploading,
    /// Sending the request.
    Submitting,
    /// Waiting in the provider's queue.
    Queued,
    /// Running at the provider.
    Running,
    /// Fetching and storing results.
    Storing,
    /// Finished.
    Done,
}

/// A progress event for one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgressEvent {
    /// The run.
    pub run_id: String,
    /// The step.
    pub step: String,
    /// Where it is.
    pub stage: Stage,
    /// Short status word (`in_queue`, `in_progress`, `completed`, …).
    pub status: String,
    /// 0-based position in the provider's queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// A provider log line or note (untrusted text; renderers strip control characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Receives progress events; cheap to clone. A sink is scoped to a run and step with
/// [`EventSink::for_step`], so providers report only what they know about the job.
#[derive(Clone)]
pub struct EventSink {
    deliver: Arc<dyn Fn(ProgressEvent) + Send + Sync>,
    run_id: Arc<str>,
    step: Arc<str>,
}

impl EventSink {
    /// A sink calling `f` for every event.
    pub fn new(f: impl Fn(ProgressEvent) + Send + Sync + 'static) -> Self {
        Self {
            deliver: Arc::new(f),
            run_id: Arc::from(""),
            step: Arc::from(""),
        }
    }

    /// A sink that drops every event.
    #[must_use]
    pub fn none() -> Self {
        Self::new(|_| {})
    }

    /// The same sink, labelling events with `run_id` and `step`.
    #[must_use]
    pub fn for_step(&self, run_id: &str, step: &str) -> Self {
        Self {
            deliver: Arc::clone(&self.deliver),
            run_id: Arc::from(run_id),
            step: Arc::from(step),
        }
    }

    /// Report progress of the job of this sink's step.
    pub fn report(
        &self,
        stage: Stage,
        status: &str,
        queue_position: Option<u64>,
        message: Option<String>,
    ) {
        (self.deliver)(ProgressEvent {
            run_id: self.run_id.to_string(),
            step: self.step.to_string(),
            stage,
            status: status.to_owned(),
            queue_position,
            message,
        });
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventSink({}/{})", self.run_id, self.step)
    }
}
