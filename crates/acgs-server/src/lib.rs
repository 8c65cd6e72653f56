//! # acgs-server
//!
//! acgs as a multi-user service (`acgs serve`): an HTTP API where people and programs send jobs
//! with their own bearer token, and workers (in-process, or `acgs worker` processes on other
//! machines) that run each job through the same
//! guarded path as the command line — the same validation, guard, worst-case reservation,
//! settlement and audit — for the job's owner. The budgets of the user, of the whole service and
//! of the job's tags, per UTC day, ISO week and month, are ledger scopes
//! (`SERVICE:user:NAME:2026-12-06`, `SERVICE:tag:film:2026-W49`, `SERVICE` this service's own
//! id) that every reservation checks atomically in one transaction.
//!
//! The service is one more entrance: it never reserves, settles, audits or writes outputs
//! itself. Its own records (users, token digests, jobs, uploads) are [`Records`]: a SQLite
//! file ([`store`]) when the service is one process, or PostgreSQL (`store_pg`, feature
//! `postgres`) when an API process and `acgs worker` processes on other machines share them
//! ([`work`]).

mod admin;
mod api;
mod callbacks;
pub mod error;
mod files;
mod metrics;
pub mod openapi;
mod pipelines;
mod rate;
mod records;
pub mod store;
#[cfg(feature = "postgres")]
pub mod store_pg;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::audit::Origin;
use acgs_core::ledger::ScopeLimit;
use acgs_engine::{Caller, Confirm, ConfirmAnswer, Interrupt, Signal, Suite};
use tokio_util::sync::CancellationToken;

pub use api::BODY_LIMIT;
pub use error::ServerError;
pub use records::{CALLBACK_CHANNEL, Records};
pub use store::{Limit, LimitScope, Period, Store, User};

/// The limit of a scope no limit bounds: it still counts every reservation, so that a limit
/// set later in its period starts from what was already spent.
pub(crate) const UNLIMITED: Usd = Usd::from_dollars(1_000_000_000);

/// The most provider callbacks taken a minute, for the whole service.
const WEBHOOK_RATE: u32 = 6000;
/// The most client callbacks being delivered at once in one process.
const MAX_DELIVERIES: usize = 256;
/// The most event streams open at once.
const MAX_STREAMS: usize = 256;
/// How long running jobs may take to end after a shutdown before they are cancelled.
const DRAIN: Duration = Duration::from_secs(30);

/// A job without a ceiling has nobody to confirm a spend the configuration wants confirmed: it
/// is refused above `confirm_above` (a ceiling the job gives is its consent).
struct NoOneToAsk;

impl Confirm for NoOneToAsk {
    fn confirm(&self, _what: &str, _estimate: Usd, _warn: bool) -> ConfirmAnswer {
        ConfirmAnswer::Unavailable
    }
}

/// What the routes and workers share.
pub(crate) struct Shared {
    suite: Suite,
    records: Records,
    /// This service's id, the prefix of its users' ledger scopes.
    instance: String,
    /// Fired when the service shuts down.
    shutdown: CancellationToken,
    /// Event streams open.
    streams: Arc<tokio::sync::Semaphore>,
    /// Where uploads are kept, a folder per user.
    files: PathBuf,
    /// The largest upload, in bytes.
    max_upload: u64,
    /// Wakes an idle worker when a job is queued.
    wake: tokio::sync::Notify,
    /// The interrupt of each running job, to cancel it.
    running: Mutex<HashMap<String, Interrupt>>,
    /// How long a worker's claim on a job lasts unless renewed (shared records).
    lease_secs: u32,
    /// The client callbacks are sent with, under its address policy; none: no callbacks.
    callbacks: Option<acgs_http::HttpClient>,
    /// Each user's request rate.
    rates: rate::Rates,
    /// The rate of fal's (unauthenticated) callbacks, for the whole service.
    webhook_rate: rate::Rates,
    /// Callback deliveries in flight.
    deliveries: Arc<tokio::sync::Semaphore>,
    /// How fal's callbacks are checked and whom they wake.
    provider_callbacks: Option<ProviderCallbacks>,
    /// The jobs this process ran, for `/metrics`.
    ran: metrics::Ran,
}

