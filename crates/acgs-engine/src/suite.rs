//! [`Suite`]: one generation through all fourteen stages of the guarded path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use acgs_core::audit::{AuditEvent, AuditOutcome, AuditSink};
use acgs_core::catalog::{Catalog, ModelSpec, Params};
use acgs_core::config::{Config, CostManagement};
use acgs_core::ledger::{Ledger, Reservation, ReserveRequest};
use acgs_core::moderation::{ModerationVerdict, Moderator};
use acgs_core::pricing::Quote;
use acgs_core::provider::{CancellationToken, EventSink, Stage};
use acgs_core::redact::Redactor;
use acgs_core::request::{
    Authorized, CancelOutcome, JobHandle, Output, Request, Submitted, Usage, Verdict,
};
use acgs_core::task::{MediaKind, TaskKind};
use acgs_core::{Provider, ProviderId, Usd, UserFacing};
use acgs_guard::budget::SpendDecision;
use acgs_guard::rate::RateLimiter;
use acgs_guard::{BlockList, Guard};
use acgs_storage::journal::{PendingAction, PendingEntry, SettlementJournal};
use acgs_storage::manifest::{Manifest, OutputRecord, RunKind, StepRecord, StepStatus, Timings};
use acgs_storage::output::{OutputRoot, StoredFile};
use acgs_storage::runs::RunIndex;
pub(crate) use acgs_storage::runs::new_run_id;

pub(crate) mod resume;
pub use resume::Resumed;

use crate::error::{EngineError, Signal};
use crate::run::RunState;
use crate::stages::authorize::{AssumeYes, Confirm, LeaseKeeper};
use crate::stages::inspect::InspectedTexts;
use crate::stages::validate::OpenedInputs;
use crate::stages::wait::Waited;
use crate::stages::{
    audit, authorize, check_output, inspect, price, rate_limit, resolve, settle, store, submit,
    template, upload, validate, wait,
};

/// The step id of a single generation.
pub const MAIN_STEP: &str = "main";

/// What the user asks for: one generation.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GenerationRequest {
    /// Model key (`key` or `provider:key`).
    pub model: String,
    /// Tasks the command accepts (empty: any).
    pub tasks: Vec<TaskKind>,
    /// Text by flag: `prompt`, `negative_prompt`, `text`, `system`, `question`.
    pub texts: BTreeMap<String, String>,
    /// `--param k=v` pairs.
    pub params: Vec<(String, String)>,
    /// `-n`.
    pub count: Option<u32>,
    /// `--out STEM`.
    pub out_stem: Option<String>,
    /// `--timeout` in seconds: overrides the catalogue deadline.
    pub timeout_secs: Option<u64>,
    /// `--detach`: on interrupt leave the job running instead of cancelling it.
    pub detach: bool,
    /// Local input files by flag (`image`, `images`, `audio`, `video`, `end_image`, `audio2`).
    #[serde(default)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Stand-ins for media an earlier pipeline step has not made yet, by flag: enough to price
    /// the request, never sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assumed_inputs: Vec<(String, AssumedMedia)>,
}

/// What an estimate assumes about media that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssumedMedia {
    /// Image, video or audio.
    pub kind: MediaKind,
    /// Width and height (images).
    pub pixels: Option<(u64, u64)>,
    /// Duration (audio, video).
    pub seconds: Option<u64>,
}

/// Fingerprint and source of the key a provider uses (for the audit log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// 12 hex digits of the key's sha256.
    pub fingerprint: String,
    /// Where it came from.
    pub source: String,
}

/// Everything decided before any money moves: stages 1–5 and the per-run check.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The run id this generation will use.
    pub run_id: String,
    /// The step id within the run (`main` for single commands).
    pub step: String,
    /// The resolved model.
    pub model: Arc<ModelSpec>,
    /// Wire parameters.
    pub params: Params,
    /// System instruction (text models).
    pub system: Option<String>,
    /// Requests to send.
    pub requests: u32,
    /// Worst case, margin included.
    pub quote: Quote,
    /// Warnings and overrides.
    pub verdict: Verdict,
    /// What the sanitizer changed.
    pub sanitizer_changes: Vec<String>,
    /// Whether to warn and confirm.
    pub spend: SpendDecision,
    /// File stem for outputs.
    pub stem: String,
    /// Whether the user chose the stem.
    pub stem_named: bool,
    /// Local inputs, opened and checked.
    pub inputs: OpenedInputs,
    /// The request this plan was made from.
    pub request: GenerationRequest,
    /// The user text (for the audit digest).
    prompt: String,
    /// Inspected texts by flag (for external moderators).
    texts: Vec<(String, String)>,
}

/// The result of a generation.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run id.
    pub run_id: String,
    /// The run folder.
    pub folder: PathBuf,
    /// The model key.
    pub model: String,
    /// Stored files.
    pub outputs: Vec<StoredFile>,
    /// Worst case that was reserved.
    pub estimate: Usd,
    /// Settled cost.
    pub actual: Usd,
    /// Provider request id.
    pub request_id: Option<String>,
    /// Warnings (flagged outputs dropped, overruns, audit trouble).
    pub warnings: Vec<String>,
}

