//! # acgs-server
//!
//! acgs as a multi-user service (`acgs serve`): an HTTP API where people and programs send jobs
//! with their own bearer token, and in-process workers that run each job through the same
//! guarded path as the command line — the same validation, guard, worst-case reservation,
//! settlement and audit — for the job's owner. A user's daily and monthly budgets are ledger
//! scopes (`user:NAME:YYYY-MM-DD`, `user:NAME:YYYY-MM`, in UTC) that every reservation checks
//! atomically with the service's own limits.
//!
//! The service is one more entrance: it never reserves, settles, audits or writes outputs
//! itself. Its own records (users, token digests, jobs) are in [`store`].

mod api;
pub mod error;
pub mod openapi;
pub mod store;
mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use acgs_core::Usd;
use acgs_core::audit::Origin;
use acgs_core::ledger::ScopeLimit;
use acgs_engine::{Caller, Interrupt, Signal, Suite};
use tokio_util::sync::CancellationToken;

pub use api::BODY_LIMIT;
pub use error::ServerError;
pub use store::{Store, User};

/// What the routes and workers share.
pub(crate) struct Shared {
    suite: Suite,
    store: Store,
    /// Wakes an idle worker when a job is queued.
    wake: tokio::sync::Notify,
    /// The interrupt of each running job, to cancel it.
    running: Mutex<HashMap<String, Interrupt>>,
}

impl Shared {
    /// Who a job runs for: the user, through the service, with their budgets as scopes, the
    /// job's ceiling as the cap, and no one to confirm (the ceiling is the consent).
    fn caller(&self, user: &User, max: Option<Usd>, job: Option<&str>) -> Caller {
        let now = jiff::Timestamp::now();
        let day = now.strftime("%Y-%m-%d").to_string();
        let month = now.strftime("%Y-%m").to_string();
        // No job reads a file of the machine it runs on: every input must come through the API.
        let mut caller = Caller::new(&user.name)
            .origin(Origin::Service)
            .input_roots(Vec::new())
            .scope(ScopeLimit {
                scope: format!("user:{}:{day}", user.name),
                limit: user.daily,
            });
        if let Some(monthly) = user.monthly {
            caller = caller.scope(ScopeLimit {
                scope: format!("user:{}:{month}", user.name),
                limit: monthly,
            });
        }
        if let Some(max) = max {
            caller = caller.cap(max);
        }
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
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (loopback by default).
    pub addr: SocketAddr,
    /// How many jobs run at once in this process.
    pub workers: usize,
}

/// Serve the API on `options.addr` with `options.workers` in-process workers until `shutdown`:
/// returns the bound address (port 0 picks one) and the serving task. On shutdown the workers
/// stop claiming, and the server stops accepting and finishes the requests it has.
pub async fn serve(
    suite: Suite,
    store: Store,
    options: &Options,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), std::io::Error> {
    let abandoned = store.fail_abandoned().unwrap_or(0);
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "jobs left running by an earlier process were marked failed"
        );
    }
    let shared = Arc::new(Shared {
        suite,
        store,
        wake: tokio::sync::Notify::new(),
        running: Mutex::new(HashMap::new()),
    });
    let listener = tokio::net::TcpListener::bind(options.addr).await?;
    let bound = listener.local_addr()?;
    let workers: Vec<_> = (0..options.workers.max(1))
        .map(|_| tokio::spawn(worker::run(Arc::clone(&shared), shutdown.clone())))
        .collect();
    let router = api::router(Arc::clone(&shared));
    let task = tokio::spawn(async move {
        let stop = shutdown.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the service stopped");
        }
        for worker in workers {
            let _ = worker.await;
        }
    });
    Ok((bound, task))
}