/// Provider callbacks the service takes (`POST /v1/webhooks/fal`): the verifier of fal's
/// signatures and the waiters a verified callback wakes (those of this process).
#[derive(Debug, Clone)]
pub struct ProviderCallbacks {
    /// Checks a delivery's signature and freshness.
    pub fal: Arc<dyn acgs_core::callback::CallbackVerifier>,
    /// The waits of this process's fal jobs.
    pub wakeups: acgs_core::callback::JobWakeups,
}

impl Shared {
    /// Every ledger scope a job of `user` tagged `tags` counts against, with its limit: the
    /// user's day, week and month; the service's and each tag's day, week and month. A period
    /// with no limit is counted all the same (at [`UNLIMITED`]), so that a limit set later in
    /// the period starts from what was already spent there. Scopes are
    /// named `SERVICE:WHAT:PERIOD` (`srv1a2b:user:ada:2026-W49`, `srv1a2b:tag:film:2026-12`,
    /// UTC); the ledger checks them all in the reservation's one transaction. A tag no limit
    /// names is refused: every tag is a budget.
    async fn scopes(&self, user: &User, tags: &[String]) -> Result<Vec<ScopeLimit>, ServerError> {
        let now = jiff::Timestamp::now();
        let own = [
            (Period::Day, Some(user.daily)),
            (Period::Week, user.weekly),
            (Period::Month, user.monthly),
        ];
        let mut scopes: Vec<ScopeLimit> = own
            .into_iter()
            .map(|(period, limit)| ScopeLimit {
                scope: self.scope_name(&format!("user:{}", user.name), period, now),
                limit: limit.unwrap_or(UNLIMITED),
            })
            .collect();
        scopes.extend(self.shared_scopes(tags).await?);
        Ok(scopes)
    }

    /// `SERVICE:WHAT:PERIOD` for the period holding `now`.
    fn scope_name(&self, what: &str, period: Period, now: jiff::Timestamp) -> String {
        format!("{}:{what}:{}", self.instance, period.key(now))
    }

    /// The service's scopes and those of `tags` (see [`Shared::scopes`]).
    async fn shared_scopes(&self, tags: &[String]) -> Result<Vec<ScopeLimit>, ServerError> {
        let now = jiff::Timestamp::now();
        let limits = self.records.limits().await?;
        if let Some(unknown) = tags.iter().find(|t| {
            !limits
                .iter()
                .any(|l| l.scope == LimitScope::Tag((*t).clone()))
        }) {
            return Err(ServerError::BadRequest(format!(
                "tags: `{unknown}` has no budget; an admin sets one first"
            )));
        }
        let mut counted = vec![LimitScope::Service];
        counted.extend(tags.iter().map(|t| LimitScope::Tag(t.clone())));
        let mut scopes = Vec::new();
        for scope in counted {
            for period in Period::ALL {
                let set = limits
                    .iter()
                    .find(|l| l.scope == scope && l.period == period);
                scopes.push(ScopeLimit {
                    scope: self.scope_name(&scope.as_text(), period, now),
                    limit: set.map_or(UNLIMITED, |l| l.amount),
                });
            }
        }
        Ok(scopes)
    }

    /// Who a job runs for: the user, through the service, with `scopes` (see
    /// [`Shared::scopes`]) and the job's ceiling as the cap (which is the consent a
    /// confirmation would ask for).
    fn caller(
        &self,
        user: &User,
        scopes: Vec<ScopeLimit>,
        max: Option<Usd>,
        job: Option<&str>,
    ) -> Caller {
        // A job reads only its owner's uploads, never another file of this machine.
        let uploads =
            files::folder(&self.files, &user.name).and_then(|f| std::fs::canonicalize(f).ok());
        let mut caller = Caller::new(&user.name)
            .origin(Origin::Service)
            .input_roots(uploads.into_iter().collect());
        for scope in scopes {
            caller = caller.scope(scope);
        }
        caller = match max {
            Some(max) => caller.cap(max),
            None => caller.confirm(Arc::new(NoOneToAsk)),
        };
        if let Some(job) = job {
            caller = caller.session(job);
        }
        caller
    }

    fn running_insert(&self, job: &str, interrupt: Interrupt) {
        if let Ok(mut running) = self.running.lock() {
            running.insert(job.to_owned(), interrupt);
        }
    }