/// Interrupts a run: which signal, and the token providers watch.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    token: CancellationToken,
    signal: Arc<AtomicU8>,
}

impl Interrupt {
    /// A fresh, unfired interrupt.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Fire it for `signal`.
    pub fn fire(&self, signal: Signal) {
        self.signal.store(
            if signal == Signal::Terminate { 2 } else { 1 },
            Ordering::SeqCst,
        );
        self.token.cancel();
    }

    /// The token providers watch.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The signal, once fired.
    #[must_use]
    pub fn signal(&self) -> Option<Signal> {
        match self.signal.load(Ordering::SeqCst) {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            _ => None,
        }
    }
}

/// Builds a [`Suite`].
#[derive(Default)]
pub struct SuiteBuilder {
    config: Option<Config>,
    catalog: Catalog,
    providers: BTreeMap<ProviderId, Arc<dyn Provider>>,
    ledger: Option<Arc<dyn Ledger>>,
    audit: Option<Arc<dyn AuditSink>>,
    confirm: Option<Arc<dyn Confirm>>,
    secrets: Redactor,
    keys: BTreeMap<ProviderId, KeyInfo>,
    runs: Option<RunIndex>,
    user: String,
    moderators: Vec<Arc<dyn Moderator>>,
    command_env: BTreeMap<String, String>,
    journal: Option<SettlementJournal>,
}

impl SuiteBuilder {
    /// The configuration (its `output_dir` should be absolute).
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Add models (provider catalogues, then user overrides).
    #[must_use]
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog.extend(catalog);
        self
    }

    /// A provider, with the fingerprint and source of its key.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn Provider>, key: KeyInfo) -> Self {
        self.keys.insert(provider.id(), key);
        self.providers.insert(provider.id(), provider);
        self
    }

    /// The spend ledger.
    #[must_use]
    pub fn ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The audit sink.
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// How to confirm spending (default: assume yes, for library use).
    #[must_use]
    pub fn confirm(mut self, confirm: Arc<dyn Confirm>) -> Self {
        self.confirm = Some(confirm);
        self
    }

    /// Loaded secrets, refused when they appear in text.
    #[must_use]
    pub fn secrets(mut self, secrets: Redactor) -> Self {
        self.secrets = secrets;
        self
    }

    /// The runs index, so `acgs resume` finds runs from anywhere.
    #[must_use]
    pub fn runs(mut self, runs: RunIndex) -> Self {
        self.runs = Some(runs);
        self
    }

    /// The acgs user spend and audit entries are attributed to.
    #[must_use]
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_owned();
        self
    }

    /// The environment configured commands (`alert_command`) run with (only `PATH`, `HOME` and
    /// `XDG_*` of it are passed on).
    #[must_use]
    pub fn command_env(mut self, vars: BTreeMap<String, String>) -> Self {
        self.command_env = vars;
        self
    }

    /// Where settlements that could not reach the ledger are kept for the next command.
    #[must_use]
    pub fn journal(mut self, journal: SettlementJournal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// An external moderator, consulted for every text before money is reserved (fails closed).
    #[must_use]
    pub fn moderator(mut self, moderator: Arc<dyn Moderator>) -> Self {
        self.moderators.push(moderator);
        self
    }

    /// Build, loading the configured block lists.
    pub fn build(self) -> Result<Suite, EngineError> {
        let config = self.config.unwrap_or_default();
        let mut blocklist = BlockList::builtin();
        for path in &config.guard.blocklists {
            let text = fs_err::read_to_string(path).map_err(|source| acgs_core::Error::Io {
                path: path.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map_or_else(|| "blocklist".into(), |n| n.to_string_lossy().into_owned());
            blocklist.add_text(&text, &name);
        }
        let templates = check_templates(&config.guard.templates)?;
        Ok(Suite {
            guard: Guard::new(blocklist, self.secrets),
            templates,
            moderators: self.moderators,
            command_env: self.command_env,
            journal: self.journal,
            rate: RateLimiter::new(&config.rate_limits),
            config,
            catalog: self.catalog,
            providers: self.providers,
            ledger: self.ledger,
            audit: self.audit,
            confirm: self.confirm.unwrap_or_else(|| Arc::new(AssumeYes)),
            keys: self.keys,
            runs: self.runs,
            user: self.user,
        })
    }
}

/// The library's front door for single generations.
pub struct Suite {
    pub(crate) config: Config,
    templates: Vec<(String, String)>,
    moderators: Vec<Arc<dyn Moderator>>,
    command_env: BTreeMap<String, String>,
    journal: Option<SettlementJournal>,
    pub(crate) catalog: Catalog,
    pub(crate) providers: BTreeMap<ProviderId, Arc<dyn Provider>>,
    pub(crate) ledger: Option<Arc<dyn Ledger>>,
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
    pub(crate) confirm: Arc<dyn Confirm>,
    guard: Guard,
    pub(crate) rate: RateLimiter,
    keys: BTreeMap<ProviderId, KeyInfo>,
    pub(crate) runs: Option<RunIndex>,
    pub(crate) user: String,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("models", &self.catalog.len())
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// State of a run between stages, for failure handling.
pub(crate) struct Live<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) ledger: Arc<dyn Ledger>,
    pub(crate) reservation: Reservation,
    pub(crate) run: RunState,
    pub(crate) events: EventSink,
    pub(crate) warnings: Vec<String>,
    /// A pipeline step's line to its scheduler.
    pub(crate) answers: Option<crate::pipeline::run::Answers>,
}

impl Live<'_> {
    /// [`delete_uploads`] of this step's provider, its warnings kept with the step's.
    async fn delete_uploads(&mut self, uploads: &[acgs_core::request::RemoteRef]) {
        let warnings = delete_uploads(self.provider.as_ref(), uploads).await;
        self.warnings.extend(warnings);
    }
}

