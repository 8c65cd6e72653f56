//! The shared spend ledger: PostgreSQL, for teams and fleets that share one budget.
//!
//! Same portable schema as the SQLite ledger. Each state change is one SQL statement (an upsert of
//! the per-day counter guarded by the limit, joined to the insert or update of the reservation), so
//! it is atomic under PostgreSQL's default isolation and needs one round trip. Time and the day come
//! from the server's clock (`now()` in the configured IANA zone). Off loopback the connection needs
//! TLS with a verified certificate; the password comes from the URL, `PGPASSWORD` or `.pgpass` and
//! is never shown.

use std::sync::Arc;
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::ledger::{
    DaySpend, Ledger, LedgerError, LedgerResult, OwnerToken, Reservation, ReservationId,
    ReservationRecord, ReservationState, ReserveRequest, ScopeSpend, Settlement,
};
use acgs_core::request::JobHandle;
use tokio_postgres::{Client, Row};

use crate::error::StorageError;
use crate::fsutil::random_hex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS days (
    day TEXT PRIMARY KEY,
    reserved BIGINT NOT NULL DEFAULT 0,
    settled BIGINT NOT NULL DEFAULT 0
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
    estimate BIGINT NOT NULL,
    actual BIGINT,
    owner TEXT NOT NULL,
    lease_until BIGINT,
    job TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_day_state ON reservations(day, state);
CREATE INDEX IF NOT EXISTS reservations_held ON reservations(state, lease_until);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scopes (
    scope TEXT PRIMARY KEY,
    reserved BIGINT NOT NULL DEFAULT 0,
    settled BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reservation_scopes (
    reservation_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    PRIMARY KEY (reservation_id, scope)
);
CREATE OR REPLACE FUNCTION acgs_count_scopes(p_id TEXT, p_amount BIGINT, p_scopes TEXT[], p_limits BIGINT[])
RETURNS TEXT AS $$
DECLARE i INT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_scopes, 1), 0) LOOP
        INSERT INTO scopes (scope) VALUES (p_scopes[i]) ON CONFLICT DO NOTHING;
        UPDATE scopes SET reserved = reserved + p_amount
            WHERE scope = p_scopes[i] AND reserved + settled + p_amount <= p_limits[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'acgs scope limit' USING ERRCODE = 'P0001', DETAIL = p_scopes[i];
        END IF;
        INSERT INTO reservation_scopes (reservation_id, scope) VALUES (p_id, p_scopes[i]);
    END LOOP;
    RETURN p_id;
END $$ LANGUAGE plpgsql;
";

/// Milliseconds since the epoch on the server's clock.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// The PostgreSQL ledger.
#[derive(Clone)]
pub struct PostgresLedger {
    client: Arc<Client>,
    target: String,
}

impl std::fmt::Debug for PostgresLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresLedger({})", self.target)
    }
}

fn unavailable(e: &tokio_postgres::Error) -> LedgerError {
    let text = e.as_db_error().map_or_else(
        || e.to_string(),
        |db| format!("{} ({})", db.message(), db.code().code()),
    );
    LedgerError::Unavailable(text)
}

impl PostgresLedger {
    /// Connect to `url` (see [`crate::postgres::connect`]), creating the schema if needed.
    pub async fn connect(url: &str, access: &crate::LedgerAccess) -> Result<Self, StorageError> {
        let (client, target) = crate::postgres::connect(url, access).await?;
        let ledger = Self {
            client: Arc::new(client),
            target,
        };
        ledger.create_schema().await?;
        Ok(ledger)
    }

    async fn create_schema(&self) -> Result<(), StorageError> {
        let sql = format!("BEGIN; SELECT pg_advisory_xact_lock(727274); {SCHEMA} COMMIT;");
        self.client
            .batch_execute(&sql)
            .await
            .map_err(|e| crate::postgres::setup_error(&self.target, unavailable(&e)))
    }

