//! The service's records in PostgreSQL, shared by one API process and any number of worker
//! processes on other machines (`acgs worker`): the same users, token digests, jobs and uploads
//! as [`crate::store::Store`], in `srv_*` tables beside the ledger's.
//!
//! The jobs table is also the queue. A worker claims the oldest claimable job with `FOR UPDATE
//! SKIP LOCKED` — so claims never wait on one another — and holds it on a lease it renews; a job
//! whose lease ran out (its worker died) is claimable again, and the next worker resumes its run
//! rather than sending it again. Times come from the server's clock.

use std::sync::Arc;

use acgs_core::Usd;
use secrecy::{ExposeSecret as _, SecretString};
use tokio_postgres::{Client, Row};

use crate::error::ServerError;
use crate::store::{
    Job, JobState, Limit, LimitScope, Metrics, Outcome, Period, TOKEN_PREFIX, Upload, User,
    check_user_name, digest, limit_of, random_hex,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS srv_users (
    name TEXT PRIMARY KEY,
    daily_micros BIGINT NOT NULL,
    monthly_micros BIGINT,
    weekly_micros BIGINT,
    admin BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS srv_limits (
    scope TEXT NOT NULL,
    period TEXT NOT NULL,
    micros BIGINT NOT NULL,
    PRIMARY KEY (scope, period)
);
CREATE TABLE IF NOT EXISTS srv_tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES srv_users(name),
    digest TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS srv_jobs (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    idempotency_key TEXT,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    estimate_micros BIGINT NOT NULL,
    actual_micros BIGINT,
    run_id TEXT,
    outputs TEXT,
    error_code TEXT,
    error_message TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    worker TEXT,
    lease_until TIMESTAMPTZ,
    attempts INT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (user_name, idempotency_key)
);
CREATE INDEX IF NOT EXISTS srv_jobs_open ON srv_jobs (created_at, id) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS srv_jobs_worker ON srv_jobs (worker) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS srv_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS srv_files (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
";

/// The columns [`job`] reads, in its order.
const JOB_COLUMNS: &str = "id, user_name, state, request, estimate_micros, actual_micros, run_id, outputs, error_code, error_message, attempts";

/// The service's records on a PostgreSQL server.
#[derive(Clone)]
pub struct PgStore {
    client: Arc<Client>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

fn failed(e: &tokio_postgres::Error) -> ServerError {
    let text = e.as_db_error().map_or_else(
        || e.to_string(),
        |db| format!("{} ({})", db.message(), db.code().code()),
    );
    ServerError::Store(text)
}

fn job(row: &Row) -> Job {
    let code: Option<String> = row.get(8);
    let message: Option<String> = row.get(9);
    Job {
        id: row.get(0),
        user: row.get(1),
        state: JobState::parse(row.get(2)),
        request: row.get(3),
        estimate: Usd::from_micros(row.get(4)),
        actual: row.get::<_, Option<i64>>(5).map(Usd::from_micros),
        run_id: row.get(6),
        outputs: row.get(7),
        error: code.map(|c| (c, message.unwrap_or_default())),
        attempt: u32::try_from(row.get::<_, i32>(10)).unwrap_or(0),
    }
}

fn user_of(r: &Row) -> User {
    User {
        name: r.get(0),
        daily: Usd::from_micros(r.get(1)),
        monthly: r.get::<_, Option<i64>>(2).map(Usd::from_micros),
        weekly: r.get::<_, Option<i64>>(3).map(Usd::from_micros),
        admin: r.get(4),
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PgStore {
    /// Use `client`, creating the tables if needed (under an advisory lock, so that processes
    /// starting at once do not race).
    pub async fn new(client: Client) -> Result<Self, ServerError> {
        let sql = format!(
            "BEGIN; SELECT pg_advisory_xact_lock(727275); {SCHEMA}
             ALTER TABLE srv_users ADD COLUMN IF NOT EXISTS weekly_micros BIGINT;
             ALTER TABLE srv_users ADD COLUMN IF NOT EXISTS admin BOOLEAN NOT NULL DEFAULT false;
             COMMIT;"
        );
        client.batch_execute(&sql).await.map_err(|e| failed(&e))?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// Whether the connection closed (the database restarted or the network failed): every
    /// later call fails, so the process should stop and be started again.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// This service's id, made once and shared by every process (see
    /// [`crate::store::Store::instance`]).
    pub async fn instance(&self) -> Result<String, ServerError> {
        self.meta_or_init("instance", &format!("srv{}", random_hex(4)?))
            .await
    }

    /// The value kept under `name`, made `fresh` if there is none yet (the first writer wins).
    pub async fn meta_or_init(&self, name: &str, fresh: &str) -> Result<String, ServerError> {
        self.client
            .execute(
                "INSERT INTO srv_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh],
            )
            .await
            .map_err(|e| failed(&e))?;
        let row = self
            .client
            .query_one("SELECT value FROM srv_meta WHERE name = $1", &[&name])
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.get(0))
    }

    /// How many jobs `user` has queued or running.
    pub async fn open_jobs(&self, user: &str) -> Result<u64, ServerError> {
        let row = self
            .client
            .query_one(
                "SELECT COUNT(*) FROM srv_jobs WHERE user_name = $1 AND state IN ('queued', 'running')",
                &[&user],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(count(row.get(0)))
    }

    /// Add a user or change their budgets (a monthly budget not given is kept).
    pub async fn put_user(&self, user: &User) -> Result<(), ServerError> {
        check_user_name(&user.name)?;
        self.client
            .execute(
                "INSERT INTO srv_users (name, daily_micros, monthly_micros, weekly_micros, admin) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET daily_micros = $2, monthly_micros = COALESCE($3, srv_users.monthly_micros),
                 weekly_micros = COALESCE($4, srv_users.weekly_micros), admin = $5",
                &[&user.name, &user.daily.micros(), &user.monthly.map(Usd::micros), &user.weekly.map(Usd::micros), &user.admin],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    }

    /// The user named `name`.
    pub async fn user(&self, name: &str) -> Result<Option<User>, ServerError> {
        let row = self
            .client
            .query_opt(
                "SELECT name, daily_micros, monthly_micros, weekly_micros, admin FROM srv_users WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.as_ref().map(user_of))
    }

    /// A new token for `user`, valid for `days` (see [`crate::store::Store::create_token`]).
    pub async fn create_token(
        &self,
        user: &str,
        days: u32,
    ) -> Result<(String, SecretString), ServerError> {
        if self.user(user).await?.is_none() {
            return Err(ServerError::UnknownUser(user.to_owned()));
        }
        let id = format!("tok_{}", random_hex(8)?);
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_hex(32)?));
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        self.client
            .execute(
                "INSERT INTO srv_tokens (id, user_name, digest, expires_at)
                 VALUES ($1, $2, $3, clock_timestamp() + ($4::int * interval '1 day'))",
                &[&id, &user, &digest(token.expose_secret()), &days],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok((id, token))
    }

    /// Revoke token `id`; whether there was such a live token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, ServerError> {
        let n = self
            .client
            .execute(
                "UPDATE srv_tokens SET revoked_at = clock_timestamp() WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(n > 0)
    }

    /// The user a presented token belongs to, if it is known, unrevoked and unexpired.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<User>, ServerError> {
        if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
            return Ok(None);
        }
        let row = self
            .client
            .query_opt(
                "SELECT u.name, u.daily_micros, u.monthly_micros, u.weekly_micros, u.admin FROM srv_tokens t JOIN srv_users u ON u.name = t.user_name
                 WHERE t.digest = $1 AND t.revoked_at IS NULL AND t.expires_at > clock_timestamp()",
                &[&digest(presented)],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.as_ref().map(user_of))
    }

    /// Set (or, with `None`, remove) the limit of `scope` per `period`.
    pub async fn set_limit(
        &self,
        scope: &LimitScope,
        period: Period,
        amount: Option<Usd>,
    ) -> Result<(), ServerError> {
        let (scope, period) = (scope.as_text(), period.as_str());
        let done = match amount {
            Some(amount) => {
                self.client
                    .execute(
                        "INSERT INTO srv_limits (scope, period, micros) VALUES ($1, $2, $3)
                         ON CONFLICT (scope, period) DO UPDATE SET micros = $3",
                        &[&scope, &period, &amount.micros()],
                    )
                    .await
            }
            None => {
                self.client
                    .execute(
                        "DELETE FROM srv_limits WHERE scope = $1 AND period = $2",
                        &[&scope, &period],
                    )
                    .await
            }
        };
        done.map(|_| ()).map_err(|e| failed(&e))
    }

    /// Every limit set.
    pub async fn limits(&self) -> Result<Vec<Limit>, ServerError> {
        let rows = self
            .client
            .query(
                "SELECT scope, period, micros FROM srv_limits ORDER BY scope, period",
                &[],
            )
            .await
            .map_err(|e| failed(&e))?;
        rows.iter()
            .map(|r| limit_of(r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// Queue a job for `user`, or return their earlier job with the same idempotency key
    /// (`false`: not new).
    pub async fn enqueue(
        &self,
        user: &str,
        idempotency_key: Option<&str>,
        request: &str,
        estimate: Usd,
    ) -> Result<(Job, bool), ServerError> {
        if let Some(key) = idempotency_key
            && let Some(job) = self.job_by_key(user, key).await?
        {
            return Ok((job, false));
        }
        let id = format!("job_{}", random_hex(12)?);
        let inserted = self
            .client
            .execute(
                "INSERT INTO srv_jobs (id, user_name, idempotency_key, state, request, estimate_micros)
                 VALUES ($1, $2, $3, 'queued', $4, $5) ON CONFLICT (user_name, idempotency_key) DO NOTHING",
                &[&id, &user, &idempotency_key, &request, &estimate.micros()],
            )
            .await
            .map_err(|e| failed(&e))?;
        let job = match (inserted, idempotency_key) {
            (0, Some(key)) => self.job_by_key(user, key).await?,
            _ => self.job(user, &id).await?,
        };
        let job = job.ok_or_else(|| ServerError::Store("the job just queued is missing".into()))?;
        Ok((job, inserted > 0))
    }

    async fn select_one(
        &self,
        filter: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Job>, ServerError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM srv_jobs {filter}");
        let row = self
            .client
            .query_opt(&sql, args)
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.as_ref().map(job))
    }

    /// The job `user` made with idempotency key `key`, if any.
    pub async fn job_by_key(&self, user: &str, key: &str) -> Result<Option<Job>, ServerError> {
        self.select_one(
            "WHERE user_name = $1 AND idempotency_key = $2",
            &[&user, &key],
        )
        .await
    }

    /// Job `id` if `user` owns it.
    pub async fn job(&self, user: &str, id: &str) -> Result<Option<Job>, ServerError> {
        self.select_one("WHERE user_name = $1 AND id = $2", &[&user, &id])
            .await
    }

    /// Claim the oldest queued job — or a running one whose lease ran out — for `worker`, on a
    /// lease of `lease_secs`; a job without a run id gets `run_id`.
    pub async fn claim(
        &self,
        worker: &str,
        lease_secs: u32,
        run_id: &str,
    ) -> Result<Option<Job>, ServerError> {
        let lease = i32::try_from(lease_secs).unwrap_or(i32::MAX);
        let sql = format!(
            "UPDATE srv_jobs j SET state = 'running', worker = $1,
                 lease_until = clock_timestamp() + ($2::int * interval '1 second'),
                 attempts = j.attempts + 1, run_id = COALESCE(j.run_id, $3), updated_at = clock_timestamp()
             FROM (SELECT id FROM srv_jobs
                   WHERE state = 'queued' OR (state = 'running' AND lease_until < clock_timestamp())
                   ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) c
             WHERE j.id = c.id RETURNING {}",
            JOB_COLUMNS
                .split(", ")
                .map(|c| format!("j.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row = self
            .client
            .query_opt(&sql, &[&worker, &lease, &run_id])
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.as_ref().map(job))
    }

    /// Renew `worker`'s leases of jobs `ids` (those it runs): the ids it still holds, each with
    /// whether its owner asked to cancel it.
    pub async fn heartbeat(
        &self,
        worker: &str,
        lease_secs: u32,
        ids: &[String],
    ) -> Result<Vec<(String, bool)>, ServerError> {
        let lease = i32::try_from(lease_secs).unwrap_or(i32::MAX);
        let rows = self
            .client
            .query(
                "UPDATE srv_jobs SET lease_until = clock_timestamp() + ($2::int * interval '1 second')
                 WHERE worker = $1 AND state = 'running' AND id = ANY($3) RETURNING id, cancel_requested",
                &[&worker, &lease, &ids],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Tell the workers listening on [`crate::records::CALLBACK_CHANNEL`] that fal called back
    /// about `request_id`.
    pub async fn notify_callback(&self, request_id: &str) -> Result<(), ServerError> {
        self.client
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&crate::records::CALLBACK_CHANNEL, &request_id],
            )
            .await
            .map(|_| ())
            .map_err(|e| failed(&e))
    }

    /// Release `worker`'s leases at once: its running jobs are claimable again; how many.
    pub async fn release(&self, worker: &str) -> Result<u64, ServerError> {
        self.client
            .execute(
                "UPDATE srv_jobs SET lease_until = clock_timestamp() - interval '1 second'
                 WHERE worker = $1 AND state = 'running'",
                &[&worker],
            )
            .await
            .map_err(|e| failed(&e))
    }

    /// Cancel `user`'s job `id` (see [`crate::store::Store::cancel`]).
    pub async fn cancel(&self, user: &str, id: &str) -> Result<Option<JobState>, ServerError> {
        self.client
            .execute(
                "UPDATE srv_jobs SET state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END,
                 cancel_requested = true, updated_at = clock_timestamp()
                 WHERE user_name = $1 AND id = $2 AND state IN ('queued', 'running')",
                &[&user, &id],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(self.job(user, id).await?.map(|j| j.state))
    }

    /// Whether the owner of job `id` asked to cancel it.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool, ServerError> {
        let row = self
            .client
            .query_opt(
                "SELECT cancel_requested FROM srv_jobs WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.is_some_and(|r| r.get(0)))
    }

    /// Record how job `id` ended, if `worker` still holds it (one whose lease was taken over
    /// is the new holder's to record).
    pub async fn finish(
        &self,
        id: &str,
        worker: &str,
        outcome: &Outcome,
    ) -> Result<(), ServerError> {
        let (code, message) = outcome.error.clone().unzip();
        self.client
            .execute(
                "UPDATE srv_jobs SET state = $3, actual_micros = $4, run_id = COALESCE($5, run_id), outputs = $6,
                 error_code = $7, error_message = $8, lease_until = NULL, updated_at = clock_timestamp()
                 WHERE id = $1 AND worker = $2 AND state = 'running'",
                &[
                    &id,
                    &worker,
                    &outcome.state.as_str(),
                    &outcome.actual.map(Usd::micros),
                    &outcome.run_id,
                    &outcome.outputs,
                    &code,
                    &message,
                ],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    }

    /// Record `user`'s upload.
    pub async fn put_upload(&self, user: &str, upload: &Upload) -> Result<(), ServerError> {
        self.client
            .execute(
                "INSERT INTO srv_files (id, user_name, path, content_type, bytes) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &upload.id,
                    &user,
                    &upload.path.to_string_lossy().as_ref(),
                    &upload.content_type,
                    &i64::try_from(upload.bytes).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    }

    /// What `user`'s uploads take: bytes and files.
    pub async fn uploads_of(&self, user: &str) -> Result<(u64, u64), ServerError> {
        let row = self
            .client
            .query_one(
                "SELECT COALESCE(SUM(bytes), 0)::bigint, COUNT(*) FROM srv_files WHERE user_name = $1",
                &[&user],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok((count(row.get(0)), count(row.get(1))))
    }

    /// `user`'s upload `id`.
    pub async fn upload(&self, user: &str, id: &str) -> Result<Option<Upload>, ServerError> {
        let row = self
            .client
            .query_opt(
                "SELECT id, path, content_type, bytes FROM srv_files WHERE user_name = $1 AND id = $2",
                &[&user, &id],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.map(|r| Upload {
            id: r.get(0),
            path: std::path::PathBuf::from(r.get::<_, String>(1)),
            content_type: r.get(2),
            bytes: count(r.get(3)),
        }))
    }

    /// What `/metrics` shows (see [`crate::store::Store::metrics`]).
    pub async fn metrics(&self) -> Result<Metrics, ServerError> {
        let rows = self
            .client
            .query("SELECT state, COUNT(*) FROM srv_jobs GROUP BY state", &[])
            .await
            .map_err(|e| failed(&e))?;
        let by_state = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let row = self
            .client
            .query_one(
                "SELECT (extract(epoch FROM MIN(created_at) FILTER (WHERE state = 'queued')) * 1000)::bigint,
                        COALESCE(SUM(actual_micros), 0)::bigint FROM srv_jobs",
                &[],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(Metrics {
            by_state,
            oldest_queued: row
                .get::<_, Option<i64>>(0)
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
            settled_micros: row.get(1),
        })
    }
}
