//! [`Services`]: what the guarded path runs with — configuration, catalogue, guard, providers,
//! ledger, audit log, confirmation, rate limiter — built once by [`crate::SuiteBuilder`] and
//! shared by every entrance.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acgs_core::audit::{AuditSink, Origin};
use acgs_core::catalog::Catalog;
use acgs_core::config::Config;
use acgs_core::ledger::{Ledger, ScopeLimit};
use acgs_core::moderation::Moderator;
use acgs_core::{Provider, ProviderId};
use acgs_guard::Guard;
use acgs_guard::rate::RateLimiter;
use acgs_storage::journal::SettlementJournal;
use acgs_storage::manifest::RecordKey;
use acgs_storage::runs::RunIndex;

use crate::error::EngineError;

/// Fingerprint and source of the key a provider uses (for the audit log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// 12 hex digits of the key's sha256.
    pub fingerprint: String,
    /// Where it came from.
    pub source: String,
}

/// The answer to a spending confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmAnswer {
    /// Go ahead.
    Yes,
    /// Do not spend.
    No,
    /// Nobody can be asked (no terminal, no `--yes`).
    Unavailable,
    /// Ctrl-C or SIGTERM came while asking: nothing is reserved or sent.
    Interrupted(crate::Signal),
}

/// Asks the user to confirm a worst-case spend (the CLI asks on the terminal; a library user may
/// ask however it likes).
pub trait Confirm: Send + Sync {
    /// Ask once whether to spend up to `estimate` on `what` (a model key, or a pipeline); `warn`
    /// when the estimate is at or above the warning threshold.
    fn confirm(&self, what: &str, estimate: acgs_core::Usd, warn: bool) -> ConfirmAnswer;
}

/// Confirms everything (`--yes`, and the default for library use).
#[derive(Debug, Clone, Copy, Default)]
pub struct AssumeYes;

impl Confirm for AssumeYes {
    fn confirm(&self, _: &str, _: acgs_core::Usd, _: bool) -> ConfirmAnswer {
        ConfirmAnswer::Yes
    }
}

/// A spend alert: the day's spend (reserved and settled) crossed `fraction_permille` of the
/// daily limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendAlert {
    /// The `alert_at` threshold crossed, in thousandths of the daily limit (500 = half).
    pub fraction_permille: u32,
    /// What the day counts now.
    pub spent: acgs_core::Usd,
    /// The daily limit.
    pub limit: acgs_core::Usd,
    /// The day (`YYYY-MM-DD` in the limit's time zone).
    pub day: String,
}

/// Told of every spend alert, once a day per threshold, besides the warning event and the audit
/// entry (the CLI runs the user's `alert_command`).
pub trait AlertHook: Send + Sync {
    /// `alert` happened.
    fn alert(&self, alert: &SpendAlert);
}