    fn running_remove(&self, job: &str) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(job);
        }
    }

    fn cancel_running(&self, job: &str) {
        if let Some(interrupt) = self.running.lock().ok().and_then(|r| r.get(job).cloned()) {
            interrupt.fire(Signal::Interrupt);
        }
    }

    /// Cancel every running job (after the drain time of a shutdown).
    fn cancel_all(&self) {
        let running: Vec<Interrupt> = self
            .running
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default();
        for interrupt in running {
            interrupt.fire(Signal::Terminate);
        }
    }
}

/// Hold `path` locked for as long as the file lives, or fail when another `acgs serve` holds it.
fn lock(path: &std::path::Path) -> std::io::Result<fs_err::File> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    rustix::fs::flock(
        file.file(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .map_err(|_| {
        std::io::Error::other(format!(
            "another acgs serve uses these records ({} is locked)",
            path.display()
        ))
    })?;
    Ok(file)
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (loopback by default).
    pub addr: SocketAddr,
    /// How many jobs run at once in this process.
    pub workers: usize,
    /// A file held locked while serving, so that one set of records has one server.
    pub lock: PathBuf,
    /// Where uploads are kept (a private folder per user is made in it).
    pub files: PathBuf,
    /// The largest upload, in bytes.
    pub max_upload: u64,
    /// How long a worker's claim on a job lasts unless renewed (shared records).
    pub lease_secs: u32,
    /// The client that sends jobs' callbacks, whose address policy they obey; none refuses
    /// `callback_url`.
    pub callbacks: Option<acgs_http::HttpClient>,
    /// The most requests one user may make a minute (in bursts of as many); more are answered
    /// 429 with `Retry-After`.
    pub user_rate: u32,
    /// fal's callbacks, when the service has a public URL they can reach.
    pub provider_callbacks: Option<ProviderCallbacks>,
}

/// The fal callbacks another process (the API) received, for this worker's waits: the API
/// passes each verified one on through the database (`NOTIFY`), and these wake-ups are the
/// ones the worker's fal provider waits on.
#[derive(Debug)]
pub struct CallbackWakes {
    /// The waits of this process's fal jobs.
    pub wakeups: acgs_core::callback::JobWakeups,
    /// The request ids the API passed on.
    pub notices: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// What keeps the listening connection open.
    pub connection: Box<dyn std::any::Any + Send>,
}

/// How an `acgs worker` process works.
#[derive(Debug)]
pub struct WorkerOptions {
    /// How many jobs it runs at once.
    pub jobs: usize,
    /// Where the API keeps uploads (a path every worker shares).
    pub files: PathBuf,
    /// How long its claim on a job lasts unless renewed; a job whose worker died is taken over
    /// after this.
    pub lease_secs: u32,
    /// The client that sends jobs' callbacks (see [`Options::callbacks`]).
    pub callbacks: Option<acgs_http::HttpClient>,
    /// How long running jobs may take to end after a shutdown before they are handed over.
    pub drain_secs: u32,
    /// fal's callbacks, passed on by the API, when jobs are submitted with a webhook.
    pub wakes: Option<CallbackWakes>,
}

/// The shared state of one process, with `records`' service id.
async fn shared(
    suite: Suite,
    records: Records,
    (files, max_upload, lease_secs, user_rate): (PathBuf, u64, u32, u32),
    (callbacks, provider_callbacks): (Option<acgs_http::HttpClient>, Option<ProviderCallbacks>),
    shutdown: CancellationToken,
) -> Result<Arc<Shared>, std::io::Error> {
    let instance = records
        .instance()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Arc::new(Shared {
        suite,
        records,
        instance,
        shutdown,
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        files,
        max_upload,
        wake: tokio::sync::Notify::new(),
        running: Mutex::new(HashMap::new()),
        lease_secs: lease_secs.max(3),
        callbacks,
        rates: rate::Rates::new(user_rate),
        webhook_rate: rate::Rates::new(WEBHOOK_RATE),
        deliveries: Arc::new(tokio::sync::Semaphore::new(MAX_DELIVERIES)),
        provider_callbacks,
        ran: metrics::Ran::default(),
    }))
}

