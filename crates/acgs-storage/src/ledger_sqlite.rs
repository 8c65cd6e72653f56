//! The embedded spend ledger: SQLite (bundled), WAL, `synchronous=NORMAL`, busy timeout 5 s, the
//! WAL checkpointed as it grows rather than on close; the database and its WAL files are 0600.
//!
//! A reservation is one conditional update of a per-day counter plus an insert, in one
//! `BEGIN IMMEDIATE` transaction, so concurrent processes can never reserve past the daily limit
//! together. `held` reservations carry an owner token and a lease; expired ones stop counting.
//! `submitted` ones never expire.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::ledger::{
    DaySpend, Ledger, LedgerError, LedgerResult, OwnerToken, Reservation, ReservationId,
    ReservationRecord, ReservationState, ReserveRequest, ScopeSpend, Settlement,
};
use acgs_core::request::JobHandle;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::error::StorageError;
use crate::fsutil::{ensure_private_dir, random_hex};

/// A clock returning the current time (injected in tests).
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS days (
    day TEXT PRIMARY KEY,
    reserved INTEGER NOT NULL DEFAULT 0,
    settled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    day TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    user_name TEXT NOT NULL,
    state TEXT NOT NULL,
    estimate INTEGER NOT NULL,
    actual INTEGER,
    owner TEXT NOT NULL,
    lease_until INTEGER,
    job TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_day_state ON reservations(day, state);
CREATE INDEX IF NOT EXISTS reservations_held ON reservations(state, lease_until);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scopes (
    scope TEXT PRIMARY KEY,
    reserved INTEGER NOT NULL DEFAULT 0,
    settled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reservation_scopes (
    reservation_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    PRIMARY KEY (reservation_id, scope)
);
";

/// Filesystems where SQLite's locking is unreliable.
const NETWORK_FILESYSTEMS: [u64; 7] = [
    0x6969,      // NFS
    0x517B,      // SMB
    0xFF53_4D42, // CIFS
    0xFE53_4D42, // SMB2
    0x5346_414F, // AFS
    0x00C3_6400, // Ceph
    0x0102_1997, // 9p
];

/// The SQLite ledger.
#[derive(Clone)]
pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
    clock: Clock,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteLedger({})", self.path.display())
    }
}

fn unavailable(e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable(e.to_string())
}

fn millis(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

/// The calendar day of `ts` in the IANA zone `tz`.
pub fn day_of(ts: jiff::Timestamp, tz: &str) -> LedgerResult<String> {
    // UTC, the default, without loading the time zone database (a walk of the zoneinfo folder).
    let zone = if tz.eq_ignore_ascii_case("UTC") {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::get(tz).map_err(|_| LedgerError::TimeZone(tz.to_owned()))?
    };
    Ok(ts.to_zoned(zone).date().to_string())
}

impl SqliteLedger {
    /// Open (creating) the ledger at `path` with the system clock.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_clock(path, Arc::new(jiff::Timestamp::now))
    }

    /// Open with an injected clock.
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self, StorageError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            ensure_private_dir(dir)?;
        }
        if let Ok(fs) = rustix::fs::statfs(dir) {
            let kind = u64::try_from(fs.f_type).unwrap_or(0);
            if NETWORK_FILESYSTEMS.contains(&kind) {
                return Err(StorageError::NetworkFilesystem {
                    path: path.to_owned(),
                });
            }
        }
        let io = |e: rusqlite::Error| StorageError::Io {
            what: format!("opening the ledger {}", path.display()),
            source: std::io::Error::other(e.to_string()),
        };
        create_private(path)?;
        let conn = Connection::open(path).map_err(io)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(io)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(io)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(io)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(io)?;
        // The WAL is checkpointed as it grows (every 1,000 pages), not by every process on its way
        // out: that cost two fsyncs at the end of every spending command.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(io)?;
        conn.execute_batch(SCHEMA).map_err(io)?;
        make_private(path);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            clock,
            path: path.to_owned(),
        })
    }

    /// Run `f` on the connection in a blocking thread, retrying while the database is busy. The
    /// future owns what it needs (it borrows nothing from `self`).
    fn with_conn<T, F>(&self, f: F) -> impl Future<Output = LedgerResult<T>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: Fn(&mut Connection, jiff::Timestamp) -> LedgerResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let clock = Arc::clone(&self.clock);
        async move {
            tokio::task::spawn_blocking(move || {
                let mut guard = conn
                    .lock()
                    .map_err(|_| unavailable("ledger lock poisoned"))?;
                let mut attempt = 0;
                loop {
                    match f(&mut guard, clock()) {
                        Err(LedgerError::Unavailable(msg))
                            if msg.contains("locked") && attempt < 5 =>
                        {
                            attempt += 1;
                            std::thread::sleep(Duration::from_millis(50 * attempt));
                        }
                        other => return other,
                    }
                }
            })
            .await
            .map_err(unavailable)?
        }
    }
}

