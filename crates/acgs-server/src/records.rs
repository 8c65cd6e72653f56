//! Where the service keeps its records: one SQLite file for a service that is one process
//! (its workers in-process), or PostgreSQL for an API and workers on several machines. The
//! routes and workers see one interface; each call goes to the backend as it is.

use acgs_core::Usd;
use secrecy::SecretString;

use crate::error::ServerError;
use crate::store::{
    Job, JobState, Limit, LimitScope, Metrics, Outcome, Period, Store, Upload, User,
};

/// The PostgreSQL channel verified fal callbacks are passed on by, to workers elsewhere.
pub const CALLBACK_CHANNEL: &str = "acgs_fal_callbacks";

/// The service's records.
#[derive(Debug)]
pub enum Records {
    /// One SQLite file; one process serves it (its lock says so).
    Local(Store),
    /// PostgreSQL, shared by the API and `acgs worker` processes.
    #[cfg(feature = "postgres")]
    Shared(crate::store_pg::PgStore),
}

/// Call `$method` on whichever backend holds the records.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Records::Local(store) => store.$method($($arg),*),
            #[cfg(feature = "postgres")]
            Records::Shared(store) => store.$method($($arg),*).await,
        }
    };
}

impl Records {
    /// Whether the records are shared by processes on several machines (then jobs are held on
    /// leases, and taken over when one runs out).
    #[must_use]
    pub const fn is_shared(&self) -> bool {
        !matches!(self, Self::Local(_))
    }

