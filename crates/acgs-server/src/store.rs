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
    weekly_micros INTEGER,
    admin INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS limits (
    scope TEXT NOT NULL,
    period TEXT NOT NULL,
    micros INTEGER NOT NULL,
    PRIMARY KEY (scope, period)
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
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user, idempotency_key)
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (state, created_at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
";

/// The most jobs one user may have queued or running at once.
pub const MAX_OPEN_JOBS: u64 = 64;

/// A user of the service and their budgets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The name jobs, spend and audit entries are attributed to.
    pub name: String,
    /// The most their jobs may count in one day (UTC).
    pub daily: Usd,
    /// The most in one calendar month (UTC), if limited.
    pub monthly: Option<Usd>,
    /// The most in one ISO week (UTC, Monday to Sunday), if limited.
    pub weekly: Option<Usd>,
    /// Whether they may use the admin routes (users, tokens, limits).
    pub admin: bool,
}

/// What a limit bounds: the whole service, or every job carrying a tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitScope {
    /// Every job of the service.
    Service,
    /// Jobs tagged with this name (a project, a team).
    Tag(String),
}

impl LimitScope {
    /// `service` or `tag:NAME`, as stored and as the routes and commands take it.
    #[must_use]
    pub fn as_text(&self) -> String {
        match self {
            Self::Service => "service".into(),
            Self::Tag(name) => format!("tag:{name}"),
        }
    }

    /// The scope `text` names (`service`, `tag:NAME` with a plain name).
    pub fn parse(text: &str) -> Result<Self, ServerError> {
        match text.strip_prefix("tag:") {
            Some(name) => check_user_name(name)
                .map(|()| Self::Tag(name.to_owned()))
                .map_err(|_| {
                    ServerError::BadRequest(format!(
                        "`{text}`: a tag is 1 to 64 letters, digits, `-` or `_`"
                    ))
                }),
            None if text == "service" => Ok(Self::Service),
            None => Err(ServerError::BadRequest(format!(
                "`{text}` is not a scope: service or tag:NAME"
            ))),
        }
    }
}

/// A budget period: the scope's spend is counted per UTC day, ISO week or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    /// `YYYY-MM-DD`.
    Day,
    /// `YYYY-Www`.
    Week,
    /// `YYYY-MM`.
    Month,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Self; 3] = [Self::Day, Self::Week, Self::Month];

    /// `daily`, `weekly` or `monthly`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "daily",
            Self::Week => "weekly",
            Self::Month => "monthly",
        }
    }

    /// The period `text` names.
    pub fn parse(text: &str) -> Result<Self, ServerError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| ServerError::BadRequest(format!("`{text}`: daily, weekly or monthly")))
    }

    /// The name of the period holding `at` (UTC), which ends a ledger scope's name.
    #[must_use]
    pub fn key(self, at: jiff::Timestamp) -> String {
        let day = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        match self {
            Self::Day => day.strftime("%Y-%m-%d").to_string(),
            Self::Week => {
                let week = day.iso_week_date();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Self::Month => day.strftime("%Y-%m").to_string(),
        }
    }
}

/// A limit set on a scope for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What it bounds.
    pub scope: LimitScope,
    /// Per what.
    pub period: Period,
    /// The most.
    pub amount: Usd,
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

    pub(crate) fn parse(text: &str) -> Self {
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
    /// Its output files' paths (JSON list), once done.
    pub outputs: Option<String>,
    /// `(code, message)` when it failed.
    pub error: Option<(String, String)>,
    /// How many times a worker claimed it: above 1, a worker took over one that stopped.
    pub attempt: u32,
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
    /// Output file paths (JSON list).
    pub outputs: Option<String>,
    /// `(code, message)` of a failure.
    pub error: Option<(String, String)>,
}

/// An uploaded input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// `file_<hex>`.
    pub id: String,
    /// Where it is kept.
    pub path: std::path::PathBuf,
    /// Its type, read from its bytes.
    pub content_type: String,
    /// Its size.
    pub bytes: u64,
}

/// What [`Store::metrics`] counts.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Jobs per state name.
    pub by_state: Vec<(String, i64)>,
    /// When the oldest queued job was queued.
    pub oldest_queued: Option<jiff::Timestamp>,
    /// The settled cost of every job, in micro-dollars.
    pub settled_micros: i64,
}

/// The service's records.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| ServerError::Store(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

