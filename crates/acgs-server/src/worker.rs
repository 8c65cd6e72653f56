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
    let failed = |code: &str, message: String| Outcome {
        state: JobState::Failed,
        actual: None,
        run_id: None,
        outputs: None,
        error: Some((code.to_owned(), message)),
    };
    let user = match shared.store.user(&job.user) {
        Ok(Some(user)) => user,
        _ => {
            return failed(
                "server.unknown_user",
                format!("user `{}` is gone", job.user),
            );
        }
    };
    let (request, max) = match crate::api::stored_request(&job.request) {
        Ok(parsed) => parsed,
        Err(e) => return failed(e.code(), e.to_string()),
    };
    let interrupt = Interrupt::new();
    shared.running_insert(&job.id, interrupt.clone());
    let caller = shared.caller(&user, max, Some(&job.id));
    let result = shared
        .suite
        .for_caller(caller)
        .generate_with(&request, &EventSink::none(), &interrupt)
        .await;
    shared.running_remove(&job.id);
    match result {
        Ok(report) => {
            let names: Vec<String> = report
                .outputs
                .iter()
                .filter_map(|o| o.path.file_name().map(|n| n.to_string_lossy().into_owned()))
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
    }
}