/// Run jobs from shared `records` until `shutdown`, at most `options.jobs` at once, through
/// `suite`: an `acgs worker` process, on any machine that reaches the database and the output
/// and upload folders. On shutdown it stops claiming and its running jobs get
/// `options.drain_secs` to end;
/// those still running are then handed over, not cancelled: their leases are released and
/// another worker resumes each run from its last checkpoint (a provider job already sent is
/// waited for, never sent again).
pub async fn work(
    suite: Suite,
    records: Records,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> Result<(), std::io::Error> {
    if !records.is_shared() {
        return Err(std::io::Error::other(
            "workers on their own need shared records (a PostgreSQL ledger); with SQLite, `acgs serve` runs its workers",
        ));
    }
    let shared = shared(
        suite,
        records,
        (options.files.clone(), 0, options.lease_secs, 1),
        (options.callbacks.clone(), None),
        shutdown.clone(),
    )
    .await?;
    let drain = Duration::from_secs(u64::from(options.drain_secs));
    let watching = tokio::spawn(watch_connection(Arc::clone(&shared)));
    let waking = options.wakes.map(|wakes| tokio::spawn(pass_on(wakes)));
    worker::run(Arc::clone(&shared), (options.jobs, drain), shutdown).await;
    watching.abort();
    if let Some(waking) = waking {
        waking.abort();
    }
    connection_kept(&shared)
}

/// Wake this process's waits for the fal jobs the API heard of.
async fn pass_on(mut wakes: CallbackWakes) {
    while let Some(request_id) = wakes.notices.recv().await {
        wakes.wakeups.wake(&request_id);
    }
    drop(wakes.connection);
}

/// Watch shared records' database connection: when it closes, shut down (a supervisor starts
/// the process again, and other workers resume its jobs once their leases run out).
async fn watch_connection(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shared.shutdown.cancelled() => return,
        }
        if shared.records.is_closed() {
            tracing::error!("the connection to the records' database closed; shutting down");
            shared.shutdown.cancel();
            return;
        }
    }
}

/// An error if the process stopped because it lost its records' database.
fn connection_kept(shared: &Shared) -> Result<(), std::io::Error> {
    if shared.records.is_closed() {
        return Err(std::io::Error::other(
            "the connection to the records' database closed",
        ));
    }
    Ok(())
}

/// Serve the API on `options.addr` with `options.workers` in-process workers until `shutdown`:
/// returns the bound address (port 0 picks one) and the serving task, which fails when the
/// process stopped because it lost its shared records' database. On shutdown the workers
/// stop claiming, event streams end, the server finishes the requests it has, and running jobs
/// get 30 s to end before they are cancelled through the engine. With local records one server
/// holds them (`options.lock`) and needs a worker; with shared records `options.workers` may
/// be 0 (`acgs worker` processes run the jobs).
pub async fn serve(
    suite: Suite,
    records: Records,
    options: &Options,
    shutdown: CancellationToken,
) -> Result<
    (
        SocketAddr,
        tokio::task::JoinHandle<Result<(), std::io::Error>>,
    ),
    std::io::Error,
> {
    let held = match &records {
        Records::Local(store) => Some(hold_local(store, &options.lock)?),
        #[cfg(feature = "postgres")]
        Records::Shared(_) => None,
    };
    if options.workers == 0 && !records.is_shared() {
        return Err(std::io::Error::other(
            "with local records the service runs its own workers: give --workers 1 or more",
        ));
    }
    let listener = tokio::net::TcpListener::bind(options.addr).await?;
    let bound = listener.local_addr()?;
    let shared = shared(
        suite,
        records,
        (
            options.files.clone(),
            options.max_upload,
            options.lease_secs,
            options.user_rate,
        ),
        (
            options.callbacks.clone(),
            options.provider_callbacks.clone(),
        ),
        shutdown.clone(),
    )
    .await?;
    let workers = (options.workers > 0).then(|| {
        tokio::spawn(worker::run(
            Arc::clone(&shared),
            (options.workers, DRAIN),
            shutdown.clone(),
        ))
    });
    let router = api::router(Arc::clone(&shared));
    let watching = tokio::spawn(watch_connection(Arc::clone(&shared)));
    let task = tokio::spawn(async move {
        let stop = shutdown.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the service stopped");
        }
        if let Some(workers) = workers {
            let _ = workers.await;
        }
        watching.abort();
        drop(held);
        connection_kept(&shared)
    });
    Ok((bound, task))
}

/// Lock the local records for this server, then fail the jobs an earlier process left running.
fn hold_local(store: &Store, lock_path: &std::path::Path) -> Result<fs_err::File, std::io::Error> {
    let held = lock(lock_path)?;
    // Only now, holding the lock: no other server can be running these jobs.
    let abandoned = store
        .fail_abandoned()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "jobs left running by an earlier process were marked failed"
        );
    }
    Ok(held)
}
