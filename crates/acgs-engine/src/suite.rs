//! [`Suite`]: the library's front door — the services and their builder, and the entrances
//! (one generation, a pipeline, a resume) that turn their input into plans for the driver.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use acgs_core::audit::AuditSink;
use acgs_core::catalog::Catalog;
use acgs_core::config::Config;
use acgs_core::ledger::{Ledger, Reservation, ReservationRecord, ReservationState};
use acgs_core::moderation::Moderator;
use acgs_core::provider::EventSink;
use acgs_core::redact::Redactor;
use acgs_core::{Provider, ProviderId};
use acgs_guard::rate::RateLimiter;
use acgs_guard::{BlockList, Guard};
use acgs_storage::journal::SettlementJournal;
use acgs_storage::manifest::{Manifest, RecordKey, RunKind};
use acgs_storage::runs::RunIndex;

use crate::driver::{self, Attempt, Entry, Unobserved};
use crate::error::EngineError;
use crate::interrupt::Interrupt;
use crate::pipeline::{self, Pipeline};
use crate::plan::{MAIN_STEP, Plan};
use crate::report::{PipelineEstimate, PipelineReport, Resumed, RunReport};
use crate::request::GenerationRequest;
use crate::services::{AlertHook, Caller, KeyInfo, Services};
use crate::stages::{audit, inspect};

/// The largest block-list file read.
const MAX_BLOCKLIST_BYTES: u64 = 16 * 1024 * 1024;

/// Builds a [`Suite`].
#[derive(Default)]
pub struct SuiteBuilder {
    config: Option<Config>,
    catalog: Catalog,
    providers: BTreeMap<ProviderId, Arc<dyn Provider>>,
    ledger: Option<Arc<dyn Ledger>>,
    audit: Option<Arc<dyn AuditSink>>,
    secrets: Redactor,
    keys: BTreeMap<ProviderId, KeyInfo>,
    runs: Option<RunIndex>,
    caller: Option<Caller>,
    moderators: Vec<Arc<dyn Moderator>>,
    alert_hook: Option<Arc<dyn AlertHook>>,
    journal: Option<SettlementJournal>,
    record_key: Option<RecordKey>,
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

    /// Who the suite acts for (default: library use by the unnamed user, every spend
    /// confirmed); [`Suite::for_caller`] gives the same suite acting for another.
    #[must_use]
    pub fn caller(mut self, caller: Caller) -> Self {
        self.caller = Some(caller);
        self
    }

    /// Told of every spend alert, besides the warning event and the audit entry.
    #[must_use]
    pub fn alert_hook(mut self, hook: Arc<dyn AlertHook>) -> Self {
        self.alert_hook = Some(hook);
        self
    }