/// Who a request is made for and through which entrance: the user spend and audit entries are
/// attributed to, the entrance and its session (recorded in every audit entry), budgets beyond
/// the day every reservation must also fit in (an agent session's allowance), and how spending
/// is confirmed. [`crate::Suite::for_caller`] gives a suite that acts for one.
#[derive(Clone)]
pub struct Caller {
    pub(crate) user: String,
    pub(crate) origin: Origin,
    pub(crate) session: Option<String>,
    pub(crate) scopes: Vec<ScopeLimit>,
    pub(crate) confirm: Arc<dyn Confirm>,
    /// Ask `confirm` about every spend, not only when `require_confirmation` is on.
    pub(crate) confirm_always: bool,
    pub(crate) cap: Option<acgs_core::Usd>,
    pub(crate) input_roots: Option<Arc<[PathBuf]>>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("origin", &self.origin)
            .field("session", &self.session)
            .field("scopes", &self.scopes)
            .field("cap", &self.cap)
            .field("input_roots", &self.input_roots)
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// Library use by `user`: no session, no scope, every spend confirmed.
    #[must_use]
    pub fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            origin: Origin::Library,
            session: None,
            scopes: Vec::new(),
            confirm: Arc::new(AssumeYes),
            confirm_always: false,
            cap: None,
            input_roots: None,
        }
    }

    /// Ask `confirm` before every spend, whatever `require_confirmation` says (an entrance
    /// whose own policy decides, like an agent's allowance).
    #[must_use]
    pub fn confirm_always(mut self, confirm: Arc<dyn Confirm>) -> Self {
        self.confirm = confirm;
        self.confirm_always = true;
        self
    }

    /// Refuse a run whose worst case is above `max` (`budget.max_cost_below_estimate`) — a
    /// ceiling the caller set for one call, never a reason to make the request cheaper. A cap
    /// can only come down: the lower of this and any earlier one holds.
    #[must_use]
    pub fn cap(mut self, max: acgs_core::Usd) -> Self {
        self.cap = Some(self.cap.map_or(max, |earlier| earlier.min(max)));
        self
    }

    /// Read input files only from inside `roots` (canonical paths: the caller resolves them
    /// first). A file whose real path — after `..` and symlinks — lies elsewhere is refused with
    /// `input.outside_roots`; an empty list refuses every file. Without this, any readable
    /// file may be an input.
    #[must_use]
    pub fn input_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.input_roots = Some(roots.into());
        self
    }

    /// The entrance.
    #[must_use]
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// The entrance's session id (recorded in every audit entry).
    #[must_use]
    pub fn session(mut self, session: &str) -> Self {
        self.session = Some(session.to_owned());
        self
    }

    /// One more budget every reservation must fit in, atomically with the daily limit.
    #[must_use]
    pub fn scope(mut self, scope: ScopeLimit) -> Self {
        self.scopes.push(scope);
        self
    }

    /// How to confirm a spend at or above `confirm_above` (an entrance with nobody to ask
    /// answers [`ConfirmAnswer::Unavailable`], which refuses).
    #[must_use]
    pub fn confirm(mut self, confirm: Arc<dyn Confirm>) -> Self {
        self.confirm = confirm;
        self
    }

    /// The user.
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// The parts of a suite. Optional parts are missing in suites that only plan.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) config: Arc<Config>,
    /// `[guard] templates`, checked.
    pub(crate) templates: Vec<(String, String)>,
    pub(crate) moderators: Vec<Arc<dyn Moderator>>,
    /// Told of every spend alert.
    pub(crate) alert_hook: Option<Arc<dyn AlertHook>>,
    /// Settlements the ledger did not take, for the next command.
    pub(crate) journal: Option<SettlementJournal>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) providers: BTreeMap<ProviderId, Arc<dyn Provider>>,
    pub(crate) keys: BTreeMap<ProviderId, KeyInfo>,
    pub(crate) ledger: Option<Arc<dyn Ledger>>,
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
    pub(crate) guard: Arc<Guard>,
    pub(crate) rate: Arc<RateLimiter>,
    pub(crate) runs: Option<RunIndex>,
    /// Seals the step records of run folders (`acgs resume` trusts only sealed records).
    pub(crate) record_key: Option<RecordKey>,
    /// Who the suite acts for.
    pub(crate) caller: Caller,
}

impl Services {
    /// The provider of `id` (a missing one is a missing key).
    pub(crate) fn provider(&self, id: ProviderId) -> Result<Arc<dyn Provider>, EngineError> {
        Ok(self
            .providers
            .get(&id)
            .cloned()
            .ok_or(acgs_core::Error::MissingKey {
                provider: id.as_str(),
                variables: id.key_variables(),
            })?)
    }

    /// The spend ledger.
    pub(crate) fn ledger(&self) -> Result<Arc<dyn Ledger>, EngineError> {
        self.ledger.clone().ok_or(EngineError::NotConfigured {
            what: "spend ledger",
        })
    }

    /// The runs index.
    pub(crate) fn runs(&self) -> Result<&RunIndex, EngineError> {
        self.runs
            .as_ref()
            .ok_or(EngineError::NotConfigured { what: "runs index" })
    }

    /// The key `provider` uses (empty when unknown).
    pub(crate) fn key(&self, provider: ProviderId) -> KeyInfo {
        self.keys.get(&provider).cloned().unwrap_or_default()
    }

    /// How long a `held` reservation lives without renewal.
    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.config.ledger.lease_secs.max(1))
    }
}
