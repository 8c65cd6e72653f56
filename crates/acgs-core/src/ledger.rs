//! The spend ledger trait: atomic reservations of worst-case cost, settled after the fact.
//!
//! States (DESIGN.md §4.3): `held` (nothing sent; owned, leased, expires) → `submitted` (set with the
//! persisted job handle; never expires) → `settled` | `released`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, UserFacing};
use crate::job::JobHandle;
use crate::money::Usd;
use crate::task::ProviderId;

/// Identifies a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReservationId(pub String);

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Proves which process holds a `held` reservation (only the owner renews it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerToken(pub String);

impl fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerToken(..)")
    }
}

/// State of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Reserved, nothing sent yet; expires when its lease runs out.
    Held,
    /// Sent to the provider; counts at its estimate until settled; never expires.
    Submitted,
    /// Paid: the actual cost is recorded.
    Settled,
    /// Nothing was billed.
    Released,
    /// The lease ran out before anything was sent.
    Expired,
    /// Written off at its estimate with `acgs spend abandon` (counts as settled).
    Abandoned,
}

impl ReservationState {
    /// Every state, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Held,
        Self::Submitted,
        Self::Settled,
        Self::Released,
        Self::Expired,
        Self::Abandoned,
    ];

    /// The lowercase name stored in the ledger.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Submitted => "submitted",
            Self::Settled => "settled",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Abandoned => "abandoned",
        }
    }

    /// Parse the stored name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A request to reserve money.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// The run.
    pub run_id: String,
    /// The step, or `*` for a whole pipeline.
    pub step: String,
    /// The provider.
    pub provider: ProviderId,
    /// Catalogue key.
    pub model: String,
    /// The acgs user the spend is attributed to.
    pub user: String,
    /// Worst-case estimate.
    pub amount: Usd,
    /// The daily limit to hold.
    pub daily_limit: Usd,
    /// IANA time zone that defines the day.
    pub timezone: String,
    /// Lease of the `held` state.
    pub lease: Duration,
    /// Other budgets the reservation must fit in besides its day (an agent session's
    /// allowance, a user's month), checked in the same transaction.
    pub scopes: Vec<ScopeLimit>,
}

/// A budget shared by every reservation that names it: what it counts (reserved and settled,
/// as a day does) may not pass its limit. A period belongs in the name (`user:ada:2026-12`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeLimit {
    /// The scope's name, e.g. `mcp-session:<id>`.
    pub scope: String,
    /// The most it may count.
    pub limit: Usd,
}

/// A granted reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Its id.
    pub id: ReservationId,
    /// The owner token needed to renew it.
    pub owner: OwnerToken,
    /// The calendar day it counts against (`YYYY-MM-DD` in the configured zone).
    pub day: String,
    /// Spend on that day before this reservation (reserved + settled).
    pub spent_before: Usd,
}

/// Result of settling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// The estimate that was held.
    pub estimate: Usd,
    /// The recorded actual cost.
    pub actual: Usd,
}

impl Settlement {
    /// How much the actual cost exceeded the estimate, if it did.
    #[must_use]
    pub fn overrun(&self) -> Option<Usd> {
        (self.actual > self.estimate).then(|| self.actual.saturating_sub(self.estimate))
    }
}

/// Spend of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DaySpend {
    /// The day (`YYYY-MM-DD` in the zone asked for).
    pub day: String,
    /// Held and submitted reservations, at their estimates.
    pub reserved: Usd,
    /// Settled actual costs.
    pub settled: Usd,
}

impl DaySpend {
    /// Everything that counts against the limit.
    #[must_use]
    pub fn total(&self) -> Usd {
        self.reserved.saturating_add(self.settled)
    }
}

/// What a scope counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScopeSpend {
    /// The scope's name.
    pub scope: String,
    /// Held and submitted reservations, at their estimates.
    pub reserved: Usd,
    /// Settled actual costs.
    pub settled: Usd,
}

impl ScopeSpend {
    /// Everything that counts against the scope's limit.
    #[must_use]
    pub fn total(&self) -> Usd {
        self.reserved.saturating_add(self.settled)
    }
}