impl Suite {
    /// Start building a suite.
    #[must_use]
    pub fn builder() -> SuiteBuilder {
        SuiteBuilder::default()
    }

    /// The catalogue.
    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The guard (block lists, loaded secrets) this suite inspects text with.
    #[must_use]
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Stages 1–5 and the per-run limit: everything `--dry-run` shows, with no network and no key.
    pub fn plan(&self, request: &GenerationRequest) -> Result<Plan, EngineError> {
        let model = resolve::resolve(&self.catalog, &request.model, &request.tasks)?;
        let stem_named = request.out_stem.is_some();
        let stem = request
            .out_stem
            .clone()
            .unwrap_or_else(|| default_stem(model.task));
        if !acgs_storage::is_plain_stem(&stem) {
            return Err(acgs_storage::StorageError::UnsafeName {
                name: stem.chars().take(64).collect(),
                reason: "--out takes a file stem ([A-Za-z0-9._-], no leading dot), never a path",
            }
            .into());
        }
        let validated = validate::validate(
            &model,
            &request.texts,
            &request.params,
            request.count,
            &self.config,
        )?;
        let inputs = validate::open_inputs(&model, &request.inputs, &request.assumed_inputs)?;
        let texts: InspectedTexts = inspect::inspect(&self.guard, &validated, &self.config)?;
        let (params, system) = template::assemble(&validated.params, &texts, &self.templates)?;
        let (quote, price_override) = price::price(
            &model,
            &params,
            &texts,
            &inputs,
            validated.requests,
            &self.config,
        )?;
        let spend = acgs_guard::budget::check_run(quote.amount, &self.config.cost_management)?;
        let mut verdict = Verdict {
            warnings: texts.warnings.clone(),
            overrides: validated.overrides.clone(),
        };
        verdict.overrides.extend(price_override);
        Ok(Plan {
            run_id: new_run_id(),
            step: MAIN_STEP.to_owned(),
            prompt: texts
                .texts
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            texts: texts
                .texts
                .iter()
                .chain(texts.system.iter())
                .map(|t| (t.flag.clone(), t.text.clone()))
                .collect(),
            model,
            params,
            system,
            requests: validated.requests,
            quote,
            verdict,
            sanitizer_changes: texts.changes,
            spend,
            stem,
            stem_named,
            inputs,
            request: request.clone(),
        })
    }

    /// One generation through the whole guarded path, without progress or interruption.
    pub async fn generate(&self, request: &GenerationRequest) -> Result<RunReport, EngineError> {
        self.generate_with(request, &EventSink::none(), &Interrupt::new())
            .await
    }

    /// One generation through the whole guarded path, reporting progress to `events`. When
    /// `interrupt` fires the job is cancelled (unless `detach`), reservations follow the charge
    /// table, no partial file is left and the run stays resumable.
    pub async fn generate_with(
        &self,
        request: &GenerationRequest,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let plan = match self.plan(request) {
            Ok(plan) => plan,
            Err(e) => {
                self.audit_refusal(request, None, &e);
                return Err(e);
            }
        };
        self.run_plan(&plan, events, interrupt, None).await
    }

    /// Stages 3 (external moderators) and 6–14 for a plan, in a new run folder or in `existing`.
    async fn run_plan(
        &self,
        plan: &Plan,
        events: &EventSink,
        interrupt: &Interrupt,
        existing: Option<RunState>,
    ) -> Result<RunReport, EngineError> {
        let request = &plan.request;
        if let Err(e) = self.moderate(plan).await {
            let e = EngineError::from(e);
            self.audit_refusal(request, Some(plan), &e);
            return Err(e);
        }
        let mut live = match self.authorize(plan, events, existing).await {
            Ok(live) => live,
            Err(e) => {
                self.audit_refusal(request, Some(plan), &e);
                return Err(e);
            }
        };
        self.drive(&mut live, interrupt).await
    }

    /// Stages 7–14 for a step that is paid for; a failure is recorded in the manifest and audited.
    pub(crate) async fn drive(
        &self,
        live: &mut Live<'_>,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let plan = live.plan;
        let request = &plan.request;
        match self.execute(live, request, interrupt).await {
            Ok(report) => Ok(report),
            Err(e) => {
                let status = live
                    .run
                    .step(&plan.step)
                    .map_or(StepStatus::Pending, |s| s.status);
                let outcome = audit::outcome_of(&e, status != StepStatus::Pending);
                let code = e.code();
                let _ = live
                    .run
                    .update_step(&plan.step, |s| {
                        s.status = status_after(status, &e);
                        s.error_code = Some(code.to_owned());
                        s.timings.finished_at = Some(jiff::Timestamp::now());
                    })
                    .await;
                self.audit_event(plan, outcome, Some(code), None, None);
                Err(e)
            }
        }
    }

