//! Stage 10: wait for the job with progress events, an idle timeout inside the provider and a
//! job deadline here. A wait that ends early leaves the run resumable.

use std::time::Duration;

use acgs_core::Provider;
use acgs_core::provider::{CancellationToken, EventSink, ProviderError};
use acgs_core::request::{JobHandle, Output};

/// How a wait ended.
#[derive(Debug)]
pub(crate) enum Waited {
    /// The provider produced an output.
    Output(Output),
    /// The job failed.
    Failed(ProviderError),
    /// The deadline passed; the job may still be running.
    Deadline,
    /// The user interrupted.
    Interrupted,
}

/// Wait for `job` until it ends, the deadline passes or `cancel` fires.
pub(crate) async fn wait(
    provider: &dyn Provider,
    job: &JobHandle,
    events: &EventSink,
    cancel: &CancellationToken,
    deadline: Duration,
) -> Waited {
    let waiting = provider.wait(job, events, cancel.clone());
    match tokio::time::timeout(deadline, waiting).await {
        Err(_) => Waited::Deadline,
        Ok(_) if cancel.is_cancelled() => Waited::Interrupted,
        Ok(Ok(output)) => Waited::Output(output),
        Ok(Err(error)) => Waited::Failed(error),
    }
}
