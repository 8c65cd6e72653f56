//! Stage 9: submit. Before the request the step is written to the manifest as `submitting` and,
//! at the same time, the reservation moved to `submitted` (so that a request whose outcome is
//! unknown keeps counting: it never expires); nothing is sent until both are done, so a step the
//! manifest still has `pending` was never sent, whatever its reservation says (`acgs resume`
//! releases it). The job handle the provider returns is then recorded in the ledger and the
//! manifest before any waiting.

use acgs_core::Provider;
use acgs_core::ledger::{Ledger, ReservationId};
use acgs_core::request::{Authorized, Request, Submitted};
use acgs_storage::manifest::StepStatus;

use crate::error::EngineError;
use crate::run_state::RunState;

/// Submit `request`, keeping the manifest and the ledger in step. An error before sending
/// (manifest or ledger not writable) means nothing was sent.
pub(crate) async fn submit(
    provider: &dyn Provider,
    request: &Authorized<Request>,
    ledger: &dyn Ledger,
    reservation: &ReservationId,
    run: &RunState,
    step: &str,
) -> Result<Submitted, EngineError> {
    let journaled = run.update_step(step, |s| {
        s.status = StepStatus::Submitting;
        s.params = request.get().params.clone();
    });
    let (journaled, marked) = tokio::join!(journaled, ledger.mark_submitted(reservation, None));
    if let Err(e) = journaled {
        if marked.is_ok() {
            // Nothing was sent: the reservation must not keep counting.
            let _ = ledger.release(reservation).await;
        }
        return Err(e.into());
    }
    marked?;
    let submitted = provider.submit(request).await?;
    if let Submitted::Pending(job) = &submitted {
        if let Err(e) = ledger.mark_submitted(reservation, Some(job)).await {
            tracing::error!(
                code = acgs_core::UserFacing::code(&e),
                "the job handle could not be recorded in the ledger (the manifest has it)"
            );
        }
        run.update_step(step, |s| {
            s.status = StepStatus::Submitted;
            s.job = Some(job.clone());
            s.timings.submitted_at = Some(job.submitted_at);
        })
        .await?;
    }
    Ok(submitted)
}