/// Statements through the connection's statement cache (every ledger statement is one of a
/// few fixed texts, so each is parsed once per process).
trait Cached {
    /// Execute `sql`; the number of rows changed.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
    /// The first row of `sql`, mapped by `f`.
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Create the SQLite database file at `path` 0600 if it does not exist (SQLite gives its
/// `-wal` and `-shm` files the database file's mode), without following a link in its place.
pub fn create_private(path: &Path) -> Result<(), StorageError> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    match fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StorageError::io(format!(
            "creating the ledger {}",
            path.display()
        ))(e)),
    }
}

/// Owner-only modes on the SQLite database at `path` and its WAL files (files made by earlier
/// versions).
pub fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for file in [path.as_os_str(), &wal, &shm] {
        let _ = fs_err::set_permissions(file, std::fs::Permissions::from_mode(0o600));
    }
}

/// Expire `held` reservations whose lease ran out, adjusting their day's counter.
fn expire_held(tx: &rusqlite::Transaction<'_>, now: jiff::Timestamp) -> LedgerResult<()> {
    let expired: Vec<(String, String, i64)> = {
        let mut stmt = tx
            .prepare_cached("SELECT id, day, estimate FROM reservations WHERE state = 'held' AND lease_until < ?1")
            .map_err(unavailable)?;
        stmt.query_map(params![millis(now)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(unavailable)?
        .collect::<Result<_, _>>()
        .map_err(unavailable)?
    };
    for (id, day, estimate) in expired {
        tx.exec(
            "UPDATE reservations SET state = 'expired', updated_at = ?2 WHERE id = ?1",
            params![id, millis(now)],
        )
        .map_err(unavailable)?;
        tx.exec(
            "UPDATE days SET reserved = reserved - ?2 WHERE day = ?1",
            params![day, estimate],
        )
        .map_err(unavailable)?;
        move_scopes(tx, &id, estimate, 0)?;
    }
    Ok(())
}

/// Take `estimate` out of what the scopes of reservation `id` hold reserved, and count `actual`
/// as settled in them.
fn move_scopes(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    estimate: i64,
    actual: i64,
) -> LedgerResult<()> {
    tx.exec(
        "UPDATE scopes SET reserved = reserved - ?2, settled = settled + ?3
         WHERE scope IN (SELECT scope FROM reservation_scopes WHERE reservation_id = ?1)",
        params![id, estimate, actual],
    )
    .map_err(unavailable)?;
    Ok(())
}

/// Count `amount` in each of `request`'s scopes for reservation `id`, inside the caller's
/// transaction; the first scope it would overfill refuses it (the caller rolls back).
fn reserve_scopes(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    request: &ReserveRequest,
) -> LedgerResult<()> {
    let amount = request.amount.micros();
    for scope in &request.scopes {
        tx.exec(
            "INSERT OR IGNORE INTO scopes (scope) VALUES (?1)",
            params![scope.scope],
        )
        .map_err(unavailable)?;
        let changed = tx
            .exec(
                "UPDATE scopes SET reserved = reserved + ?2
                 WHERE scope = ?1 AND reserved + settled + ?2 <= ?3",
                params![scope.scope, amount, scope.limit.micros()],
            )
            .map_err(unavailable)?;
        if changed == 0 {
            let spent = scope_total(tx, &scope.scope)?;
            return Err(LedgerError::ScopeLimit {
                scope: scope.scope.clone(),
                limit: scope.limit,
                spent,
                requested: request.amount,
            });
        }
        tx.exec(
            "INSERT INTO reservation_scopes (reservation_id, scope) VALUES (?1, ?2)",
            params![id, scope.scope],
        )
        .map_err(unavailable)?;
    }
    Ok(())
}

/// What `scope` counts (reserved and settled).
fn scope_total(conn: &Connection, scope: &str) -> LedgerResult<Usd> {
    let row: Option<(i64, i64)> = conn
        .row(
            "SELECT reserved, settled FROM scopes WHERE scope = ?1",
            params![scope],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    let (reserved, settled) = row.unwrap_or((0, 0));
    Ok(Usd::from_micros(reserved.saturating_add(settled)))
}

fn day_spend(tx: &rusqlite::Transaction<'_>, day: &str) -> LedgerResult<DaySpend> {
    let row: Option<(i64, i64)> = tx
        .row(
            "SELECT reserved, settled FROM days WHERE day = ?1",
            params![day],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    let (reserved, settled) = row.unwrap_or((0, 0));
    Ok(DaySpend {
        day: day.to_owned(),
        reserved: Usd::from_micros(reserved),
        settled: Usd::from_micros(settled),
    })
}

/// Count `request` against its day and insert it as `held`, inside the caller's transaction.
fn reserve_in(
    tx: &rusqlite::Transaction<'_>,
    now: jiff::Timestamp,
    request: &ReserveRequest,
) -> LedgerResult<Reservation> {
    let day = day_of(now, &request.timezone)?;
    tx.exec("INSERT OR IGNORE INTO days (day) VALUES (?1)", params![day])
        .map_err(unavailable)?;
    let before = day_spend(tx, &day)?;
    let amount = request.amount.micros();
    let changed = tx
        .exec(
            "UPDATE days SET reserved = reserved + ?2
             WHERE day = ?1 AND reserved + settled + ?2 <= ?3",
            params![day, amount, request.daily_limit.micros()],
        )
        .map_err(unavailable)?;
    if changed == 0 {
        return Err(if before.total() > request.daily_limit {
            LedgerError::OverBudget {
                limit: request.daily_limit,
                spent: before.total(),
            }
        } else {
            LedgerError::DailyLimit {
                limit: request.daily_limit,
                spent: before.total(),
                requested: request.amount,
            }
        });
    }
    let id = random_hex(16);
    let owner = random_hex(16);
    reserve_scopes(tx, &id, request)?;
    let lease_ms = i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX);
    tx.exec(
        "INSERT INTO reservations
         (id, day, run_id, step, provider, model, user_name, state, estimate, owner, lease_until, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'held', ?8, ?9, ?10, ?11, ?11)",
        params![
            id,
            day,
            request.run_id,
            request.step,
            request.provider.as_str(),
            request.model,
            request.user,
            amount,
            owner,
            millis(now).saturating_add(lease_ms),
            millis(now)
        ],
    )
    .map_err(unavailable)?;
    Ok(Reservation {
        id: ReservationId(id),
        owner: OwnerToken(owner),
        day,
        spent_before: before.total(),
    })
}

/// The state of reservation `id`, or `None` when there is none.
fn state_of(conn: &Connection, id: &ReservationId) -> LedgerResult<Option<ReservationState>> {
    let state: Option<String> = conn
        .row(
            "SELECT state FROM reservations WHERE id = ?1",
            params![id.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    Ok(state.as_deref().and_then(ReservationState::from_name))
}

/// Finish a reservation in one of the `from` states → `to`, moving its estimate out of `reserved`
/// and `actual` (the estimate when `None`) into `settled`.
fn finish(
    conn: &mut Connection,
    now: jiff::Timestamp,
    id: &ReservationId,
    from: &[&str],
    to: ReservationState,
    actual: Option<Usd>,
) -> LedgerResult<Settlement> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let row: Option<(String, String, i64)> = tx
        .row(
            "SELECT state, day, estimate FROM reservations WHERE id = ?1",
            params![id.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(unavailable)?;
    let Some((state, day, estimate)) = row else {
        return Err(LedgerError::InvalidTransition {
            id: id.clone(),
            from: None,
            to,
        });
    };
    let actual = actual.unwrap_or(Usd::from_micros(estimate));
    if !from.contains(&state.as_str()) {
        return Err(LedgerError::InvalidTransition {
            id: id.clone(),
            from: ReservationState::from_name(&state),
            to,
        });
    }
    tx.exec(
        "UPDATE reservations SET state = ?2, actual = ?3, lease_until = NULL, updated_at = ?4 WHERE id = ?1",
        params![id.0, to.as_str(), actual.micros(), millis(now)],
    )
    .map_err(unavailable)?;
    tx.exec(
        "UPDATE days SET reserved = reserved - ?2, settled = settled + ?3 WHERE day = ?1",
        params![day, estimate, actual.micros()],
    )
    .map_err(unavailable)?;
    move_scopes(&tx, &id.0, estimate, actual.micros())?;
    tx.commit().map_err(unavailable)?;
    Ok(Settlement {
        estimate: Usd::from_micros(estimate),
        actual,
    })
}

#[async_trait::async_trait]
impl Ledger for SqliteLedger {
    async fn reserve(&self, request: ReserveRequest) -> LedgerResult<Reservation> {
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            expire_held(&tx, now)?;
            let reservation = reserve_in(&tx, now, &request)?;
            tx.commit().map_err(unavailable)?;
            Ok(reservation)
        })
        .await
    }

    async fn reserve_all(&self, requests: Vec<ReserveRequest>) -> LedgerResult<Vec<Reservation>> {
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            expire_held(&tx, now)?;
            let reserved = requests
                .iter()
                .map(|request| reserve_in(&tx, now, request))
                .collect::<LedgerResult<Vec<_>>>()?;
            tx.commit().map_err(unavailable)?;
            Ok(reserved)
        })
        .await
    }

    async fn renew(
        &self,
        id: &ReservationId,
        owner: &OwnerToken,
        lease: Duration,
    ) -> LedgerResult<()> {
        let (id, owner) = (id.clone(), owner.clone());
        self.with_conn(move |conn, now| {
            let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            let changed = conn
                .exec(
                    "UPDATE reservations SET lease_until = ?3, updated_at = ?4
                     WHERE id = ?1 AND owner = ?2 AND state = 'held' AND lease_until >= ?4",
                    params![
                        id.0,
                        owner.0,
                        millis(now).saturating_add(lease_ms),
                        millis(now)
                    ],
                )
                .map_err(unavailable)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(LedgerError::InvalidTransition {
                    id: id.clone(),
                    from: state_of(conn, &id)?,
                    to: ReservationState::Held,
                })
            }
        })
        .await
    }

    async fn mark_submitted(
        &self,
        id: &ReservationId,
        job: Option<&JobHandle>,
    ) -> LedgerResult<()> {
        let id = id.clone();
        let job = job.and_then(|j| serde_json::to_string(j).ok());
        self.with_conn(move |conn, now| {
            let changed = conn
                .exec(
                    "UPDATE reservations SET state = 'submitted', job = COALESCE(?2, job), lease_until = NULL, updated_at = ?3
                     WHERE id = ?1 AND (state = 'held' OR (state = 'submitted' AND job IS NULL))",
                    params![id.0, job, millis(now)],
                )
                .map_err(unavailable)?;
            if changed == 1 {
                Ok(())
            } else {
                Err(LedgerError::InvalidTransition {
                    id: id.clone(),
                    from: state_of(conn, &id)?,
                    to: ReservationState::Submitted,
                })
            }
        })
        .await
    }

    async fn settle(&self, id: &ReservationId, actual: Usd) -> LedgerResult<Settlement> {
        let id = id.clone();
        self.with_conn(move |conn, now| {
            finish(
                conn,
                now,
                &id,
                &["held", "submitted"],
                ReservationState::Settled,
                Some(actual),
            )
        })
        .await
    }

    async fn release(&self, id: &ReservationId) -> LedgerResult<()> {
        let id = id.clone();
        self.with_conn(move |conn, now| {
            finish(
                conn,
                now,
                &id,
                &["held", "submitted"],
                ReservationState::Released,
                Some(Usd::ZERO),
            )
            .map(|_| ())
        })
        .await
    }

    async fn scope_spend(&self, scope: &str) -> LedgerResult<ScopeSpend> {
        let scope = scope.to_owned();
        self.with_conn(move |conn, now| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            expire_held(&tx, now)?;
            let row: Option<(i64, i64)> = tx
                .row(
                    "SELECT reserved, settled FROM scopes WHERE scope = ?1",
                    params![scope],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            let (reserved, settled) = row.unwrap_or((0, 0));
            Ok(ScopeSpend {
                scope: scope.clone(),
                reserved: Usd::from_micros(reserved),
                settled: Usd::from_micros(settled),
            })
        })
        .await
    }

    async fn today(&self, timezone: &str) -> LedgerResult<DaySpend> {
        let timezone = timezone.to_owned();
        self.with_conn(move |conn, now| {
            let day = day_of(now, &timezone)?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            expire_held(&tx, now)?;
            let spend = day_spend(&tx, &day)?;
            tx.commit().map_err(unavailable)?;
            Ok(spend)
        })
        .await
    }

    async fn reservations(&self, since_day: Option<&str>) -> LedgerResult<Vec<ReservationRecord>> {
        let since = since_day.unwrap_or("0000-00-00").to_owned();
        self.with_conn(move |conn, now| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            expire_held(&tx, now)?;
            let rows = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, day, run_id, step, provider, model, user_name, state, estimate, actual, job, created_at
                         FROM reservations WHERE day >= ?1 ORDER BY created_at DESC, id",
                    )
                    .map_err(unavailable)?;
                stmt.query_map(params![since], record_from_row)
                    .map_err(unavailable)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(unavailable)?
            };
            tx.commit().map_err(unavailable)?;
            Ok(rows)
        })
        .await
    }

    async fn abandon(&self, id: &ReservationId) -> LedgerResult<Settlement> {
        let id = id.clone();
        self.with_conn(move |conn, now| {
            finish(
                conn,
                now,
                &id,
                &["submitted"],
                ReservationState::Abandoned,
                None,
            )
        })
        .await
    }

    async fn meta(&self, key: &str) -> LedgerResult<Option<String>> {
        let key = key.to_owned();
        self.with_conn(move |conn, _| {
            conn.row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(unavailable)
        })
        .await
    }

    async fn set_meta(&self, key: &str, value: &str, only_if_absent: bool) -> LedgerResult<bool> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with_conn(move |conn, _| {
            let sql = if only_if_absent {
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING"
            } else {
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            };
            conn.exec(sql, params![key, value]).map(|n| n == 1).map_err(unavailable)
        })
        .await
    }

    async fn advance_meta(&self, key: &str, rank: u64, rest: &str) -> LedgerResult<bool> {
        let key = key.to_owned();
        let (value, rank) = acgs_core::ledger::ranked_meta(rank, rest);
        self.with_conn(move |conn, _| {
            // CAST takes the leading digits of the stored value (0 when there are none).
            conn.exec(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                 WHERE CAST(substr(meta.value, 1, instr(meta.value, ':') - 1) AS INTEGER) < ?3",
                params![key, value, rank],
            )
            .map(|n| n == 1)
            .map_err(unavailable)
        })
        .await
    }
}

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReservationRecord> {
    let job: Option<String> = r.get(10)?;
    Ok(ReservationRecord {
        id: ReservationId(r.get(0)?),
        day: r.get(1)?,
        run_id: r.get(2)?,
        step: r.get(3)?,
        provider: r.get(4)?,
        model: r.get(5)?,
        user: r.get(6)?,
        state: stored_state(&r.get::<_, String>(7)?)?,
        estimate: Usd::from_micros(r.get(8)?),
        actual: r.get::<_, Option<i64>>(9)?.map(Usd::from_micros),
        job: job.and_then(|j| serde_json::from_str(&j).ok()),
        created_at: jiff::Timestamp::from_millisecond(r.get(11)?)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    })
}