/// A reservation as stored, for reports, `resume` and `spend abandon`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationRecord {
    /// Id.
    pub id: ReservationId,
    /// The day it counts against.
    pub day: String,
    /// Run.
    pub run_id: String,
    /// Step.
    pub step: String,
    /// Provider name.
    pub provider: String,
    /// Model key.
    pub model: String,
    /// acgs user.
    pub user: String,
    /// State (`held` past its lease reads as `expired`).
    pub state: ReservationState,
    /// Worst-case estimate.
    pub estimate: Usd,
    /// Recorded cost (settled or abandoned).
    pub actual: Option<Usd>,
    /// The job handle, once submitted.
    pub job: Option<JobHandle>,
    /// When it was made.
    pub created_at: jiff::Timestamp,
}

/// Limits a shared ledger keeps for everyone who uses it (rows `limits.*` of its `meta` table);
/// clients can only tighten them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedLimits {
    /// Daily limit.
    pub daily_limit: Option<Usd>,
    /// Per-run limit.
    pub max_cost_per_run: Option<Usd>,
    /// The IANA zone that defines the day.
    pub timezone: Option<String>,
}

/// Ledger failures.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Reserving would pass the daily limit.
    #[error(
        "this would pass the daily limit of ${limit}: ${spent} already counts today and this needs up to ${requested}"
    )]
    DailyLimit {
        /// The limit.
        limit: Usd,
        /// Already counted today.
        spent: Usd,
        /// Asked for.
        requested: Usd,
    },
    /// Spend is over the limit after an overrun; new reservations wait for the next day.
    #[error("today's spend (${spent}) is over the daily limit of ${limit} after a cost overrun")]
    OverBudget {
        /// The limit.
        limit: Usd,
        /// Counted today.
        spent: Usd,
    },
    /// Reserving would pass the limit of one of the request's scopes.
    #[error(
        "this would pass the limit of ${limit} of {scope}: ${spent} already counts there and this needs up to ${requested}"
    )]
    ScopeLimit {
        /// The scope.
        scope: String,
        /// Its limit.
        limit: Usd,
        /// Already counted in it.
        spent: Usd,
        /// Asked for.
        requested: Usd,
    },
    /// The reservation does not exist, is not in a state that allows this change, or (renewing)
    /// is held by another process.
    #[error("reservation {id} cannot go from {} to {}", state_name(*.from), .to.as_str())]
    InvalidTransition {
        /// The reservation.
        id: ReservationId,
        /// Its state; `None` when there is no such reservation.
        from: Option<ReservationState>,
        /// The state asked for.
        to: ReservationState,
    },
    /// The time zone is not a known IANA name.
    #[error("unknown time zone `{0}`")]
    TimeZone(String),
    /// The ledger could not be reached or written.
    #[error("the spend ledger is unavailable: {0}")]
    Unavailable(String),
}

impl UserFacing for LedgerError {
    fn code(&self) -> &'static str {
        match self {
            Self::DailyLimit { .. } => "budget.daily_limit",
            Self::ScopeLimit { .. } => "budget.scope_limit",
            Self::OverBudget { .. } => "budget.overrun",
            Self::InvalidTransition { .. } => "ledger.invalid_transition",
            Self::TimeZone(_) => "config.invalid_value",
            Self::Unavailable(_) => "ledger.unavailable",
        }
    }
    fn kind(&self) -> ErrorKind {
        match self {
            Self::DailyLimit { .. } | Self::OverBudget { .. } | Self::ScopeLimit { .. } => {
                ErrorKind::Money
            }
            Self::TimeZone(_) => ErrorKind::Usage,
            Self::InvalidTransition { .. } | Self::Unavailable(_) => ErrorKind::Internal,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            Self::DailyLimit { .. } | Self::OverBudget { .. } => Some(
                "`acgs spend --today` shows what counts; raise `cost_management.daily_limit` in your user config to allow more".into(),
            ),
            Self::ScopeLimit { .. } => Some(
                "the budget is set in your user configuration (an agent session's allowance: `[mcp] session_limit`)".into(),
            ),
            _ => None,
        }
    }
}

/// A state's name, or `missing`.
fn state_name(state: Option<ReservationState>) -> &'static str {
    state.map_or("missing", ReservationState::as_str)
}

/// Result alias for ledger calls.
pub type LedgerResult<T> = Result<T, LedgerError>;