    /// Expire `held` reservations past their lease, adjusting their days.
    async fn expire_held(&self) -> LedgerResult<()> {
        let sql = format!(
            "WITH expired AS (
                 UPDATE reservations SET state = 'expired', updated_at = {NOW_MS}
                 WHERE state = 'held' AND lease_until < {NOW_MS}
                 RETURNING id, day, estimate),
             sums AS (SELECT day, sum(estimate)::bigint AS total FROM expired GROUP BY day),
             scoped AS (
                 SELECT rs.scope, sum(expired.estimate)::bigint AS total
                 FROM expired JOIN reservation_scopes rs ON rs.reservation_id = expired.id
                 GROUP BY rs.scope),
             unscoped AS (
                 UPDATE scopes SET reserved = scopes.reserved - scoped.total
                 FROM scoped WHERE scopes.scope = scoped.scope)
             UPDATE days SET reserved = days.reserved - sums.total FROM sums WHERE days.day = sums.day"
        );
        self.client
            .execute(&sql, &[])
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&e))
    }

    async fn day(&self, timezone: &str) -> LedgerResult<String> {
        jiff::tz::TimeZone::get(timezone)
            .map_err(|_| LedgerError::TimeZone(timezone.to_owned()))?;
        let row = self
            .client
            .query_one(
                "SELECT to_char(now() AT TIME ZONE $1, 'YYYY-MM-DD')",
                &[&timezone],
            )
            .await
            .map_err(|_| LedgerError::TimeZone(timezone.to_owned()))?;
        Ok(row.get(0))
    }

    async fn day_spend(&self, day: &str) -> LedgerResult<DaySpend> {
        let row = self
            .client
            .query_opt("SELECT reserved, settled FROM days WHERE day = $1", &[&day])
            .await
            .map_err(|e| unavailable(&e))?;
        let (reserved, settled): (i64, i64) = row.map_or((0, 0), |r| (r.get(0), r.get(1)));
        Ok(DaySpend {
            day: day.to_owned(),
            reserved: Usd::from_micros(reserved),
            settled: Usd::from_micros(settled),
        })
    }

    /// Finish a reservation in one of `from` → `to` at `actual` (the estimate when `None`).
    async fn finish(
        &self,
        id: &ReservationId,
        from: &[&str],
        to: ReservationState,
        actual: Option<Usd>,
    ) -> LedgerResult<Settlement> {
        let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        let actual = actual.map(Usd::micros);
        let sql = format!(
            "WITH r AS (
                 UPDATE reservations SET state = $2::text, actual = COALESCE($3::bigint, estimate), lease_until = NULL,
                     updated_at = {NOW_MS}
                 WHERE id = $1::text AND state = ANY($4::text[])
                 RETURNING id, day, estimate, actual),
             scoped AS (
                 UPDATE scopes SET reserved = scopes.reserved - r.estimate, settled = scopes.settled + r.actual
                 FROM r, reservation_scopes rs
                 WHERE rs.reservation_id = r.id AND scopes.scope = rs.scope)
             UPDATE days SET reserved = days.reserved - r.estimate, settled = days.settled + r.actual
             FROM r WHERE days.day = r.day RETURNING r.estimate, r.actual"
        );
        let row = self
            .client
            .query_opt(&sql, &[&id.0, &to.as_str(), &actual, &from])
            .await
            .map_err(|e| unavailable(&e))?;
        match row {
            Some(row) => Ok(Settlement {
                estimate: Usd::from_micros(row.get(0)),
                actual: Usd::from_micros(row.get::<_, i64>(1)),
            }),
            None => Err(self.invalid(id, to).await),
        }
    }

    /// The refusal of `request` by its scope `scope`, with what the scope counts now.
    async fn scope_refusal(&self, request: &ReserveRequest, scope: &str) -> LedgerError {
        let Some(limit) = request.scopes.iter().find(|s| s.scope == scope) else {
            return LedgerError::Unavailable(format!("scope {scope} refused a reservation"));
        };
        let spent = self
            .scope_spend(scope)
            .await
            .map(|s| s.total())
            .unwrap_or(Usd::ZERO);
        LedgerError::ScopeLimit {
            scope: scope.to_owned(),
            limit: limit.limit,
            spent,
            requested: request.amount,
        }
    }

    async fn invalid(&self, id: &ReservationId, to: ReservationState) -> LedgerError {
        let state = self
            .client
            .query_opt("SELECT state FROM reservations WHERE id = $1", &[&id.0])
            .await
            .ok()
            .flatten()
            .and_then(|r| ReservationState::from_name(r.get(0)));
        LedgerError::InvalidTransition {
            id: id.clone(),
            from: state,
            to,
        }
    }
}

