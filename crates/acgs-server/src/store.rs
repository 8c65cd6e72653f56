//! The service's own records in one SQLite file: users with their budgets, tokens (only their
//! SHA-256 is kept), and jobs with their state. Money stays in the ledger; a job row only
//! mirrors what its run reserved and settled, for its owner to read.

use std::path::Path;
use std::sync::Mutex;

use acgs_core::Usd;
use rusqlite::{Connection, OptionalExtension as _, params};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::error::ServerError;

/// What every service token starts with, so that scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "acgs_srv_";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    daily_micros INTEGER NOT NULL,
    monthly_micros INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name),
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    idempotency_key TEXT,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    estimate_micros INTEGER NOT NULL,
    actual_micros INTEGER,
    run_id TEXT,
    outputs TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user, idempotency_key)
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, created_at);
";

/// A user of the service and their budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name jobs, spend and audit entries are attributed to.
    pub name: String,
    /// The most their jobs may count in one day (UTC).
    pub daily: Usd,
    /// The most in one calendar month (UTC), if limited.
    pub monthly: Option<Usd>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker runs it through the guarded path.
    Running,
    /// Finished with its outputs.
    Done,
    /// Refused or failed; `error` says why.
    Failed,
    /// Cancelled by its owner.
    Cancelled,
}

impl JobState {
    /// The name in the API and the table.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Queued,
        }
    }

    /// Whether the job will not change again.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// A job as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// `job_<hex>`.
    pub id: String,
    /// Its owner.
    pub user: String,
    /// Where it is.
    pub state: JobState,
    /// The request as accepted (JSON).
    pub request: String,
    /// The worst case when it was accepted.
    pub estimate: Usd,
    /// What it cost, once settled.
    pub actual: Option<Usd>,
    /// Its run id, once it ran.
    pub run_id: Option<String>,
    /// Its output files' names (JSON list), once done.
    pub outputs: Option<String>,
    /// `(code, message)` when it failed.
    pub error: Option<(String, String)>,
}

/// How a job ended, for [`Store::finish`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Done, failed or cancelled.
    pub state: JobState,
    /// What was settled.
    pub actual: Option<Usd>,
    /// The run id.
    pub run_id: Option<String>,
    /// Output file names (JSON list).
    pub outputs: Option<String>,
    /// `(code, message)` of a failure.
    pub error: Option<(String, String)>,
}

