//! A [`Session`]: one server run — every client of it, over stdio or HTTP — acting as one caller
//! of the engine, with its own id, its own allowance (a ledger scope, so reconnecting does not
//! reset it) and the folders its inputs may come from.

use std::path::PathBuf;
use std::sync::Arc;

use acgs_core::Usd;
use acgs_core::audit::Origin;
use acgs_core::config::McpConfig;
use acgs_core::ledger::ScopeLimit;
use acgs_engine::{Caller, Confirm, ConfirmAnswer, Suite};

use crate::error::McpError;

/// What the user's configuration lets a session do, checked when the server starts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[mcp] session_limit`.
    pub session_limit: Usd,
    /// `[mcp] confirm_above`.
    pub confirm_above: Usd,
    /// `[mcp] allowed_input_roots`, resolved to real paths.
    pub input_roots: Vec<PathBuf>,
    /// `[mcp] allow_remote`.
    pub allow_remote: bool,
}

impl Settings {
    /// The settings of `config`: every input root must be an absolute path to an existing
    /// folder (it is resolved once, here, so a symlink swapped in later changes nothing).
    pub fn from_config(config: &McpConfig) -> Result<Self, McpError> {
        let mut input_roots = Vec::new();
        for root in &config.allowed_input_roots {
            let invalid = |reason: &str| McpError::InputRoot {
                path: root.clone(),
                reason: reason.to_owned(),
            };
            if !root.is_absolute() {
                return Err(invalid("not an absolute path"));
            }
            let real = fs_err::canonicalize(root).map_err(|e| invalid(&e.kind().to_string()))?;
            if !real.is_dir() {
                return Err(invalid("not a folder"));
            }
            input_roots.push(real);
        }
        Ok(Self {
            session_limit: config.session_limit,
            confirm_above: config.confirm_above,
            input_roots,
            allow_remote: config.allow_remote,
        })
    }
}

/// One server run as a caller of the engine.
#[derive(Debug)]
pub struct Session {
    id: String,
    suite: Suite,
    settings: Settings,
    /// Held shared by every call in flight; [`Session::drain`] takes it whole.
    calls: Arc<tokio::sync::RwLock<()>>,
    /// The runs made in this session: the only ones `run_status` and `resume` touch.
    runs: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Session {
    /// A new session of `suite`'s user: origin `mcp`, a fresh id, the allowance as the ledger
    /// scope `mcp-session:<id>`, inputs only from the allowed folders, and spending confirmed
    /// up to `confirm_above` (the allowance is the user's standing consent).
    #[must_use]
    pub fn start(suite: &Suite, settings: Settings) -> Arc<Self> {
        let id = new_id();
        let caller = Caller::new(suite.caller().user())
            .origin(Origin::Mcp)
            .session(&id)
            .scope(ScopeLimit {
                scope: format!("mcp-session:{id}"),
                limit: settings.session_limit,
            })
            .input_roots(settings.input_roots.clone())
            .confirm_always(Arc::new(UpTo(settings.confirm_above)));
        Arc::new(Self {
            suite: suite.for_caller(caller),
            id,
            settings,
            calls: Arc::default(),
            runs: std::sync::Mutex::default(),
        })
    }

    /// Held while a call runs, so that [`Session::drain`] can wait for it.
    pub(crate) async fn call_guard(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        Arc::clone(&self.calls).read_owned().await
    }

    /// Wait, at most `timeout`, for the calls in flight to end — after a shutdown has
    /// interrupted them, they are settling by the charge table. Returns whether they all did
    /// (a call still running then keeps its reservation, which `acgs resume` settles).
    pub async fn drain(&self, timeout: std::time::Duration) -> bool {
        let drained = tokio::time::timeout(timeout, self.calls.write())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(session = %self.id, "calls still running at shutdown keep their reservations");
        }
        drained
    }

    /// The session id (in every audit entry of the session).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The suite acting for this session.
    #[must_use]
    pub fn suite(&self) -> &Suite {
        &self.suite
    }

    /// The settings it started with.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Audit a call refused before it reached the engine (which audits what it refuses itself).
    pub(crate) fn refused(&self, tool: &str, error: &crate::results::ToolError) {
        let operation = format!("mcp.{}", crate::results::printable_name(tool));
        self.suite.audit_refusal(&operation, error.code());
    }

    /// Note that run `run_id` was made in this session.
    pub(crate) fn remember_run(&self, run_id: &str) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(run_id.to_owned());
        }
    }

    /// Run `run_id` if it was made in this session, else [`McpError::NotThisSession`].
    pub(crate) fn own_run<'a>(&self, run_id: &'a str) -> Result<&'a str, McpError> {
        let known = self.runs.lock().is_ok_and(|runs| runs.contains(run_id));
        if known {
            Ok(run_id)
        } else {
            Err(McpError::NotThisSession(crate::results::printable_name(
                run_id,
            )))
        }
    }
}

/// 16 random hex digits.
fn new_id() -> String {
    let mut bytes = [0u8; 8];
    // A session id only needs to be unique; the clock is a fallback should the OS refuse.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&nanos.to_le_bytes()[..8]);
    }
    hex::encode(bytes)
}

/// Confirms a spend up to its amount; above it nobody can be asked.
struct UpTo(Usd);

impl Confirm for UpTo {
    fn confirm(&self, _: &str, estimate: Usd, _: bool) -> ConfirmAnswer {
        if estimate <= self.0 {
            ConfirmAnswer::Yes
        } else {
            ConfirmAnswer::Unavailable
        }
    }
}