    /// Where settlements that could not reach the ledger are kept for the next command.
    #[must_use]
    pub fn journal(mut self, journal: SettlementJournal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The key that seals the step records of run folders, so that `acgs resume` can tell a
    /// record acgs wrote from one edited in the folder (without one, resume trusts no record's
    /// status).
    #[must_use]
    pub fn record_key(mut self, key: RecordKey) -> Self {
        self.record_key = Some(key);
        self
    }

    /// An external moderator, consulted for every text before money is reserved (fails closed).
    #[must_use]
    pub fn moderator(mut self, moderator: Arc<dyn Moderator>) -> Self {
        self.moderators.push(moderator);
        self
    }

    /// Build, loading the configured block lists and checking the configured templates.
    pub fn build(self) -> Result<Suite, EngineError> {
        let config = self.config.unwrap_or_default();
        let mut blocklist = BlockList::builtin();
        for path in &config.guard.blocklists {
            let text = acgs_core::files::read_regular_text(path, MAX_BLOCKLIST_BYTES)
                .map_err(|e| acgs_core::files::unreadable(path, &e))?;
            let name = path
                .file_name()
                .map_or_else(|| "blocklist".into(), |n| n.to_string_lossy().into_owned());
            blocklist.add_text(&text, &name);
        }
        let templates = check_templates(&config.guard.templates)?;
        let services = Services {
            guard: Arc::new(Guard::new(blocklist, self.secrets)),
            templates,
            moderators: self.moderators,
            alert_hook: self.alert_hook,
            journal: self.journal,
            rate: Arc::new(RateLimiter::new(&config.rate_limits)),
            config: Arc::new(config),
            catalog: Arc::new(self.catalog),
            providers: self.providers,
            keys: self.keys,
            ledger: self.ledger,
            audit: self.audit,
            runs: self.runs,
            record_key: self.record_key,
            caller: self.caller.unwrap_or_else(|| Caller::new("")),
        };
        Ok(Suite {
            services: Arc::new(services),
        })
    }
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

/// The library's front door: one generation, a pipeline, or a resume, each through the one
/// guarded path. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Suite {
    services: Arc<Services>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("models", &self.services.catalog.len())
            .field(
                "providers",
                &self.services.providers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Suite {
    /// Start building a suite.
    #[must_use]
    pub fn builder() -> SuiteBuilder {
        SuiteBuilder::default()
    }

    /// The same suite — providers, ledger, audit log, rate limits, all shared — acting for
    /// `caller`: each agent session or service user gets one.
    #[must_use]
    pub fn for_caller(&self, caller: Caller) -> Self {
        let mut services = Services::clone(&self.services);
        services.caller = caller;
        Self {
            services: Arc::new(services),
        }
    }

    /// Who this suite acts for.
    #[must_use]
    pub fn caller(&self) -> &Caller {
        &self.services.caller
    }

    /// The catalogue.
    #[must_use]
    pub fn catalog(&self) -> &Catalog {
        &self.services.catalog
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.services.config
    }

    /// The guard (block lists, loaded secrets) this suite inspects text with.
    #[must_use]
    pub fn guard(&self) -> &Guard {
        &self.services.guard
    }

    /// Stages 1–5 and the per-run limit: everything `--dry-run` shows, with no network and no key.
    pub fn plan(&self, request: &GenerationRequest) -> Result<Plan, EngineError> {
        let run_id = acgs_storage::runs::new_run_id();
        let mut plan = driver::prepare(&self.services, request, &run_id, MAIN_STEP)?;
        let cost = &self.services.config.cost_management;
        plan.spend = Some(acgs_guard::budget::check_run(plan.quote.amount, cost)?);
        Ok(plan)
    }

    /// One generation through the whole guarded path, without progress or interruption.
    pub async fn generate(&self, request: &GenerationRequest) -> Result<RunReport, EngineError> {
        self.generate_with(request, &EventSink::none(), &Interrupt::new())
            .await
    }

    /// One generation through the whole guarded path — a run of one step — reporting progress
    /// to `events`. When `interrupt` fires the job is cancelled (unless `detach`), reservations
    /// follow the charge table, no partial file is left and the run stays resumable.
    pub async fn generate_with(
        &self,
        request: &GenerationRequest,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let run_id = acgs_storage::runs::new_run_id();
        self.generate_as(&run_id, request, events, interrupt).await
    }

    /// [`Suite::generate_with`] as run `run_id`, which the caller chose beforehand so that
    /// whoever takes its job over can [`Suite::resume`] it (the service's workers do); the id
    /// must be a plain name no run has yet.
    pub async fn generate_as(
        &self,
        run_id: &str,
        request: &GenerationRequest,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let services = self.services.as_ref();
        let run_id = run_id.to_owned();
        let plan = driver::prepare(services, request, &run_id, MAIN_STEP).inspect_err(|e| {
            let entry = audit::refusal(services, request, None, MAIN_STEP, e);
            audit::record(services, vec![entry]);
        })?;
        let plans = [plan];
        let manifest = |reserved: &[Reservation]| {
            let mut manifest = Manifest::new(RunKind::Single, &run_id);
            manifest.steps = vec![driver::step_record(&plans[0], &reserved[0])];
            manifest
        };
        let (what, cost) = (plans[0].model.key.clone(), &services.config.cost_management);
        let run_events = events.for_step(&run_id, MAIN_STEP);
        let (run, mut admitted) = driver::start(
            services,
            (&run_id, &what),
            &plans,
            cost,
            (manifest, Vec::new()),
            &run_events,
        )
        .await?;
        let [plan] = plans;
        let attempt = Attempt {
            services,
            plan: &plan,
            run,
            events: run_events,
            observer: &Unobserved,
            warnings: admitted.warnings.remove(MAIN_STEP).unwrap_or_default(),
        };
        let reservation = admitted.reservations.remove(0);
        attempt.run(Entry::Send(reservation), interrupt).await
    }

    /// Inspect text a model produced before it feeds a later step: sanitize, credential scan,
    /// block lists and injection heuristics (always on for model text).
    pub fn inspect_model_text(
        &self,
        step: &str,
        text: &str,
    ) -> Result<String, acgs_guard::GuardError> {
        let services = &self.services;
        inspect::inspect_model_text(&services.guard, step, text, &services.config)
    }

    /// Read and check a pipeline file (at most 1 MiB, a regular file).
    pub fn load_pipeline(&self, path: &Path) -> Result<Pipeline, EngineError> {
        pipeline::estimate::load(&self.services, path)
    }

    /// Every step of `pipeline` priced at its worst case with `inputs`, and the total against
    /// the run's limits. Nothing is reserved or sent.
    pub fn estimate_pipeline(
        &self,
        pipeline: &Pipeline,
        inputs: &BTreeMap<String, String>,
    ) -> Result<PipelineEstimate, EngineError> {
        let run_id = acgs_storage::runs::new_run_id();
        pipeline::estimate::estimate(&self.services, pipeline, inputs, &run_id)
    }

    /// Run a checked pipeline with `inputs`: priced, admitted whole (one confirmation, every
    /// step's reservation or none), then each step through the guarded path as soon as what it
    /// references is ready. `detach` leaves submitted jobs running on an interrupt.
    pub async fn run_pipeline(
        &self,
        pipeline: &Pipeline,
        inputs: &BTreeMap<String, String>,
        detach: bool,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<PipelineReport, EngineError> {
        let run_id = acgs_storage::runs::new_run_id();
        self.run_pipeline_as(&run_id, pipeline, inputs, (detach, events), interrupt)
            .await
    }

    /// [`Suite::run_pipeline`] as run `run_id`, which the caller chose beforehand so that
    /// whoever takes its job over can [`Suite::resume`] it; the id must be a plain name no run
    /// has yet.
    pub async fn run_pipeline_as(
        &self,
        run_id: &str,
        pipeline: &Pipeline,
        inputs: &BTreeMap<String, String>,
        (detach, events): (bool, &EventSink),
        interrupt: &Interrupt,
    ) -> Result<PipelineReport, EngineError> {
        let pipeline = Arc::new(pipeline.clone());
        let target = (&pipeline, run_id.to_owned());
        pipeline::run(&self.services, target, inputs, detach, events, interrupt).await
    }

    /// Finish run `run_id` where it stopped (`acgs resume`): the ledger decides what each step
    /// needs; a step whose sending was interrupted is sent again only with `resubmit`.
    pub async fn resume(
        &self,
        run_id: &str,
        resubmit: bool,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<Resumed, EngineError> {
        crate::resume::resume(&self.services, run_id, resubmit, events, interrupt).await
    }

    /// Audit a call this suite's entrance refused before it became a request (`operation`
    /// names it, e.g. `mcp.generate`; `code` is the refusal's stable code): refusals of
    /// requests are audited by the path itself.
    pub fn audit_refusal(&self, operation: &str, code: &str) {
        let services = self.services.as_ref();
        let entry = audit::refused_call(services, operation, code);
        audit::record(services, vec![entry]);
    }

    /// Audit a change this suite's caller made outside the guarded path — an admin's change of
    /// a user, a token or a limit (`operation`, e.g. `serve.admin.limit`) — with what it changed
    /// (`subject`, kept in the entry's `step`).
    pub fn audit_change(&self, operation: &str, subject: &str) {
        let services = self.services.as_ref();
        let entry = audit::change(services, operation, subject);
        audit::record(services, vec![entry]);
    }

    /// Where run `run_id` is: each step as its manifest and the ledger describe it. Nothing is
    /// changed.
    pub async fn run_status(&self, run_id: &str) -> Result<crate::RunStatus, EngineError> {
        crate::status::status(&self.services, run_id).await
    }

    /// The runs recorded in the runs index that `filter` lets through, newest first.
    pub fn runs_made(
        &self,
        filter: &crate::RunFilter,
    ) -> Result<Vec<crate::RunSummary>, EngineError> {
        crate::history::list(&self.services, filter)
    }

    /// What this suite's caller has spent today and in each of its scopes, against the limits
    /// in force.
    pub async fn spend_now(&self) -> Result<crate::SpendNow, EngineError> {
        crate::status::spend(&self.services).await
    }

    /// Write off the `submitted` reservation of `run_id`/`step` at its estimate (`acgs spend
    /// abandon`), audited as an override.
    pub async fn abandon(
        &self,
        run_id: &str,
        step: &str,
    ) -> Result<ReservationRecord, EngineError> {
        let services = self.services.as_ref();
        let ledger = services.ledger()?;
        let record = ledger
            .reservations(None)
            .await?
            .into_iter()
            .find(|r| {
                r.run_id == run_id && r.step == step && r.state == ReservationState::Submitted
            })
            .ok_or_else(|| EngineError::InvalidParam {
                name: format!("{run_id}/{step}"),
                reason: "has no submitted reservation to write off".into(),
            })?;
        let settlement = ledger.abandon(&record.id).await?;
        let entry = audit::write_off(services, &record, Some(settlement.actual), "spend.abandon");
        audit::record(services, vec![entry]);
        Ok(record)
    }
}
