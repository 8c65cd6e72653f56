//! Stage 9: submit. The step is written to the manifest as `submitting` before the request; the
//! returned job handle is recorded with the reservation moved to `submitted` (the ledger keeps
//! the handle too) and then in the manifest, before any waiting.

use acgs_core::Provider;
use acgs_core::ledger::{Ledger, ReservationId};
use acgs_core::request::{Authorized, Request, Submitted};
use acgs_storage::manifest::StepStatus;

use crate::error::EngineError;
use crate::run::RunState;

/// Submit `request`, keeping the manifest and the ledger in step.
pub async fn submit(
    provider: &dyn Provider,
    request: &Authorized<Request>,
    ledger: &dyn Ledger,
    reservation: &ReservationId,
    run: &mut RunState,
    step: &str,
) -> Result<Submitted, EngineError> {
    run.update_step(step, |s| {
        s.status = StepStatus::Submitting;
        s.params = request.get().params.clone();
    })?;
    let submitted = provider.submit(request).await?;
    if let Submitted::Pending(job) = &submitted {
        if let Err(e) = ledger.mark_submitted(reservation, job).await {
            tracing::error!(
                code = acgs_core::UserFacing::code(&e),
                "the reservation could not be marked submitted"
            );
        }
        run.update_step(step, |s| {
            s.status = StepStatus::Submitted;
            s.job = Some(job.clone());
            s.timings.submitted_at = Some(job.submitted_at);
        })?;
    }
    Ok(submitted)
}