fn record(row: &Row) -> LedgerResult<ReservationRecord> {
    let job: Option<String> = row.get(10);
    let state: &str = row.get(7);
    let state = ReservationState::from_name(state)
        .ok_or_else(|| LedgerError::Unavailable(format!("unknown reservation state `{state}`")))?;
    Ok(ReservationRecord {
        id: ReservationId(row.get(0)),
        day: row.get(1),
        run_id: row.get(2),
        step: row.get(3),
        provider: row.get(4),
        model: row.get(5),
        user: row.get(6),
        state,
        estimate: Usd::from_micros(row.get(8)),
        actual: row.get::<_, Option<i64>>(9).map(Usd::from_micros),
        job: job.and_then(|j| serde_json::from_str(&j).ok()),
        created_at: jiff::Timestamp::from_millisecond(row.get(11))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    })
}

#[async_trait::async_trait]
impl Ledger for PostgresLedger {
    async fn reserve(&self, request: ReserveRequest) -> LedgerResult<Reservation> {
        self.expire_held().await?;
        let day = self.day(&request.timezone).await?;
        let before = self.day_spend(&day).await?;
        let (id, owner) = (random_hex(16), random_hex(16));
        let lease_ms = i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX);
        let amount = request.amount.micros();
        let limit = request.daily_limit.micros();
        let scopes: Vec<String> = request.scopes.iter().map(|s| s.scope.clone()).collect();
        let limits: Vec<i64> = request.scopes.iter().map(|s| s.limit.micros()).collect();
        let sql = format!(
            "WITH counted AS (
                 INSERT INTO days (day, reserved, settled) SELECT $1::text, $2::bigint, 0 WHERE $2::bigint <= $3::bigint
                 ON CONFLICT (day) DO UPDATE SET reserved = days.reserved + EXCLUDED.reserved
                 WHERE days.reserved + days.settled + EXCLUDED.reserved <= $3::bigint
                 RETURNING day),
             inserted AS (
                 INSERT INTO reservations
                     (id, day, run_id, step, provider, model, user_name, state, estimate, owner, lease_until, created_at, updated_at)
                 SELECT $4::text, counted.day, $5::text, $6::text, $7::text, $8::text, $9::text, 'held', $2::bigint, $10::text,
                        {NOW_MS} + $11::bigint, {NOW_MS}, {NOW_MS}
                 FROM counted
                 RETURNING id)
             SELECT acgs_count_scopes(inserted.id, $2::bigint, $12::text[], $13::bigint[]) FROM inserted"
        );
        let inserted = self
            .client
            .query_opt(
                &sql,
                &[
                    &day,
                    &amount,
                    &limit,
                    &id,
                    &request.run_id,
                    &request.step,
                    &request.provider.as_str(),
                    &request.model,
                    &request.user,
                    &owner,
                    &lease_ms,
                    &scopes,
                    &limits,
                ],
            )
            .await;
        let inserted = match inserted {
            Err(e)
                if e.as_db_error()
                    .is_some_and(|d| d.message() == "acgs scope limit") =>
            {
                let scope = e.as_db_error().and_then(|d| d.detail()).unwrap_or_default();
                return Err(self.scope_refusal(&request, scope).await);
            }
            other => other.map_err(|e| unavailable(&e))?,
        };
        if inserted.is_none() {
            let now = self.day_spend(&day).await?;
            return Err(if now.total() > request.daily_limit {
                LedgerError::OverBudget {
                    limit: request.daily_limit,
                    spent: now.total(),
                }
            } else {
                LedgerError::DailyLimit {
                    limit: request.daily_limit,
                    spent: now.total(),
                    requested: request.amount,
                }
            });
        }
        Ok(Reservation {
            id: ReservationId(id),
            owner: OwnerToken(owner),
            day,
            spent_before: before.total(),
        })
    }

    async fn renew(
        &self,
        id: &ReservationId,
        owner: &OwnerToken,
        lease: Duration,
    ) -> LedgerResult<()> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let sql = format!(
            "UPDATE reservations SET lease_until = {NOW_MS} + $3::bigint, updated_at = {NOW_MS}
             WHERE id = $1 AND owner = $2 AND state = 'held' AND lease_until >= {NOW_MS}"
        );
        let n = self
            .client
            .execute(&sql, &[&id.0, &owner.0, &lease_ms])
            .await
            .map_err(|e| unavailable(&e))?;
        if n == 1 {
            Ok(())
        } else {
            Err(self.invalid(id, ReservationState::Held).await)
        }
    }

    async fn mark_submitted(
        &self,
        id: &ReservationId,
        job: Option<&JobHandle>,
    ) -> LedgerResult<()> {
        let job = job.and_then(|j| serde_json::to_string(j).ok());
        let sql = format!(
            "UPDATE reservations SET state = 'submitted', job = COALESCE($2::text, job), lease_until = NULL,
                 updated_at = {NOW_MS}
             WHERE id = $1 AND (state = 'held' OR (state = 'submitted' AND job IS NULL))"
        );
        let n = self
            .client
            .execute(&sql, &[&id.0, &job])
            .await
            .map_err(|e| unavailable(&e))?;
        if n == 1 {
            Ok(())
        } else {
            Err(self.invalid(id, ReservationState::Submitted).await)
        }
    }

    async fn settle(&self, id: &ReservationId, actual: Usd) -> LedgerResult<Settlement> {
        self.finish(
            id,
            &["held", "submitted"],
            ReservationState::Settled,
            Some(actual),
        )
        .await
    }

    async fn release(&self, id: &ReservationId) -> LedgerResult<()> {
        self.finish(
            id,
            &["held", "submitted"],
            ReservationState::Released,
            Some(Usd::ZERO),
        )
        .await
        .map(|_| ())
    }

    async fn scope_spend(&self, scope: &str) -> LedgerResult<ScopeSpend> {
        self.expire_held().await?;
        let row = self
            .client
            .query_opt(
                "SELECT reserved, settled FROM scopes WHERE scope = $1",
                &[&scope],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let (reserved, settled) = row.map_or((0, 0), |r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
        Ok(ScopeSpend {
            scope: scope.to_owned(),
            reserved: Usd::from_micros(reserved),
            settled: Usd::from_micros(settled),
        })
    }

    async fn today(&self, timezone: &str) -> LedgerResult<DaySpend> {
        self.expire_held().await?;
        let day = self.day(timezone).await?;
        self.day_spend(&day).await
    }

    async fn reservations(&self, since_day: Option<&str>) -> LedgerResult<Vec<ReservationRecord>> {
        self.expire_held().await?;
        let since = since_day.unwrap_or("0000-00-00");
        let rows = self
            .client
            .query(
                "SELECT id, day, run_id, step, provider, model, user_name, state, estimate, actual, job, created_at
                 FROM reservations WHERE day >= $1 ORDER BY created_at DESC, id",
                &[&since],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        rows.iter().map(record).collect()
    }

    async fn abandon(&self, id: &ReservationId) -> LedgerResult<Settlement> {
        self.finish(id, &["submitted"], ReservationState::Abandoned, None)
            .await
    }

    async fn meta(&self, key: &str) -> LedgerResult<Option<String>> {
        let row = self
            .client
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn set_meta(&self, key: &str, value: &str, only_if_absent: bool) -> LedgerResult<bool> {
        let sql = if only_if_absent {
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        } else {
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        };
        let n = self
            .client
            .execute(sql, &[&key, &value])
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(n == 1)
    }

    async fn advance_meta(&self, key: &str, rank: u64, rest: &str) -> LedgerResult<bool> {
        let (value, rank) = acgs_core::ledger::ranked_meta(rank, rest);
        let n = self
            .client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value \
                 WHERE (CASE WHEN split_part(meta.value, ':', 1) ~ '^[0-9]{1,18}$' \
                 THEN split_part(meta.value, ':', 1)::bigint ELSE 0 END) < $3",
                &[&key, &value, &rank],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(n == 1)
    }
}