/// The service's records.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn random_hex(bytes: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| ServerError::Store(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Open (or create) the records at `path`.
    pub fn open(path: &Path) -> Result<Self, ServerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ServerError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| ServerError::Store("the records' lock was poisoned".into()))?;
        Ok(f(&conn)?)
    }

    /// Add a user, or change an existing user's budgets.
    pub fn put_user(&self, user: &User) -> Result<(), ServerError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO users (name, daily_micros, monthly_micros, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET daily_micros = ?2, monthly_micros = ?3",
                params![user.name, user.daily.micros(), user.monthly.map(Usd::micros), now()],
            )
            .map(|_| ())
        })
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Result<Option<User>, ServerError> {
        self.with(|c| {
            c.query_row(
                "SELECT name, daily_micros, monthly_micros FROM users WHERE name = ?1",
                params![name],
                |r| {
                    Ok(User {
                        name: r.get(0)?,
                        daily: Usd::from_micros(r.get(1)?),
                        monthly: r.get::<_, Option<i64>>(2)?.map(Usd::from_micros),
                    })
                },
            )
            .optional()
        })
    }

    /// A new token for `user`, valid for `days`: its id and the token itself, shown once (only
    /// its SHA-256 is kept).
    pub fn create_token(
        &self,
        user: &str,
        days: u32,
    ) -> Result<(String, SecretString), ServerError> {
        if self.user(user)?.is_none() {
            return Err(ServerError::UnknownUser(user.to_owned()));
        }
        let id = format!("tok_{}", random_hex(8)?);
        let token = SecretString::from(format!("{TOKEN_PREFIX}{}", random_hex(32)?));
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
            .map_err(|_| ServerError::Store("expiry out of range".into()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO tokens (id, user, digest, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, user, digest(token.expose_secret()), now(), expires.to_string()],
            )
        })?;
        Ok((id, token))
    }

    /// Revoke token `id`; whether there was such a live token.
    pub fn revoke_token(&self, id: &str) -> Result<bool, ServerError> {
        self.with(|c| {
            c.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now()],
            )
        })
        .map(|n| n > 0)
    }

    /// The user a presented token belongs to, if it is known, unrevoked and unexpired.
    pub fn authenticate(&self, presented: &str) -> Result<Option<User>, ServerError> {
        if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 128 {
            return Ok(None);
        }
        let found: Option<(String, String, Option<String>)> = self.with(|c| {
            c.query_row(
                "SELECT user, expires_at, revoked_at FROM tokens WHERE digest = ?1",
                params![digest(presented)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })?;
        let Some((user, expires, revoked)) = found else {
            return Ok(None);
        };
        let live = revoked.is_none()
            && expires
                .parse::<jiff::Timestamp>()
                .is_ok_and(|e| e > jiff::Timestamp::now());
        if live { self.user(&user) } else { Ok(None) }
    }

    /// Queue a job for `user`; with an idempotency key already used by them, their earlier job
    /// instead (`false`: not new).
    pub fn enqueue(
        &self,
        user: &str,
        idempotency_key: Option<&str>,
        request: &str,
        estimate: Usd,
    ) -> Result<(Job, bool), ServerError> {
        if let Some(key) = idempotency_key
            && let Some(job) = self.job_by_key(user, key)?
        {
            return Ok((job, false));
        }
        let id = format!("job_{}", random_hex(12)?);
        let inserted = self.with(|c| {
            c.execute(
                "INSERT INTO jobs (id, user, idempotency_key, state, request, estimate_micros, created_at, updated_at)
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?6) ON CONFLICT (user, idempotency_key) DO NOTHING",
                params![id, user, idempotency_key, request, estimate.micros(), now()],
            )
        })?;
        // Two requests with one key at once: the one that lost the insert returns the winner's.
        let job = match (inserted, idempotency_key) {
            (0, Some(key)) => self.job_by_key(user, key)?,
            _ => self.job(user, &id)?,
        };
        let job = job.ok_or_else(|| ServerError::Store("the job just queued is missing".into()))?;
        Ok((job, inserted > 0))
    }

    fn job_by_key(&self, user: &str, key: &str) -> Result<Option<Job>, ServerError> {
        self.select_one(
            "WHERE user = ?1 AND idempotency_key = ?2",
            params![user, key],
        )
    }

    /// Job `id` if `user` owns it (anyone else's is as missing as an unknown one).
    pub fn job(&self, user: &str, id: &str) -> Result<Option<Job>, ServerError> {
        self.select_one("WHERE user = ?1 AND id = ?2", params![user, id])
    }

    fn select_one(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Option<Job>, ServerError> {
        let sql = format!(
            "SELECT id, user, state, request, estimate_micros, actual_micros, run_id, outputs, error_code, error_message FROM jobs {filter}"
        );
        self.with(|c| c.query_row(&sql, args, row_to_job).optional())
    }

    /// Claim the oldest queued job for a worker: it becomes `running`.
    pub fn claim(&self) -> Result<Option<Job>, ServerError> {
        self.with(|c| {
            c.query_row(
                "UPDATE jobs SET state = 'running', updated_at = ?1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1)
                 RETURNING id, user, state, request, estimate_micros, actual_micros, run_id, outputs, error_code, error_message",
                params![now()],
                row_to_job,
            )
            .optional()
        })
    }

    /// Cancel `user`'s job `id` if it is still queued; its state after the call.
    pub fn cancel_queued(&self, user: &str, id: &str) -> Result<Option<JobState>, ServerError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'cancelled', updated_at = ?3 WHERE user = ?1 AND id = ?2 AND state = 'queued'",
                params![user, id, now()],
            )
        })?;
        Ok(self.job(user, id)?.map(|j| j.state))
    }

    /// Record how job `id` ended.
    pub fn finish(&self, id: &str, outcome: &Outcome) -> Result<(), ServerError> {
        let (code, message) = outcome.error.clone().unzip();
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, actual_micros = ?3, run_id = ?4, outputs = ?5, error_code = ?6,
                 error_message = ?7, updated_at = ?8 WHERE id = ?1",
                params![
                    id,
                    outcome.state.as_str(),
                    outcome.actual.map(Usd::micros),
                    outcome.run_id,
                    outcome.outputs,
                    code,
                    message,
                    now()
                ],
            )
            .map(|_| ())
        })
    }

    /// Jobs a worker of an earlier process left `running` end as failed (`job.interrupted`): one
    /// may have been sent already, and sending it again could pay twice, so none is re-run.
    pub fn fail_abandoned(&self) -> Result<usize, ServerError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = 'failed', error_code = 'job.interrupted',
                 error_message = 'the service stopped while it ran; its reservation stays until an operator resumes or abandons it',
                 updated_at = ?1 WHERE state = 'running'",
                params![now()],
            )
        })
    }
}

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let code: Option<String> = r.get(8)?;
    let message: Option<String> = r.get(9)?;
    Ok(Job {
        id: r.get(0)?,
        user: r.get(1)?,
        state: JobState::parse(&r.get::<_, String>(2)?),
        request: r.get(3)?,
        estimate: Usd::from_micros(r.get(4)?),
        actual: r.get::<_, Option<i64>>(5)?.map(Usd::from_micros),
        run_id: r.get(6)?,
        outputs: r.get(7)?,
        error: code.map(|c| (c, message.unwrap_or_default())),
    })
}
