//! Workers: a process claims jobs while it has free slots, runs each through the guarded path
//! for its owner (their budgets as ledger scopes, the job's ceiling as the caller's cap), and
//! records how it ended.
//!
//! A job gets its run id when first claimed. With shared records every job is held on a lease
//! that one heartbeat per process renews (and that also carries cancels from the API to
//! whichever machine runs the job); when a process dies its jobs' leases run out and another
//! worker claims them again and *resumes* their runs: the ledger decides what each needs, and a
//! provider job already sent is waited for, never sent again. A process stops claiming when it
//! shuts down; a job it runs reaches its end or the engine's cancellation first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acgs_core::UserFacing as _;
use acgs_core::provider::EventSink;
use acgs_engine::{EngineError, Interrupt, Resumed};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::api::Work;
use crate::store::{Job, JobState, Outcome};

/// How long an idle worker waits before looking at the queue again, unless woken.
const IDLE: Duration = Duration::from_millis(500);

/// This process's running jobs by id, with their tasks: a job whose lease another worker took
/// is stopped here.
type Local = Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>;

/// Takes a job out of [`Local`] when its task ends, however it ends (a panic too: its lease
/// then runs out and another worker takes it over).
struct Registered {
    local: Local,
    id: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut local) = self.local.lock() {
            local.remove(&self.id);
        }
    }
}

/// A worker process's name in the records: random, so that a restarted process never mistakes
/// its predecessor's leases for its own.
fn worker_name() -> String {
    let mut bytes = [0u8; 8];
    let suffix = getrandom::fill(&mut bytes).map_or_else(|_| "0".into(), |()| hex::encode(bytes));
    format!("wrk_{}_{suffix}", std::process::id())
}

/// Run jobs, at most `slots` at once, until `shutdown`; returns when every job it started has
/// ended.
pub(crate) async fn run(
    shared: Arc<Shared>,
    (slots, drain): (usize, Duration),
    shutdown: CancellationToken,
) {
    let worker: Arc<str> = worker_name().into();
    let free = Arc::new(tokio::sync::Semaphore::new(slots.max(1)));
    let beating = CancellationToken::new();
    let local: Local = Arc::default();
    let heart = tokio::spawn(heartbeat(
        Arc::clone(&shared),
        (Arc::clone(&worker), Arc::clone(&local)),
        beating.clone(),
    ));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&free).acquire_owned() => permit,
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let Some(job) = next_job(&shared, &worker, &shutdown).await else {
            break;
        };
        let (shared, worker) = (Arc::clone(&shared), Arc::clone(&worker));
        let registered = Registered {
            local: Arc::clone(&local),
            id: job.id.clone(),
        };
        let id = job.id.clone();
        let task = running.spawn(async move {
            let _registered = registered;
            let outcome = execute(&shared, &job).await;
            record_end(&shared, &worker, &job, &outcome).await;
            drop(permit);
            call_back(&shared, &job).await;
        });
        if let Ok(mut local) = local.lock() {
            local.insert(id, task);
        }
        // Reap the ones that ended, so that the set does not grow.
        while running.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(drain, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        hand_over(&shared, &worker, &mut running).await;
    }
    beating.cancel();
    let _ = heart.await;
}

/// Record how `job` ended, trying three times a second apart: a job whose end is never
/// recorded stays running until its lease runs out and another worker resumes it.
async fn record_end(shared: &Shared, worker: &str, job: &Job, outcome: &Outcome) {
    for attempt in 1..=3 {
        match shared.records.finish(&job.id, worker, outcome).await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(job = %job.id, attempt, error = %e, "recording a job's end failed")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The jobs still running when the drain time is over: with shared records they are handed
/// over — stopped here where they are, their leases released, for another worker to resume —
/// and with local records (no other worker) cancelled through the engine.
async fn hand_over(shared: &Shared, worker: &str, running: &mut tokio::task::JoinSet<()>) {
    if shared.records.is_shared() {
        running.abort_all();
        while running.join_next().await.is_some() {}
        match shared.records.release(worker).await {
            Ok(n) => tracing::warn!(jobs = n, "running jobs were handed over to other workers"),
            Err(e) => {
                tracing::error!(error = %e, "releasing the jobs failed; their leases will run out")
            }
        }
    } else {
        shared.cancel_all();
        while running.join_next().await.is_some() {}
    }
}

/// The next job to run, waiting while there is none; `None` once `shutdown` fires.
async fn next_job(shared: &Shared, worker: &str, shutdown: &CancellationToken) -> Option<Job> {
    while !shutdown.is_cancelled() {
        let run_id = acgs_engine::new_run_id();
        match shared
            .records
            .claim(worker, shared.lease_secs, &run_id)
            .await
        {
            Ok(Some(job)) => return Some(job),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "claiming a job failed"),
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(IDLE) => {}
            () = shutdown.cancelled() => {}
        }
    }
    None
}

/// Renew the leases of the jobs this process runs, a third of a lease apart, and cancel those
/// whose owners asked, wherever the request came in. A job whose lease is no longer this
/// worker's (another took it over) is stopped here; and when no renewal has succeeded for two
/// thirds of a lease, every job here is stopped, since other workers may take them over soon.
async fn heartbeat(
    shared: Arc<Shared>,
    (worker, local): (Arc<str>, Local),
    stop: CancellationToken,
) {
    if !shared.records.is_shared() {
        return;
    }
    let lease = Duration::from_secs(u64::from(shared.lease_secs.max(3)));
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(lease / 3) => {}
            () = stop.cancelled() => return,
        }
        let ids: Vec<String> = local
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        match shared
            .records
            .heartbeat(&worker, shared.lease_secs, &ids)
            .await
        {
            Ok(held) => {
                renewed = Instant::now();
                let kept: HashSet<&str> = held.iter().map(|(id, _)| id.as_str()).collect();
                for id in ids.iter().filter(|id| !kept.contains(id.as_str())) {
                    stop_local(
                        &local,
                        id,
                        "its lease is another worker's now; stopped here",
                    );
                }
                for (job, cancel) in &held {
                    if *cancel {
                        shared.cancel_running(job);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "renewing the job leases failed");
                if renewed.elapsed() > lease * 2 / 3 {
                    for id in &ids {
                        stop_local(
                            &local,
                            id,
                            "its lease could not be renewed; stopped here for another worker to resume",
                        );
                    }
                }
            }
        }
    }
}