/// A stored state name; an unknown one is an error, never a guess.
fn stored_state(name: &str) -> rusqlite::Result<ReservationState> {
    ReservationState::from_name(name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            7,
            rusqlite::types::Type::Text,
            format!("unknown reservation state `{name}`").into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::ProviderId;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn request(amount: &str, limit: &str) -> ReserveRequest {
        ReserveRequest {
            run_id: "run".into(),
            step: "image".into(),
            provider: ProviderId::Fal,
            model: "flux_dev".into(),
            user: "alice".into(),
            amount: Usd::parse(amount).expect("usd"),
            daily_limit: Usd::parse(limit).expect("usd"),
            timezone: "UTC".into(),
            lease: Duration::from_secs(60),
            scopes: Vec::new(),
        }
    }

    fn ledger_with_clock(dir: &Path) -> (SqliteLedger, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(1_800_000_000_000));
        let clock_now = Arc::clone(&now);
        let clock: Clock = Arc::new(move || {
            jiff::Timestamp::from_millisecond(clock_now.load(Ordering::SeqCst))
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        });
        (
            SqliteLedger::open_with_clock(&dir.join("ledger.sqlite3"), clock).expect("ledger"),
            now,
        )
    }

    #[tokio::test]
    async fn held_expires_but_submitted_keeps_counting() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (ledger, now) = ledger_with_clock(tmp.path());
        let held = ledger.reserve(request("0.60", "1.00")).await.expect("held");
        let submitted = ledger
            .reserve(request("0.30", "1.00"))
            .await
            .expect("second");
        let job = JobHandle {
            schema_version: 1,
            provider: ProviderId::Fal,
            model: "flux_dev".into(),
            endpoint: "fal-ai/flux/dev".into(),
            job: acgs_core::request::JobRef::Queue {
                request_id: "r1".into(),
            },
            submitted_at: jiff::Timestamp::UNIX_EPOCH,
        };
        ledger
            .mark_submitted(&submitted.id, Some(&job))
            .await
            .expect("submitted");
        now.fetch_add(120_000, Ordering::SeqCst);
        let today = ledger.today("UTC").await.expect("today");
        assert_eq!(
            today.reserved,
            Usd::parse("0.30").expect("usd"),
            "only the submitted one counts"
        );
        assert!(
            ledger
                .renew(&held.id, &held.owner, Duration::from_secs(60))
                .await
                .is_err()
        );
        let rows = ledger.reservations(None).await.expect("rows");
        assert!(
            rows.iter()
                .any(|r| r.id == held.id && r.state == ReservationState::Expired)
        );
        assert!(
            ledger.settle(&held.id, Usd::ZERO).await.is_err(),
            "expired cannot settle"
        );
    }

    #[tokio::test]
    async fn days_follow_the_time_zone() {
        let ts = |secs| jiff::Timestamp::from_second(secs).expect("ts");
        assert_eq!(day_of(ts(1_800_000_000), "UTC").expect("day"), "2027-01-15");
        assert_eq!(day_of(ts(1_800_057_599), "utc").expect("day"), "2027-01-15");
        assert_eq!(day_of(ts(1_800_057_600), "UTC").expect("day"), "2027-01-16");
        // 2027-01-15T12:00Z is already the 16th in Auckland (UTC+13) and still the 15th in Honolulu.
        assert_eq!(
            day_of(ts(1_800_014_400), "Pacific/Auckland").expect("day"),
            "2027-01-16"
        );
        assert_eq!(
            day_of(ts(1_800_014_400), "Pacific/Honolulu").expect("day"),
            "2027-01-15"
        );
        assert!(day_of(jiff::Timestamp::UNIX_EPOCH, "Mars/Olympus").is_err());
    }
}
