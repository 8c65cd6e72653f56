//! In-process workers: each claims the oldest queued job, runs it through the guarded path for
//! its owner (their budgets as ledger scopes, the job's ceiling as the caller's cap), and records
//! how it ended. A worker stops claiming when the service shuts down; a job it runs reaches its
//! end or the engine's cancellation first.

use std::sync::Arc;
use std::time::Duration;

use acgs_core::UserFacing as _;
use acgs_core::provider::EventSink;
use acgs_engine::Interrupt;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::store::{Job, JobState, Outcome};

/// How long an idle worker waits before looking at the queue again, unless woken.
const IDLE: Duration = Duration::from_millis(500);

/// Run one worker until `shutdown`.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let job = match shared.store.claim() {
            Ok(Some(job)) => job,
            Ok(None) => {
                tokio::select! {
                    () = shared.wake.notified() => {}
                    () = tokio::time::sleep(IDLE) => {}
                    () = shutdown.cancelled() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming a job failed");
                tokio::time::sleep(IDLE).await;
                continue;
            }
        };
        let outcome = execute(&shared, &job).await;
        if let Err(e) = shared.store.finish(&job.id, &outcome) {
            tracing::error!(job = %job.id, error = %e, "recording a job's end failed");
        }
    }
}

/// Run `job` for its owner; never fails, a failure is the job's outcome.
async fn execute(shared: &Shared, job: &Job) -> Outcome {
    // Registered before anything else, then the owner's cancel is checked: a DELETE either
    // finds this interrupt or left its mark for this check.
    let interrupt = Interrupt::new();
    shared.running_insert(&job.id, interrupt.clone());
    if shared.store.cancel_requested(&job.id).unwrap_or(false) {
        interrupt.fire(acgs_engine::Signal::Interrupt);
    }
    let outcome = run_job(shared, job, &interrupt)
        .await
        .unwrap_or_else(|(code, message)| failed(&code, message));
    shared.running_remove(&job.id);
    outcome
}

fn failed(code: &str, message: String) -> Outcome {
    Outcome {
        state: JobState::Failed,
        actual: None,
        run_id: None,
        outputs: None,
        error: Some((code.to_owned(), message)),
    }
}

/// The job's run through the guarded path, or the code and message of why it could not start.
async fn run_job(
    shared: &Shared,
    job: &Job,
    interrupt: &Interrupt,
) -> Result<Outcome, (String, String)> {
    let user = match shared.store.user(&job.user) {
        Ok(Some(user)) => user,
        Ok(None) => {
            let message = format!("user `{}` is gone", job.user);
            return Err(("server.unknown_user".into(), message));
        }
        Err(e) => return Err((e.code().to_owned(), e.to_string())),
    };
    let (request, max) = crate::api::stored_request(&shared.store, &job.user, &job.request)
        .map_err(|e| (e.code().to_owned(), e.to_string()))?;
    let caller = shared.caller(&user, max, Some(&job.id));
    let result = shared
        .suite
        .for_caller(caller)
        .generate_with(&request, &EventSink::none(), interrupt)
        .await;
    Ok(match result {
        Ok(report) => {
            // Kept whole for the download route; the API shows only their names.
            let names: Vec<String> = report
                .outputs
                .iter()
                .map(|o| o.path.to_string_lossy().into_owned())
                .collect();
            Outcome {
                state: JobState::Done,
                actual: Some(report.actual),
                run_id: Some(report.run_id),
                outputs: serde_json::to_string(&names).ok(),
                error: None,
            }
        }
        Err(e) if interrupt.signal().is_some() => Outcome {
            state: JobState::Cancelled,
            ..failed(e.code(), e.to_string())
        },
        Err(e) => failed(e.code(), e.to_string()),
    })
}