pub(crate) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Open (or create) the records at `path`.
    pub fn open(path: &Path) -> Result<Self, ServerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        // Records made before these columns existed.
        for (table, column, kind) in [
            ("jobs", "attempts", "INTEGER NOT NULL DEFAULT 0"),
            ("users", "weekly_micros", "INTEGER"),
            ("users", "admin", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            if conn
                .prepare(&format!("SELECT {column} FROM {table} LIMIT 0"))
                .is_err()
            {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
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

    /// This service's id, made once: it names the ledger scopes of its users, so two services
    /// sharing one ledger never share a user's budget.
    pub fn instance(&self) -> Result<String, ServerError> {
        self.meta_or_init("instance", &format!("srv{}", random_hex(4)?))
    }

    /// The value kept under `name`, made `fresh` if there is none yet (the first writer wins).
    pub fn meta_or_init(&self, name: &str, fresh: &str) -> Result<String, ServerError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, fresh],
            )?;
            c.query_row(
                "SELECT value FROM meta WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
        })
    }

    /// How many jobs `user` has queued or running.
    pub fn open_jobs(&self, user: &str) -> Result<u64, ServerError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM jobs WHERE user = ?1 AND state IN ('queued', 'running')",
                params![user],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Add a user, or change an existing user's budgets (a monthly budget not given is kept).
    pub fn put_user(&self, user: &User) -> Result<(), ServerError> {
        check_user_name(&user.name)?;
        // A monthly budget not given is kept: changing the day must not lift the month.
        self.with(|c| {
            c.execute(
                "INSERT INTO users (name, daily_micros, monthly_micros, weekly_micros, admin, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET daily_micros = ?2, monthly_micros = COALESCE(?3, monthly_micros),
                 weekly_micros = COALESCE(?4, weekly_micros), admin = ?5",
                params![user.name, user.daily.micros(), user.monthly.map(Usd::micros), user.weekly.map(Usd::micros), user.admin, now()],
            )
            .map(|_| ())
        })
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Result<Option<User>, ServerError> {
        self.with(|c| {
            c.query_row(
                "SELECT name, daily_micros, monthly_micros, weekly_micros, admin FROM users WHERE name = ?1",
                params![name],
                |r| {
                    Ok(User {
                        name: r.get(0)?,
                        daily: Usd::from_micros(r.get(1)?),
                        monthly: r.get::<_, Option<i64>>(2)?.map(Usd::from_micros),
                        weekly: r.get::<_, Option<i64>>(3)?.map(Usd::from_micros),
                        admin: r.get(4)?,
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

    /// Set (or, with `None`, remove) the limit of `scope` per `period`.
    pub fn set_limit(
        &self,
        scope: &LimitScope,
        period: Period,
        amount: Option<Usd>,
    ) -> Result<(), ServerError> {
        let (scope, period) = (scope.as_text(), period.as_str());
        self.with(|c| match amount {
            Some(amount) => c.execute(
                "INSERT INTO limits (scope, period, micros) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope, period) DO UPDATE SET micros = ?3",
                params![scope, period, amount.micros()],
            ),
            None => c.execute(
                "DELETE FROM limits WHERE scope = ?1 AND period = ?2",
                params![scope, period],
            ),
        })
        .map(|_| ())
    }

    /// Every limit set.
    pub fn limits(&self) -> Result<Vec<Limit>, ServerError> {
        let rows: Vec<(String, String, i64)> = self.with(|c| {
            let mut query =
                c.prepare("SELECT scope, period, micros FROM limits ORDER BY scope, period")?;
            query
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(s, p, m)| limit_of(&s, &p, m))
            .collect()
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

    /// The job `user` made with idempotency key `key`, if any.
    pub fn job_by_key(&self, user: &str, key: &str) -> Result<Option<Job>, ServerError> {
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
            "SELECT id, user, state, request, estimate_micros, actual_micros, run_id, outputs, error_code, error_message, attempts FROM jobs {filter}"
        );
        self.with(|c| c.query_row(&sql, args, row_to_job).optional())
    }

    /// Claim the oldest queued job for a worker: it becomes `running`, and gets `run_id` as
    /// its run's id.
    pub fn claim(&self, run_id: &str) -> Result<Option<Job>, ServerError> {
        self.with(|c| {
            c.query_row(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, run_id = COALESCE(run_id, ?2), updated_at = ?1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1)
                 RETURNING id, user, state, request, estimate_micros, actual_micros, run_id, outputs, error_code, error_message, attempts",
                params![now(), run_id],
                row_to_job,
            )
            .optional()
        })
    }

    /// Cancel `user`'s job `id`: a queued one at once; a running one is marked, so that its
    /// worker cancels it whether it has started the run yet or not. Its state after the call.
    pub fn cancel(&self, user: &str, id: &str) -> Result<Option<JobState>, ServerError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END,
                 cancel_requested = 1, updated_at = ?3 WHERE user = ?1 AND id = ?2 AND state IN ('queued', 'running')",
                params![user, id, now()],
            )
        })?;
        Ok(self.job(user, id)?.map(|j| j.state))
    }

    /// Whether the owner of job `id` asked to cancel it.
    pub fn cancel_requested(&self, id: &str) -> Result<bool, ServerError> {
        self.with(|c| {
            c.query_row(
                "SELECT cancel_requested FROM jobs WHERE id = ?1",
                params![id],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n != 0)
    }

    /// Record how running job `id` ended (a job no longer running is left as it is).
    pub fn finish(&self, id: &str, outcome: &Outcome) -> Result<(), ServerError> {
        let (code, message) = outcome.error.clone().unzip();
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, actual_micros = ?3, run_id = COALESCE(?4, run_id), outputs = ?5, error_code = ?6,
                 error_message = ?7, updated_at = ?8 WHERE id = ?1 AND state = 'running'",
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

    /// A new file id.
    pub fn new_file_id() -> Result<String, ServerError> {
        Ok(format!("file_{}", random_hex(12)?))
    }

    /// Record `user`'s upload.
    pub fn put_upload(&self, user: &str, upload: &Upload) -> Result<(), ServerError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO files (id, user, path, content_type, bytes, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    upload.id,
                    user,
                    upload.path.to_string_lossy(),
                    upload.content_type,
                    i64::try_from(upload.bytes).unwrap_or(i64::MAX),
                    now()
                ],
            )
            .map(|_| ())
        })
    }

    /// What `user`'s uploads take: bytes and files.
    pub fn uploads_of(&self, user: &str) -> Result<(u64, u64), ServerError> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM files WHERE user = ?1",
                params![user],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
        })
        .map(|(b, n)| (u64::try_from(b).unwrap_or(0), u64::try_from(n).unwrap_or(0)))
    }

    /// `user`'s upload `id` (anyone else's is as missing as an unknown one).
    pub fn upload(&self, user: &str, id: &str) -> Result<Option<Upload>, ServerError> {
        self.with(|c| {
            c.query_row(
                "SELECT id, path, content_type, bytes FROM files WHERE user = ?1 AND id = ?2",
                params![user, id],
                |r| {
                    Ok(Upload {
                        id: r.get(0)?,
                        path: std::path::PathBuf::from(r.get::<_, String>(1)?),
                        content_type: r.get(2)?,
                        bytes: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                },
            )
            .optional()
        })
    }

    /// What `/metrics` shows: jobs by state, when the oldest queued job was queued, and the
    /// settled cost of every job, in micro-dollars.
    pub fn metrics(&self) -> Result<Metrics, ServerError> {
        self.with(|c| {
            let mut by_state = Vec::new();
            let mut rows = c.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            for row in rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                by_state.push(row?);
            }
            let oldest: Option<String> = c.query_row(
                "SELECT MIN(created_at) FROM jobs WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )?;
            let settled: i64 = c.query_row(
                "SELECT COALESCE(SUM(actual_micros), 0) FROM jobs",
                [],
                |r| r.get(0),
            )?;
            Ok(Metrics {
                by_state,
                oldest_queued: oldest.and_then(|t| t.parse().ok()),
                settled_micros: settled,
            })
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
        attempt: u32::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
    })
}

/// A stored limit.
pub(crate) fn limit_of(scope: &str, period: &str, micros: i64) -> Result<Limit, ServerError> {
    Ok(Limit {
        scope: LimitScope::parse(scope)?,
        period: Period::parse(period)?,
        amount: Usd::from_micros(micros),
    })
}

/// A user name is 1 to 64 letters, digits, `-` or `_`: it goes into ledger scopes and folder
/// names.
pub(crate) fn check_user_name(name: &str) -> Result<(), ServerError> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(ServerError::BadRequest(
            "a user name is 1 to 64 letters, digits, `-` or `_`".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::{JobState, Outcome, Store, User};
    use acgs_core::Usd;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("server.sqlite3")).expect("store");
        (dir, store)
    }

    fn usd(text: &str) -> Usd {
        Usd::parse(text).expect("usd")
    }

    #[test]
    fn changing_the_day_keeps_the_month_and_tokens_end() {
        let (_dir, store) = store();
        let ada = User {
            name: "ada".into(),
            daily: usd("5"),
            monthly: Some(usd("50")),
            weekly: None,
            admin: false,
        };
        store.put_user(&ada).expect("put");
        store
            .put_user(&User {
                monthly: None,
                daily: usd("10"),
                ..ada
            })
            .expect("put");
        let kept = store.user("ada").expect("read").expect("ada");
        assert_eq!((kept.daily, kept.monthly), (usd("10"), Some(usd("50"))));
        let (id, token) = store.create_token("ada", 1).expect("token");
        assert!(
            store
                .authenticate(token.expose_secret())
                .expect("auth")
                .is_some()
        );
        assert!(
            store
                .authenticate("acgs_srv_forged")
                .expect("auth")
                .is_none()
        );
        assert!(store.revoke_token(&id).expect("revoke"));
        assert!(
            store
                .authenticate(token.expose_secret())
                .expect("auth")
                .is_none(),
            "revoked"
        );
        assert!(store.create_token("nobody", 1).is_err());
        let (_, expiring) = store.create_token("ada", 1).expect("token");
        store
            .with(|c| c.execute("UPDATE tokens SET expires_at = '2026-01-01T00:00:00Z'", []))
            .expect("expired");
        assert!(
            store
                .authenticate(expiring.expose_secret())
                .expect("auth")
                .is_none(),
            "expired"
        );
    }

    #[test]
    fn periods_are_utc_days_iso_weeks_and_months_and_limits_keep() {
        use super::{LimitScope, Period};
        let at = |t: &str| t.parse::<jiff::Timestamp>().expect("a time");
        // 1 January 2027 is a Friday: it belongs to the last ISO week of 2026.
        let new_year = at("2027-01-01T00:30:00Z");
        assert_eq!(Period::Day.key(new_year), "2027-01-01");
        assert_eq!(Period::Week.key(new_year), "2026-W53");
        assert_eq!(Period::Month.key(new_year), "2027-01");
        assert_eq!(Period::Week.key(at("2026-12-06T23:59:59Z")), "2026-W49");
        assert!(LimitScope::parse("tag:../x").is_err());
        assert!(LimitScope::parse("user:ada").is_err());
        let (_dir, store) = store();
        let film = LimitScope::Tag("film".into());
        store
            .set_limit(&film, Period::Week, Some(usd("5")))
            .expect("set");
        store
            .set_limit(&LimitScope::Service, Period::Day, Some(usd("50")))
            .expect("set");
        store
            .set_limit(&film, Period::Week, Some(usd("6")))
            .expect("changed");
        let limits = store.limits().expect("limits");
        assert_eq!(limits.len(), 2);
        assert!(
            limits
                .iter()
                .any(|l| l.scope == film && l.amount == usd("6"))
        );
        store.set_limit(&film, Period::Week, None).expect("removed");
        assert_eq!(store.limits().expect("limits").len(), 1);
    }

    #[test]
    fn a_cancel_is_never_lost_and_a_final_state_stays_final() {
        let (_dir, store) = store();
        let (job, new) = store
            .enqueue("ada", Some("k"), "{}", usd("0.1"))
            .expect("queued");
        let (again, second) = store
            .enqueue("ada", Some("k"), "{}", usd("0.1"))
            .expect("same");
        assert!(new && !second && again.id == job.id, "one job per key");
        let claimed = store.claim("r1").expect("claim").expect("a job");
        assert_eq!(claimed.state, JobState::Running);
        // The owner cancels while the worker has not registered its interrupt yet.
        assert_eq!(
            store.cancel("ada", &job.id).expect("cancel"),
            Some(JobState::Running)
        );
        assert!(
            store.cancel_requested(&job.id).expect("flag"),
            "the worker will see it"
        );
        assert_eq!(
            store.cancel("bob", &job.id).expect("cancel"),
            None,
            "not bob's"
        );
        let cancelled = Outcome {
            state: JobState::Cancelled,
            actual: None,
            run_id: None,
            outputs: None,
            error: None,
        };
        store.finish(&job.id, &cancelled).expect("finish");
        let done = Outcome {
            state: JobState::Done,
            ..cancelled
        };
        store
            .finish(&job.id, &done)
            .expect("a late finish is ignored");
        let ended = store.job("ada", &job.id).expect("read").expect("job");
        assert_eq!(ended.state, JobState::Cancelled);
    }

    #[test]
    fn jobs_left_running_fail_rather_than_run_again() {
        let (_dir, store) = store();
        let (job, _) = store
            .enqueue("ada", None, "{}", usd("0.1"))
            .expect("queued");
        store.claim("r1").expect("claim");
        assert_eq!(store.fail_abandoned().expect("fail"), 1);
        let ended = store.job("ada", &job.id).expect("read").expect("job");
        assert_eq!(
            (ended.state, ended.error.map(|e| e.0)),
            (JobState::Failed, Some("job.interrupted".into()))
        );
        assert!(
            store.claim("r1").expect("claim").is_none(),
            "nothing is queued again"
        );
        assert_eq!(
            store.instance().expect("id"),
            store.instance().expect("id"),
            "one id, kept"
        );
    }
}