    /// Stage 3, external part: every configured moderator judges every inspected text.
    pub(crate) async fn moderate(&self, plan: &Plan) -> Result<(), acgs_guard::GuardError> {
        for moderator in &self.moderators {
            for (field, text) in &plan.texts {
                match moderator.moderate(text).await {
                    Ok(ModerationVerdict::Allow) => {}
                    Ok(ModerationVerdict::Block { category, .. }) => {
                        return Err(acgs_guard::GuardError::Moderated {
                            field: field.clone(),
                            moderator: moderator.name().to_owned(),
                            category,
                        });
                    }
                    Err(e) => {
                        return Err(acgs_guard::GuardError::ModerationUnavailable {
                            field: field.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Inspect text a model produced before it feeds a later step: sanitize, credential scan,
    /// block lists and injection heuristics (always on for model text).
    pub fn inspect_model_text(
        &self,
        step: &str,
        text: &str,
    ) -> Result<String, acgs_guard::GuardError> {
        inspect::inspect_model_text(&self.guard, step, text, &self.config)
    }

    /// How long a `held` reservation lives without renewal.
    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.config.ledger.lease_secs.max(1))
    }

    /// The reservation of `plan`'s worst case in run `run_id`, under the limits `cost`.
    pub(crate) fn reserve_request(
        &self,
        run_id: &str,
        plan: &Plan,
        cost: &acgs_core::config::CostManagement,
    ) -> ReserveRequest {
        ReserveRequest {
            run_id: run_id.to_owned(),
            step: plan.step.clone(),
            provider: plan.model.provider,
            model: plan.model.key.clone(),
            user: self.user.clone(),
            amount: plan.quote.amount,
            daily_limit: cost.daily_limit,
            timezone: cost.timezone.clone(),
            lease: self.lease(),
        }
    }

    /// Stage 6 and the run folder: confirmation, reservation, manifest.
    async fn authorize<'p>(
        &self,
        plan: &'p Plan,
        events: &EventSink,
        existing: Option<RunState>,
    ) -> Result<Live<'p>, EngineError> {
        let model = &plan.model;
        let provider = self.provider_for(plan)?;
        let ledger = self
            .ledger
            .clone()
            .ok_or_else(|| EngineError::Unsupported("no spend ledger is configured".into()))?;
        let events = events.for_step(&plan.run_id, &plan.step);
        events.report(Stage::Preparing, "authorizing", None, None);
        let shared = acgs_core::ledger::shared_limits(ledger.as_ref()).await?;
        let cost = &authorize::effective_limits(&self.config.cost_management, &shared);
        let decision =
            authorize::check(plan.quote.amount, &model.key, cost, self.confirm.as_ref())?;
        if decision.warn {
            let message = format!(
                "this run may cost up to ${}, at or above your warn_threshold of ${}",
                plan.quote.amount, cost.warn_threshold
            );
            events.report(Stage::Preparing, "spend_warning", None, Some(message));
        }
        let request = self.preflight_request(plan);
        let warnings = provider.preflight(&request).await?;
        let reservation = ledger
            .reserve(self.reserve_request(&plan.run_id, plan, cost))
            .await?;
        self.alert(ledger.as_ref(), cost, &reservation, plan, &events)
            .await;
        let run = match existing {
            None => self.create_run(plan, &reservation),
            Some(run) => reuse_run(run, plan, &reservation).await,
        };
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                let _ = ledger.release(&reservation.id).await;
                return Err(e);
            }
        };
        Ok(Live {
            plan,
            provider,
            ledger,
            reservation,
            run,
            events,
            warnings,
            answers: None,
        })
    }

    /// Report each `alert_at` fraction of the daily limit this reservation crossed, once a day:
    /// a progress event (the CLI shows a warning), an audit entry and the `alert_command`.
    pub(crate) async fn alert(
        &self,
        ledger: &dyn Ledger,
        cost: &CostManagement,
        reservation: &Reservation,
        plan: &Plan,
        events: &EventSink,
    ) {
        let after = reservation.spent_before.saturating_add(plan.quote.amount);
        for (fraction, threshold) in
            authorize::crossed_alerts(cost, reservation.spent_before, after)
        {
            let key = format!("alert:{}:{fraction}", reservation.day);
            if !ledger
                .set_meta(&key, &plan.run_id, true)
                .await
                .unwrap_or(false)
            {
                continue;
            }
            let percent = fraction / 10;
            let message = format!(
                "spend today reached {percent}% of the daily limit: ${after} counted against ${} (alert at ${threshold})",
                cost.daily_limit
            );
            tracing::warn!(%message, "spend alert");
            events.report(Stage::Preparing, "spend_alert", None, Some(message));
            if let Some(sink) = &self.audit {
                audit::record(
                    sink.as_ref(),
                    AuditEvent {
                        operation: "spend.alert".into(),
                        run_id: Some(plan.run_id.clone()),
                        estimate: Some(after),
                        user: self.user.clone(),
                        outcome: Some(AuditOutcome::Alert),
                        code: Some(format!("budget.alert_{percent}")),
                        ..AuditEvent::default()
                    },
                );
            }
            if !cost.alert_command.is_empty() {
                self.run_alert_command(cost, fraction, after, &reservation.day);
            }
        }
    }

    fn run_alert_command(&self, cost: &CostManagement, fraction: u32, spent: Usd, day: &str) {
        let argv = cost.alert_command.clone();
        let env = acgs_core::command::limited_env(&self.command_env);
        let args = [
            format!("{}.{:03}", fraction / 1000, fraction % 1000),
            spent.to_string(),
            cost.daily_limit.to_string(),
            day.to_owned(),
        ];
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(reason) =
                acgs_core::command::run(&argv, &refs, &env, Duration::from_secs(30), 8 * 1024)
            {
                tracing::warn!(%reason, "alert_command failed");
            }
        });
    }

    /// The provider of `plan`'s model (a missing one is a missing key).
    pub(crate) fn provider_for(&self, plan: &Plan) -> Result<Arc<dyn Provider>, EngineError> {
        let id = plan.model.provider;
        Ok(self
            .providers
            .get(&id)
            .cloned()
            .ok_or(acgs_core::Error::MissingKey {
                provider: id.as_str(),
                variables: acgs_core::credentials::key_variables(id),
            })?)
    }

    pub(crate) fn preflight_request(&self, plan: &Plan) -> Request {
        Request {
            run_id: plan.run_id.clone(),
            step: plan.step.clone(),
            model: Arc::clone(&plan.model),
            params: plan.params.clone(),
            system: plan.system.clone(),
        }
    }

    fn create_run(&self, plan: &Plan, reservation: &Reservation) -> Result<RunState, EngineError> {
        let root = OutputRoot::open(&self.config.output_dir)?;
        let dir = root.create_run(&plan.run_id)?;
        if let Some(runs) = &self.runs {
            runs.append(&plan.run_id, dir.path())?;
        }
        let mut manifest = Manifest::new(RunKind::Single, &plan.run_id);
        manifest.steps.push(step_record(plan, reservation));
        manifest.save(&dir)?;
        Ok(RunState::new(dir, manifest))
    }

    /// Stages 7–14.
    async fn execute(
        &self,
        live: &mut Live<'_>,
        request: &GenerationRequest,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let plan = live.plan;
        let lease = self.lease();
        let keeper = LeaseKeeper::start(
            Arc::clone(&live.ledger),
            live.reservation.id.clone(),
            live.reservation.owner.clone(),
            lease,
        );
        let permit = match rate_limit::acquire(&self.rate, plan.model.provider).await {
            Ok(permit) => permit,
            Err(e) => {
                let _ = live.ledger.release(&live.reservation.id).await;
                return Err(e.into());
            }
        };
        if let Some(signal) = interrupt.signal() {
            let _ = live.ledger.release(&live.reservation.id).await;
            return Err(EngineError::Interrupted {
                signal,
                note: "nothing was sent and the reservation was released".into(),
            });
        }
        let mut wire = self.preflight_request(plan);
        let uploads = match upload::upload(
            live.provider.as_ref(),
            &plan.model,
            plan.inputs.files.clone(),
            &mut wire.params,
        )
        .await
        {
            Ok(uploads) => uploads,
            Err(e) => {
                self.fail(live, &e).await;
                return Err(e.into());
            }
        };
        let authorized =
            Authorized::by_engine(wire, plan.verdict.clone(), live.reservation.id.clone());
        live.events
            .report(Stage::Submitting, "submitting", None, None);
        let submitted = match submit::submit(
            live.provider.as_ref(),
            &authorized,
            live.ledger.as_ref(),
            &live.reservation.id,
            &live.run,
            &plan.step,
        )
        .await
        {
            Ok(s) => s,
            Err(EngineError::Provider(e)) => {
                self.fail(live, &e).await;
                live.delete_uploads(&uploads).await;
                return Err(e.into());
            }
            Err(e) => {
                live.delete_uploads(&uploads).await;
                return Err(e);
            }
        };
        drop(keeper);
        let output = match submitted {
            Submitted::Done(output) => output,
            Submitted::Pending(job) => match self.wait_for(live, &job, request, interrupt).await {
                Ok(output) => output,
                // A job past its deadline or interrupted may still read its inputs.
                Err(e @ (EngineError::Deadline { .. } | EngineError::Interrupted { .. })) => {
                    return Err(e);
                }
                Err(e) => {
                    live.delete_uploads(&uploads).await;
                    return Err(e);
                }
            },
        };
        if output.saturated {
            self.rate.lower_in_flight(plan.model.provider);
        }
        drop(permit);
        let provider = Arc::clone(&live.provider);
        let (finished, deleted) = tokio::join!(
            self.finish(live, output),
            delete_uploads(provider.as_ref(), &uploads)
        );
        finished.map(|mut report| {
            report.warnings.extend(deleted);
            report
        })
    }

    async fn wait_for(
        &self,
        live: &mut Live<'_>,
        job: &JobHandle,
        request: &GenerationRequest,
        interrupt: &Interrupt,
    ) -> Result<Output, EngineError> {
        let deadline = Duration::from_secs(
            request
                .timeout_secs
                .unwrap_or(live.plan.model.deadline_secs),
        );
        match wait::wait(
            live.provider.as_ref(),
            job,
            &live.events,
            interrupt.token(),
            deadline,
        )
        .await
        {
            Waited::Output(output) => Ok(output),
            Waited::Failed(error) => {
                self.fail(live, &error).await;
                Err(error.into())
            }
            Waited::Deadline => Err(EngineError::Deadline {
                seconds: deadline.as_secs(),
                run_id: live.plan.run_id.clone(),
            }),
            Waited::Interrupted => {
                Err(self.interrupted(live, job, request.detach, interrupt).await)
            }
        }
    }

    async fn interrupted(
        &self,
        live: &mut Live<'_>,
        job: &JobHandle,
        detach: bool,
        interrupt: &Interrupt,
    ) -> EngineError {
        let signal = interrupt.signal().unwrap_or(Signal::Interrupt);
        let run_id = &live.plan.run_id;
        if detach {
            return EngineError::Interrupted {
                signal,
                note: format!("the job keeps running; finish it with `acgs resume {run_id}`"),
            };
        }
        let note = match live.provider.cancel(job).await {
            Ok(CancelOutcome::Cancelled) => {
                let _ = live.ledger.release(&live.reservation.id).await;
                let _ = live
                    .run
                    .update_step(&live.plan.step, |s| s.status = StepStatus::Cancelled)
                    .await;
                "the job was cancelled before it ran and nothing is charged".to_owned()
            }
            Ok(outcome) => format!(
                "a cancel was requested ({outcome:?}); its cost counts at the estimate until `acgs resume {run_id}` settles it"
            ),
            Err(_) => {
                format!("the cancel request failed; `acgs resume {run_id}` will settle the job")
            }
        };
        EngineError::Interrupted { signal, note }
    }

    /// Apply the charge table to a failure (and lower the in-flight cap when the provider says it is
    /// saturated); trouble settling is logged (the reservation stays counted).
    async fn fail(&self, live: &Live<'_>, error: &acgs_core::provider::ProviderError) {
        if error.class == acgs_core::provider::FailureClass::Saturated {
            self.rate.lower_in_flight(live.plan.model.provider);
        }
        self.charge(live, error.charge).await;
    }

    async fn charge(&self, live: &Live<'_>, charge: acgs_core::provider::Charge) {
        if let Err(e) = settle::charge_failure(
            live.ledger.as_ref(),
            &live.reservation.id,
            charge,
            live.plan.quote.amount,
        )
        .await
        {
            tracing::error!(
                code = e.code(),
                "could not settle a failed request; its reservation stays counted"
            );
            let action = match charge {
                acgs_core::provider::Charge::Release => PendingAction::Release,
                acgs_core::provider::Charge::Estimate => PendingAction::Settle {
                    actual: live.plan.quote.amount,
                },
            };
            self.journal_pending(&live.reservation.id, action);
        }
    }

    /// Keep a settlement the ledger did not take for the next command to retry.
    fn journal_pending(&self, id: &acgs_core::ledger::ReservationId, action: PendingAction) {
        if let Some(journal) = &self.journal {
            let entry = PendingEntry {
                reservation_id: id.clone(),
                action,
            };
            if let Err(e) = journal.record(&entry) {
                tracing::error!(
                    code = e.code(),
                    "the pending settlement could not be journaled"
                );
            }
        }
    }

    /// Write off the `submitted` reservation of `run_id`/`step` at its estimate (`acgs spend
    /// abandon`), audited as an override.
    pub async fn abandon(
        &self,
        run_id: &str,
        step: &str,
    ) -> Result<acgs_core::ledger::ReservationRecord, EngineError> {
        let ledger = self
            .ledger
            .clone()
            .ok_or_else(|| EngineError::Unsupported("no spend ledger is configured".into()))?;
        let record = ledger
            .reservations(None)
            .await?
            .into_iter()
            .find(|r| {
                r.run_id == run_id
                    && r.step == step
                    && r.state == acgs_core::ledger::ReservationState::Submitted
            })
            .ok_or_else(|| EngineError::InvalidParam {
                name: format!("{run_id}/{step}"),
                reason: "has no submitted reservation to write off".into(),
            })?;
        let settlement = ledger.abandon(&record.id).await?;
        if let Some(sink) = &self.audit {
            audit::record(
                sink.as_ref(),
                AuditEvent {
                    operation: "spend.abandon".into(),
                    run_id: Some(run_id.to_owned()),
                    step: Some(step.to_owned()),
                    model: Some(record.model.clone()),
                    estimate: Some(settlement.estimate),
                    actual: Some(settlement.actual),
                    user: self.user.clone(),
                    outcome: Some(AuditOutcome::Override),
                    code: Some("spend.abandon".into()),
                    ..AuditEvent::default()
                },
            );
        }
        Ok(record)
    }

    /// Stages 11–14 for a completed job.
    async fn finish(&self, live: &mut Live<'_>, output: Output) -> Result<RunReport, EngineError> {
        let plan = live.plan;
        let recorded = live.run.step(&plan.step).and_then(|s| s.actual);
        let (request_id, usage) = (output.request_id.clone(), output.usage.clone());
        let settling = async {
            match recorded {
                Some(actual) => (actual, None),
                None => self.settle_once(live, &usage, request_id.as_ref()).await,
            }
        };
        // Settling and storing do not wait for each other.
        let ((actual, overrun), stored) = tokio::join!(settling, self.store_outputs(live, output));
        live.warnings.extend(overrun);
        // Written with the outputs; a resume before that settles again, which the ledger answers
        // as already settled.
        live.run.note_step(&plan.step, |s| s.actual = Some(actual));
        let (stored, dropped) = stored?;
        live.warnings.extend(dropped);
        live.run
            .finish_step(&plan.step, |s| {
                s.status = StepStatus::Done;
                s.outputs = stored.iter().map(output_record).collect();
                s.timings.finished_at = Some(jiff::Timestamp::now());
            })
            .await?;
        live.events.report(Stage::Done, "done", None, None);
        if let Some(sink) = &self.audit {
            let entries = self.audit_entries(
                plan,
                AuditOutcome::Success,
                None,
                Some(actual),
                request_id.clone(),
            );
            live.warnings.extend(live.run.audit(sink, entries));
        }
        Ok(RunReport {
            run_id: plan.run_id.clone(),
            folder: live.run.dir.path().to_owned(),
            model: plan.model.key.clone(),
            outputs: stored,
            estimate: plan.quote.amount,
            actual,
            request_id,
            warnings: std::mem::take(&mut live.warnings),
        })
    }

    /// Stages 11 and 13: the output checked, then stored; returns the files and warnings about
    /// what was dropped.
    async fn store_outputs(
        &self,
        live: &Live<'_>,
        output: Output,
    ) -> Result<(Vec<StoredFile>, Vec<String>), EngineError> {
        let plan = live.plan;
        let (output, dropped) = check_output::check(output)?;
        if let Some(answers) = &live.answers
            && let Some(early) =
                crate::pipeline::plan::Finished::from_text_answer(&output.artifacts)
        {
            let _ = answers.send((plan.step.clone(), early));
        }
        live.events.report(Stage::Storing, "storing", None, None);
        let stems = store::stems_for(&plan.stem, &output.artifacts, plan.stem_named);
        let stored = store::store(
            live.provider.as_ref(),
            &output.artifacts,
            &live.run.dir,
            plan.model.task,
            &stems,
        )
        .await?;
        Ok((stored, dropped))
    }

    /// Stage 12: settle at the actual cost as soon as the provider reports completion; returns
    /// the actual cost and a warning when it exceeded the estimate.
    async fn settle_once(
        &self,
        live: &Live<'_>,
        usage: &Usage,
        request_id: Option<&String>,
    ) -> (Usd, Option<String>) {
        let plan = live.plan;
        let actual = settle::actual_cost(&plan.model, &plan.params, usage, plan.quote.amount);
        let settlement = settle::settle(live.ledger.as_ref(), &live.reservation.id, actual).await;
        let mut overrun = None;
        match &settlement {
            Ok(s) => {
                if let Some(over) = s.overrun() {
                    overrun = Some(format!("the actual cost exceeded the estimate by ${over}"));
                    self.audit_event(
                        plan,
                        AuditOutcome::Override,
                        Some("budget.overrun"),
                        Some(s.actual),
                        request_id.cloned(),
                    );
                }
            }
            Err(acgs_core::ledger::LedgerError::InvalidTransition { from, .. })
                if from == "settled" =>
            {
                tracing::debug!("the reservation was settled before this process stopped");
            }
            Err(e) => {
                tracing::error!(
                    code = e.code(),
                    "settling failed; the reservation stays counted"
                );
                self.journal_pending(&live.reservation.id, PendingAction::Settle { actual });
            }
        }
        (actual, overrun)
    }

    pub(crate) fn audit_refusal(
        &self,
        request: &GenerationRequest,
        plan: Option<&Plan>,
        error: &EngineError,
    ) {
        let Some(sink) = &self.audit else { return };
        let model = plan
            .map(|p| Arc::clone(&p.model))
            .or_else(|| self.catalog.resolve(&request.model).ok());
        let event = AuditEvent {
            operation: "generate".into(),
            run_id: plan.map(|p| p.run_id.clone()),
            provider: model.as_ref().map(|m| m.provider),
            model: model.as_ref().map(|m| m.key.clone()),
            prompt: request.texts.get("prompt").cloned(),
            estimate: plan.map(|p| p.quote.amount),
            user: self.user.clone(),
            outcome: Some(audit::outcome_of(error, false)),
            code: Some(error.code().to_owned()),
            ..AuditEvent::default()
        };
        audit::record(sink.as_ref(), event);
    }

    pub(crate) fn audit_event(
        &self,
        plan: &Plan,
        outcome: AuditOutcome,
        code: Option<&str>,
        actual: Option<Usd>,
        request_id: Option<String>,
    ) -> Option<String> {
        let sink = self.audit.as_ref()?;
        let entries = self.audit_entries(plan, outcome, code, actual, request_id);
        audit::record_all(sink.as_ref(), entries)
    }

    /// The audit entries of `plan`'s outcome: one, and for a success that needed overrides, an
    /// override entry naming them.
    fn audit_entries(
        &self,
        plan: &Plan,
        outcome: AuditOutcome,
        code: Option<&str>,
        actual: Option<Usd>,
        request_id: Option<String>,
    ) -> Vec<AuditEvent> {
        let key = self
            .keys
            .get(&plan.model.provider)
            .cloned()
            .unwrap_or_default();
        let mut overrides_audited = None;
        if outcome == AuditOutcome::Success && !plan.verdict.overrides.is_empty() {
            overrides_audited = Some(plan.verdict.overrides.join(","));
        }
        let event = AuditEvent {
            operation: "generate".into(),
            run_id: Some(plan.run_id.clone()),
            step: Some(plan.step.clone()),
            provider: Some(plan.model.provider),
            model: Some(plan.model.key.clone()),
            request_id,
            prompt: Some(plan.prompt.clone()),
            estimate: Some(plan.quote.amount),
            actual,
            key_fingerprint: Some(key.fingerprint.clone()).filter(|f| !f.is_empty()),
            key_source: Some(key.source.clone()).filter(|s| !s.is_empty()),
            user: self.user.clone(),
            outcome: Some(outcome),
            code: code.map(str::to_owned),
        };
        let mut entries = vec![event.clone()];
        if let Some(overrides) = overrides_audited {
            entries.push(AuditEvent {
                outcome: Some(AuditOutcome::Override),
                code: Some(overrides),
                ..event
            });
        }
        entries
    }
}