/// A spend ledger. Every method is atomic; `reserve` checks and counts in one transaction.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// Reserve `amount` if the day's spend plus it stays within the limit.
    async fn reserve(&self, request: ReserveRequest) -> LedgerResult<Reservation>;

    /// Reserve every request or none (a pipeline's steps). Ledgers that can should do it in one
    /// transaction; this default reserves one by one and releases what it reserved on a refusal.
    async fn reserve_all(&self, requests: Vec<ReserveRequest>) -> LedgerResult<Vec<Reservation>> {
        let mut reserved: Vec<Reservation> = Vec::with_capacity(requests.len());
        for request in requests {
            match self.reserve(request).await {
                Ok(r) => reserved.push(r),
                Err(e) => {
                    for r in &reserved {
                        let _ = self.release(&r.id).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(reserved)
    }

    /// Extend the lease of a `held` reservation.
    async fn renew(
        &self,
        id: &ReservationId,
        owner: &OwnerToken,
        lease: Duration,
    ) -> LedgerResult<()>;

    /// `held` → `submitted`. Called without a job just before the request is sent (so that a
    /// request whose outcome is unknown keeps counting), then with the job handle the provider
    /// returned (which may also be recorded on a `submitted` reservation that has none yet).
    async fn mark_submitted(&self, id: &ReservationId, job: Option<&JobHandle>)
    -> LedgerResult<()>;

    /// `held`/`submitted` → `settled` at `actual`.
    async fn settle(&self, id: &ReservationId, actual: Usd) -> LedgerResult<Settlement>;

    /// `held`/`submitted` → `released` (nothing billed).
    async fn release(&self, id: &ReservationId) -> LedgerResult<()>;

    /// What `scope` counts now: its held and submitted reservations, and what was settled in
    /// it.
    async fn scope_spend(&self, scope: &str) -> LedgerResult<ScopeSpend>;

    /// Spend of the current day in `timezone`.
    async fn today(&self, timezone: &str) -> LedgerResult<DaySpend>;

    /// Reservations counted on `since_day` (`YYYY-MM-DD`) or later, or all of them; newest first.
    async fn reservations(&self, since_day: Option<&str>) -> LedgerResult<Vec<ReservationRecord>>;

    /// `submitted` → `abandoned`: written off at its estimate (`acgs spend abandon`).
    async fn abandon(&self, id: &ReservationId) -> LedgerResult<Settlement>;

    /// A value of the ledger's `meta` table.
    async fn meta(&self, key: &str) -> LedgerResult<Option<String>>;

    /// Set a `meta` value; with `only_if_absent`, an existing value is kept and `false` returned.
    async fn set_meta(&self, key: &str, value: &str, only_if_absent: bool) -> LedgerResult<bool>;

    /// Set a `meta` value to `<rank>:<rest>` unless it holds one ranked as high or higher (a
    /// value without a rank counts as 0), in one statement: processes writing at once never move
    /// it backwards. Returns whether it was set.
    async fn advance_meta(&self, key: &str, rank: u64, rest: &str) -> LedgerResult<bool>;
}

/// A ranked `meta` value as [`Ledger::advance_meta`] stores it, `<rank>:<rest>`, and the rank
/// as the databases compare it (a signed 64-bit integer).
#[must_use]
pub fn ranked_meta(rank: u64, rest: &str) -> (String, i64) {
    (
        format!("{rank}:{rest}"),
        i64::try_from(rank).unwrap_or(i64::MAX),
    )
}

/// The limits a ledger keeps (`limits.daily_limit`, `limits.max_cost_per_run`,
/// `limits.timezone` in its `meta` table).
pub async fn shared_limits(ledger: &dyn Ledger) -> LedgerResult<SharedLimits> {
    let amount = |v: Option<String>| v.and_then(|text| Usd::parse(&text).ok());
    Ok(SharedLimits {
        daily_limit: amount(ledger.meta("limits.daily_limit").await?),
        max_cost_per_run: amount(ledger.meta("limits.max_cost_per_run").await?),
        timezone: ledger
            .meta("limits.timezone")
            .await?
            .filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::ReservationState;

    #[test]
    fn every_state_round_trips_through_its_stored_name() {
        for state in ReservationState::ALL {
            assert_eq!(ReservationState::from_name(state.as_str()), Some(state));
        }
        assert_eq!(ReservationState::from_name("Held"), None);
    }
}