/// Stop job `id`'s task here (not through the engine: its provider job stays for whoever
/// resumes it).
fn stop_local(local: &Local, id: &str, why: &str) {
    let task = local.lock().ok().and_then(|mut l| l.remove(id));
    if let Some(task) = task {
        task.abort();
        tracing::warn!(job = %id, "{why}");
    }
}

/// Post `job`'s final state to the callback URL it names, if any, on a task of its own (a
/// callback's retries never hold a worker's slot).
pub(crate) async fn call_back(shared: &Shared, job: &Job) {
    let (Some(client), Some(url)) = (
        shared.callbacks.clone(),
        crate::api::stored_callback(&job.request),
    ) else {
        return;
    };
    let Ok(Some(ended)) = shared.records.job(&job.user, &job.id).await else {
        return;
    };
    if !ended.state.is_final() {
        return;
    }
    // Checked again: the policy may have changed since the job was accepted.
    let Ok(url) = crate::callbacks::check(&client, &url) else {
        tracing::warn!(job = %job.id, "a callback URL is refused now; not sent");
        return;
    };
    let name = crate::callbacks::secret_name(&job.user);
    let secret = match crate::callbacks::fresh_secret() {
        Ok(fresh) => shared.records.meta_or_init(&name, &fresh).await,
        Err(e) => Err(e),
    };
    let Ok(secret) = secret else {
        tracing::error!(job = %job.id, "no callback secret; not sent");
        return;
    };
    let body = serde_json::json!({
        "type": format!("job.{}", ended.state.as_str()),
        "timestamp": jiff::Timestamp::now().to_string(),
        "data": crate::api::job_json(&ended),
    })
    .to_string();
    let id = format!("msg_{}", ended.id);
    // At most so many deliveries at once in this process; beyond them one is given up, logged.
    let Ok(permit) = Arc::clone(&shared.deliveries).try_acquire_owned() else {
        tracing::error!(job = %job.id, "too many callbacks in flight; this one is not sent");
        return;
    };
    tokio::spawn(async move {
        crate::callbacks::deliver(client, url, secret, id, body).await;
        drop(permit);
    });
}