/// The step of an existing run folder, reset for another attempt paid by `reservation`.
async fn reuse_run(
    run: RunState,
    plan: &Plan,
    reservation: &Reservation,
) -> Result<RunState, EngineError> {
    run.update_step(&plan.step, |s| {
        s.status = StepStatus::Pending;
        s.params = plan.params.clone();
        s.estimate = Some(plan.quote.amount);
        s.reservation_id = Some(reservation.id.clone());
        s.job = None;
        s.actual = None;
        s.outputs.clear();
        s.error_code = None;
        s.timings = Timings {
            started_at: Some(jiff::Timestamp::now()),
            ..Timings::default()
        };
    })
    .await?;
    Ok(run)
}

/// Templates from `[guard] templates`: each must parse and fill only its own flag's slot.
fn check_templates(
    templates: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, EngineError> {
    for (flag, template) in templates {
        let slots = acgs_guard::template::slots(template)?;
        if let Some(other) = slots.iter().find(|s| **s != flag.as_str()) {
            return Err(acgs_guard::GuardError::Template(format!(
                "the `{flag}` template may only use the {{{{ {flag} }}}} slot, not `{other}`"
            ))
            .into());
        }
    }
    Ok(templates
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect())
}

/// Delete what the upload stage left on the provider for one request (Gemini files) once the
/// provider has answered it; a failure is a warning (such files expire on their own).
async fn delete_uploads(
    provider: &dyn Provider,
    uploads: &[acgs_core::request::RemoteRef],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in uploads.iter().filter_map(|r| r.delete_after_run.as_deref()) {
        if let Err(e) = provider.delete_upload(name).await {
            warnings.push(format!(
                "an uploaded input could not be deleted from the provider ({e}); it expires on its own"
            ));
        }
    }
    warnings
}

/// A step's status after a failed generation: a submitted job that may still run stays
/// `submitted` (resumable) after a deadline or an interrupt; otherwise failed or cancelled.
fn status_after(current: StepStatus, error: &EngineError) -> StepStatus {
    match (current, error) {
        (StepStatus::Submitted, EngineError::Deadline { .. } | EngineError::Interrupted { .. }) => {
            StepStatus::Submitted
        }
        (StepStatus::Cancelled, _) | (_, EngineError::Interrupted { .. }) => StepStatus::Cancelled,
        _ => StepStatus::Failed,
    }
}

fn default_stem(task: TaskKind) -> String {
    if task == TaskKind::SpeechToText {
        return "transcript".into();
    }
    match task.output() {
        acgs_core::MediaKind::Image => "image",
        acgs_core::MediaKind::Video => "video",
        acgs_core::MediaKind::Audio => "audio",
        acgs_core::MediaKind::Text => "text",
    }
    .into()
}

/// A new manifest entry for `plan`'s step, paid for by `reservation`.
pub(crate) fn step_record(plan: &Plan, reservation: &Reservation) -> StepRecord {
    StepRecord {
        params: plan.params.clone(),
        estimate: Some(plan.quote.amount),
        reservation_id: Some(reservation.id.clone()),
        timings: Timings {
            started_at: Some(jiff::Timestamp::now()),
            ..Timings::default()
        },
        request: serde_json::to_value(&plan.request).ok(),
        ..StepRecord::pending(&plan.step, &plan.model.key, &plan.model.endpoint)
    }
}

fn output_record(file: &StoredFile) -> OutputRecord {
    OutputRecord {
        path: file.name.clone(),
        sha256: file.sha256.clone(),
        bytes: file.bytes,
        content_type: file.content_type.mime().to_owned(),
    }
}