    /// Whether the connection to shared records' database closed (local records: never).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Local(_) => false,
            #[cfg(feature = "postgres")]
            Self::Shared(store) => store.is_closed(),
        }
    }

    /// This service's id, the prefix of its users' ledger scopes.
    pub async fn instance(&self) -> Result<String, ServerError> {
        dispatch!(self.instance())
    }

    /// The value kept under `name`, made `fresh` if there is none yet.
    pub async fn meta_or_init(&self, name: &str, fresh: &str) -> Result<String, ServerError> {
        dispatch!(self.meta_or_init(name, fresh))
    }

    /// How many jobs `user` has queued or running.
    pub async fn open_jobs(&self, user: &str) -> Result<u64, ServerError> {
        dispatch!(self.open_jobs(user))
    }

    /// Add a user or change their budgets (a monthly budget not given is kept).
    pub async fn put_user(&self, user: &User) -> Result<(), ServerError> {
        dispatch!(self.put_user(user))
    }

    /// The user named `name`.
    pub async fn user(&self, name: &str) -> Result<Option<User>, ServerError> {
        dispatch!(self.user(name))
    }

    /// A new token for `user`, valid for `days`: its id and the token, shown once.
    pub async fn create_token(
        &self,
        user: &str,
        days: u32,
    ) -> Result<(String, SecretString), ServerError> {
        dispatch!(self.create_token(user, days))
    }

    /// Set (or, with `None`, remove) the limit of `scope` per `period`.
    pub async fn set_limit(
        &self,
        scope: &LimitScope,
        period: Period,
        amount: Option<Usd>,
    ) -> Result<(), ServerError> {
        dispatch!(self.set_limit(scope, period, amount))
    }

    /// Every limit set.
    pub async fn limits(&self) -> Result<Vec<Limit>, ServerError> {
        dispatch!(self.limits())
    }

    /// Revoke token `id`; whether there was such a live token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, ServerError> {
        dispatch!(self.revoke_token(id))
    }

    /// The user a presented token belongs to, if it is known, unrevoked and unexpired.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<User>, ServerError> {
        dispatch!(self.authenticate(presented))
    }

    /// Queue a job, or return the caller's earlier one with the same idempotency key.
    pub async fn enqueue(
        &self,
        user: &str,
        idempotency_key: Option<&str>,
        request: &str,
        estimate: Usd,
    ) -> Result<(Job, bool), ServerError> {
        dispatch!(self.enqueue(user, idempotency_key, request, estimate))
    }

    /// The job `user` made with idempotency key `key`.
    pub async fn job_by_key(&self, user: &str, key: &str) -> Result<Option<Job>, ServerError> {
        dispatch!(self.job_by_key(user, key))
    }

    /// Job `id` if `user` owns it.
    pub async fn job(&self, user: &str, id: &str) -> Result<Option<Job>, ServerError> {
        dispatch!(self.job(user, id))
    }

    /// Claim a job for `worker` on a lease of `lease_secs` (shared records only; one process
    /// needs none); a job that has no run id yet gets `run_id`.
    pub async fn claim(
        &self,
        worker: &str,
        lease_secs: u32,
        run_id: &str,
    ) -> Result<Option<Job>, ServerError> {
        match self {
            Self::Local(store) => {
                let _ = (worker, lease_secs);
                store.claim(run_id)
            }
            #[cfg(feature = "postgres")]
            Self::Shared(store) => store.claim(worker, lease_secs, run_id).await,
        }
    }

    /// Renew `worker`'s leases of jobs `ids`: those it still holds, each with whether its owner
    /// asked to cancel it (one process holds no leases: nothing).
    pub async fn heartbeat(
        &self,
        worker: &str,
        lease_secs: u32,
        ids: &[String],
    ) -> Result<Vec<(String, bool)>, ServerError> {
        match self {
            Self::Local(_) => {
                let _ = (worker, lease_secs, ids);
                Ok(Vec::new())
            }
            #[cfg(feature = "postgres")]
            Self::Shared(store) => store.heartbeat(worker, lease_secs, ids).await,
        }
    }

    /// Release `worker`'s leases at once, for other workers to take its jobs over; how many
    /// (one process holds no leases: none).
    pub async fn release(&self, worker: &str) -> Result<u64, ServerError> {
        match self {
            Self::Local(_) => {
                let _ = worker;
                Ok(0)
            }
            #[cfg(feature = "postgres")]
            Self::Shared(store) => store.release(worker).await,
        }
    }

    /// Pass a verified fal callback about `request_id` on to every worker listening on
    /// [`CALLBACK_CHANNEL`] (local records: no other process to tell).
    pub async fn notify_callback(&self, request_id: &str) -> Result<(), ServerError> {
        match self {
            Self::Local(_) => {
                let _ = request_id;
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Self::Shared(store) => store.notify_callback(request_id).await,
        }
    }

    /// Cancel `user`'s job `id`; its state after the call.
    pub async fn cancel(&self, user: &str, id: &str) -> Result<Option<JobState>, ServerError> {
        dispatch!(self.cancel(user, id))
    }

    /// Whether the owner of job `id` asked to cancel it.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool, ServerError> {
        dispatch!(self.cancel_requested(id))
    }

    /// Record how job `id` ended, if `worker` still holds it.
    pub async fn finish(
        &self,
        id: &str,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<(), ServerError> {
        match self {
            Self::Local(store) => {
                let _ = worker;
                store.finish(id, outcome)
            }
            #[cfg(feature = "postgres")]
            Self::Shared(store) => store.finish(id, worker, outcome).await,
        }
    }

    /// Record `user`'s upload.
    pub async fn put_upload(&self, user: &str, upload: &Upload) -> Result<(), ServerError> {
        dispatch!(self.put_upload(user, upload))
    }

    /// What `user`'s uploads take: bytes and files.
    pub async fn uploads_of(&self, user: &str) -> Result<(u64, u64), ServerError> {
        dispatch!(self.uploads_of(user))
    }

    /// `user`'s upload `id`.
    pub async fn upload(&self, user: &str, id: &str) -> Result<Option<Upload>, ServerError> {
        dispatch!(self.upload(user, id))
    }

    /// What `/metrics` shows.
    pub async fn metrics(&self) -> Result<Metrics, ServerError> {
        dispatch!(self.metrics())
    }
}