/// Run `job` for its owner; never fails, a failure is the job's outcome.
async fn execute(shared: &Shared, job: &Job) -> Outcome {
    // Registered before anything else, then the owner's cancel is checked: a DELETE either
    // finds this interrupt or left its mark for this check.
    let interrupt = Interrupt::new();
    shared.running_insert(&job.id, interrupt.clone());
    if shared
        .records
        .cancel_requested(&job.id)
        .await
        .unwrap_or(false)
    {
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
    let fail = |e: &dyn acgs_core::UserFacing, text: String| (e.code().to_owned(), text);
    let user = match shared.records.user(&job.user).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            let message = format!("user `{}` is gone", job.user);
            return Err(("server.unknown_user".into(), message));
        }
        Err(e) => return Err(fail(&e, e.to_string())),
    };
    let run_id = job.run_id.clone().ok_or_else(|| {
        (
            "server.no_run_id".to_owned(),
            "the job has no run id".to_owned(),
        )
    })?;
    let stored = crate::api::stored_request(&shared.records, &job.user, &job.request)
        .await
        .map_err(|e| fail(&e, e.to_string()))?;
    let scopes = shared
        .scopes(&user, &stored.tags)
        .await
        .map_err(|e| fail(&e, e.to_string()))?;
    let caller = shared.caller(&user, scopes, stored.max, Some(&job.id));
    let suite = shared.suite.for_caller(caller);
    let events = EventSink::none();
    let provider = match &stored.work {
        Work::Single(request) => suite
            .catalog()
            .resolve(&request.model)
            .map_or_else(|_| "unknown".to_owned(), |m| m.provider.to_string()),
        Work::Pipeline { .. } => "pipeline".to_owned(),
    };
    let started = std::time::Instant::now();
    let result = if job.attempt > 1 {
        // Taken over from a worker that stopped: its run, if it started, is resumed.
        tracing::info!(job = %job.id, run = %run_id, attempt = job.attempt, "taking over a job");
        match suite.resume(&run_id, false, &events, interrupt).await {
            // It stopped before its run began: begin it.
            Err(e) if e.code() == "run.not_found" => {
                start(&suite, &run_id, &stored.work, &events, interrupt).await
            }
            resumed => resumed,
        }
    } else {
        start(&suite, &run_id, &stored.work, &events, interrupt).await
    };
    let mut outcome = outcome(result, interrupt);
    if let Work::Pipeline { path, .. } = &stored.work {
        // Its run keeps its own copy; the one kept for the job has done its work.
        let _ = tokio::fs::remove_file(path).await;
    }
    if outcome.actual.is_none() {
        // Failed or cancelled after being charged: the ledger knows what it cost.
        outcome.actual = charged(&suite, &run_id).await;
    }
    let code = outcome.error.as_ref().map(|(code, _)| code.as_str());
    shared.ran.record(&provider, started.elapsed(), code);
    Ok(outcome)
}

/// What run `run_id`'s steps were settled at, if any was (none: it never began, or nothing
/// was charged).
async fn charged(suite: &acgs_engine::Suite, run_id: &str) -> Option<acgs_core::Usd> {
    let status = suite.run_status(run_id).await.ok()?;
    let settled: Vec<acgs_core::Usd> = status.steps.iter().filter_map(|s| s.actual).collect();
    (!settled.is_empty()).then(|| {
        settled
            .into_iter()
            .fold(acgs_core::Usd::ZERO, acgs_core::Usd::saturating_add)
    })
}

/// Begin `work` as run `run_id`.
async fn start(
    suite: &acgs_engine::Suite,
    run_id: &str,
    work: &Work,
    events: &EventSink,
    interrupt: &Interrupt,
) -> Result<Resumed, EngineError> {
    match work {
        Work::Single(request) => suite
            .generate_as(run_id, request, events, interrupt)
            .await
            .map(Resumed::Single),
        Work::Pipeline { path, inputs } => {
            let pipeline = suite.load_pipeline(path)?;
            suite
                .run_pipeline_as(run_id, &pipeline, inputs, (false, events), interrupt)
                .await
                .map(Resumed::Pipeline)
        }
    }
}

/// How a run that ended went, as the job's outcome: a pipeline with a step that did not
/// finish is failed, with what it made and cost kept.
fn outcome(result: Result<Resumed, EngineError>, interrupt: &Interrupt) -> Outcome {
    match result {
        Ok(Resumed::Single(report)) => Outcome {
            state: JobState::Done,
            actual: Some(report.actual),
            run_id: Some(report.run_id),
            outputs: names(report.outputs.iter().map(|o| &o.path)),
            error: None,
        },
        Ok(Resumed::Pipeline(report)) => {
            let failed_steps = report.failed();
            let error = (failed_steps > 0).then(|| {
                let first = report.steps.iter().find_map(|s| s.error.as_ref());
                let why =
                    first.map_or_else(String::new, |(code, text)| format!(": {code}: {text}"));
                (
                    "pipeline.steps_failed".to_owned(),
                    format!(
                        "{failed_steps} of {} steps did not finish{why}",
                        report.steps.len()
                    ),
                )
            });
            Outcome {
                state: if error.is_some() {
                    JobState::Failed
                } else {
                    JobState::Done
                },
                actual: Some(report.actual),
                run_id: Some(report.run_id.clone()),
                outputs: names(
                    report
                        .steps
                        .iter()
                        .flat_map(|s| s.outputs.iter().map(|o| &o.path)),
                ),
                error,
            }
        }
        Err(e) if interrupt.signal().is_some() => Outcome {
            state: JobState::Cancelled,
            ..failed(e.code(), e.to_string())
        },
        Err(e) => failed(e.code(), e.to_string()),
    }
}

/// Output paths as the job keeps them (whole, for the download route; the API shows only
/// their names).
fn names<'a>(paths: impl Iterator<Item = &'a std::path::PathBuf>) -> Option<String> {
    let names: Vec<String> = paths.map(|p| p.to_string_lossy().into_owned()).collect();
    serde_json::to_string(&names).ok()
}
