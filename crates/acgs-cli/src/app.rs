//! The context every command starts from: environment, configuration, catalogue, credentials,
//! the redactor and the terminal. Providers, the ledger and the audit log are opened only by the
//! commands that need them, so `models` and `--dry-run` need no key, no network and no state.

use std::sync::Arc;

use acgs_core::audit::Origin;
use acgs_core::catalog::Catalog;
use acgs_core::config::{Config, ConfigSources, LoadedConfig};
use acgs_core::env::ProcessEnv;
use acgs_core::{Provider, ProviderId};
use acgs_credentials::{CredentialSources, Credentials};
use acgs_engine::{Caller, KeyInfo, Suite, SuiteBuilder};
use acgs_http::{HttpClient, NetworkPolicy};
use acgs_storage::audit::{AuditKey, AuditLog};
use acgs_storage::manifest::RecordKey;
use acgs_storage::runs::RunIndex;
use secrecy::ExposeSecret as _;

use crate::cli::Cli;
use crate::confirm::TerminalConfirm;
use crate::failure::{CliError, Failure};
use crate::ui::Ui;

/// The loaded context.
pub(crate) struct App {
    /// Environment snapshot.
    pub env: ProcessEnv,
    /// Configuration of the selected profile.
    pub loaded: LoadedConfig,
    /// Built-in catalogues plus user entries.
    pub catalog: Catalog,
    /// Keys found (key_command not run yet).
    pub credentials: Credentials,
    /// The terminal.
    pub ui: Ui,
    /// `--yes`.
    pub yes: bool,
    /// Fired by Ctrl-C and SIGTERM; prompts race it.
    pub interrupt: acgs_engine::Interrupt,
    /// The one HTTP client, built when a provider first needs it (loading the TLS roots once).
    http: std::sync::OnceLock<HttpClient>,
    /// The spend ledger, opened once per process.
    ledger: tokio::sync::OnceCell<Arc<dyn acgs_core::ledger::Ledger>>,
    /// The per-install secret, read once per process.
    audit_key: std::sync::OnceLock<Option<AuditKey>>,
    /// Where fal calls back and who waits for it (`acgs serve --public-url`), set before the
    /// providers are built.
    pub fal_webhook: std::sync::OnceLock<(url::Url, acgs_core::callback::JobWakeups)>,
}

/// The built-in catalogues of every provider crate.
pub(crate) fn builtin_catalog() -> Result<Catalog, Failure> {
    Ok(parse_builtin_catalog()?)
}

fn parse_builtin_catalog() -> Result<Catalog, acgs_core::Error> {
    let mut catalog = acgs_providers_fal::catalog()?;
    catalog.extend(acgs_providers_gemini::catalog()?);
    catalog.extend(acgs_providers_elevenlabs::catalog()?);
    catalog.extend(acgs_providers_local::catalog()?);
    Ok(catalog)
}

/// The built-in catalogues, parsed on a spare thread from the start of the process: parsing
/// takes a few milliseconds, in which the command line and the configuration are read.
pub(crate) struct BuiltinCatalog(
    Option<std::thread::JoinHandle<Result<Catalog, acgs_core::Error>>>,
);

impl BuiltinCatalog {
    /// Start parsing (on this thread later, in [`BuiltinCatalog::get`], if no thread starts).
    #[must_use]
    pub(crate) fn parse_in_background() -> Self {
        let parsing = std::thread::Builder::new()
            .name("acgs-catalog".into())
            .spawn(parse_builtin_catalog);
        Self(parsing.ok())
    }

    /// The parsed catalogues.
    pub(crate) fn get(self) -> Result<Catalog, Failure> {
        match self.0.map(std::thread::JoinHandle::join) {
            Some(Ok(parsed)) => Ok(parsed?),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => builtin_catalog(),
        }
    }
}

/// A project's `.env` that shadows a key of the user's own: accepted with
/// `allow_project_env`, refused when `strict`, otherwise a loud warning on every command.
fn check_project_env(
    credentials: &Credentials,
    config: &Config,
    strict: bool,
    ui: &Ui,
) -> Result<(), Failure> {
    if config.allow_project_env {
        return Ok(());
    }
    for (provider, project, trusted) in credentials.project_shadowing() {
        let message = format!(
            "{project} holds a {provider} key that shadows yours from {trusted}: a project folder could send your prompts and bills under its key; remove it from the .env, or set allow_project_env = true in your user config"
        );
        if strict {
            return Err(CliError::Usage(message).into());
        }
        ui.warning(&message);
    }
    Ok(())
}

impl App {
    /// Load configuration, catalogue and credentials, and teach the redactor every known secret.
    pub(crate) fn load(
        cli: &Cli,
        env: ProcessEnv,
        ui: Ui,
        builtin: BuiltinCatalog,
        interrupt: &acgs_engine::Interrupt,
    ) -> Result<Self, Failure> {
        let sources = ConfigSources::standard(&env, cli.config.clone(), cli.profile.as_deref())?;
        let mut loaded = Config::load(&sources)?;
        loaded.config.output_dir = env.cwd.join(&loaded.config.output_dir);
        let mut catalog = builtin.get()?;
        catalog.apply_overrides(&loaded.config.models, "your configuration")?;
        let credentials = Credentials::from_env(&CredentialSources::standard(
            &env,
            &loaded.profile,
            loaded.config.key_command.clone(),
        ));
        for secret in credentials.known_secrets() {
            ui.redactor().add_secret(secret.expose_secret());
        }
        for refused in credentials.refused() {
            ui.warning(&refused.to_string());
        }
        let strict = cli.strict || loaded.profile.as_str() == "prod";
        check_project_env(&credentials, &loaded.config, strict, &ui)?;
        Ok(Self {
            env,
            loaded,
            catalog,
            credentials,
            ui,
            yes: cli.yes,
            interrupt: interrupt.clone(),
            http: std::sync::OnceLock::new(),
            fal_webhook: std::sync::OnceLock::new(),
            ledger: tokio::sync::OnceCell::new(),
            audit_key: std::sync::OnceLock::new(),
        })
    }

    /// The providers of the models a run used (from its manifest, found through the runs index).
    pub(crate) fn providers_of_run(&self, run_id: &str) -> Result<Vec<ProviderId>, Failure> {
        let entry = self.runs_index().find(run_id)?;
        let root = entry
            .folder
            .parent()
            .ok_or_else(|| acgs_storage::StorageError::RunNotFound(run_id.to_owned()))?;
        let dir = acgs_storage::output::OutputRoot::open(root)?.open_run(run_id)?;
        let manifest = acgs_storage::manifest::Manifest::load(&dir)?;
        let mut providers = Vec::new();
        for step in &manifest.steps {
            let provider = self.catalog.resolve(&step.model)?.provider;
            if !providers.contains(&provider) {
                providers.push(provider);
            }
        }
        Ok(providers)
    }

    /// The configuration.
    #[must_use]
    pub(crate) fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// A suite for planning only: no providers, no ledger, no audit.
    pub(crate) fn planning_suite(&self) -> Result<Suite, Failure> {
        Ok(self.base_builder().build()?)
    }

    /// Questions on this terminal, racing Ctrl-C and SIGTERM (`--yes` answers them).
    pub(crate) fn terminal_confirm(&self) -> TerminalConfirm {
        TerminalConfirm {
            yes: self.yes,
            ui: self.ui.clone(),
            interrupt: self.interrupt.clone(),
        }
    }

    fn base_builder(&self) -> SuiteBuilder {
        Suite::builder()
            .config(self.config().clone())
            .catalog(self.catalog.clone())
            .secrets(self.ui.redactor().clone())
            .caller(
                Caller::new(&self.loaded.user(&self.env))
                    .origin(Origin::Cli)
                    .confirm(Arc::new(self.terminal_confirm())),
            )
    }

    /// The spend ledger (opened once per process), with pending settlements from earlier
    /// commands retried first.
    pub(crate) async fn ledger(&self) -> Result<Arc<dyn acgs_core::ledger::Ledger>, Failure> {
        self.ledger
            .get_or_try_init(|| self.open_ledger())
            .await
            .cloned()
    }

    async fn open_ledger(&self) -> Result<Arc<dyn acgs_core::ledger::Ledger>, Failure> {
        acgs_storage::ensure_private_dir(&self.loaded.paths.state_dir)?;
        let access = self.ledger_access();
        let ledger = acgs_storage::open_ledger(&self.loaded.ledger_url(), &access).await?;
        let report = self.journal().retry(ledger.as_ref()).await?;
        if report.remaining > 0 {
            self.ui.warning(&format!(
                "{} earlier settlement(s) still could not be recorded; they keep counting against the limit",
                report.remaining
            ));
        }
        Ok(ledger)
    }

    /// What opening a PostgreSQL ledger (or the service's shared records) may need: the
    /// password from `PGPASSWORD` or `.pgpass`, and the redactor that learns it.
    pub(crate) fn ledger_access(&self) -> acgs_storage::LedgerAccess {
        let paths = &self.loaded.paths;
        acgs_storage::LedgerAccess {
            password: self
                .env
                .var("PGPASSWORD")
                .map(|p| secrecy::SecretString::from(p.to_owned())),
            pgpass_file: Some(
                self.env
                    .var("PGPASSFILE")
                    .map_or_else(|| paths.home.join(".pgpass"), std::path::PathBuf::from),
            ),
            redactor: self.ui.redactor().clone(),
        }
    }

    fn journal(&self) -> acgs_storage::journal::SettlementJournal {
        acgs_storage::journal::SettlementJournal::new(
            self.loaded.paths.state_file("pending-settlements.jsonl"),
        )
    }

    /// The per-install secret (created on first use), once per process; `None`, with a warning,
    /// when it cannot be read or created.
    fn audit_key(&self) -> Option<AuditKey> {
        self.audit_key
            .get_or_init(|| {
                let path = self.loaded.paths.config_dir.join("audit-key");
                AuditKey::load_or_create(&path)
                    .map_err(|e| {
                        self.ui
                            .warning(&format!("audit chain and run records not keyed: {e}"));
                    })
                    .ok()
            })
            .clone()
    }

    /// The audit log (keyed with the per-install secret when it can be created).
    pub(crate) fn audit_log(&self) -> AuditLog {
        AuditLog::new(
            self.loaded.audit_path(),
            self.audit_key(),
            self.config().audit.record_prompt_text,
            self.env.os_user(),
        )
    }

    /// A suite for the ledger, audit log and runs index only (`acgs spend abandon`, `acgs runs
    /// show`): no provider.
    pub(crate) async fn ledger_suite(&self) -> Result<Suite, Failure> {
        Ok(self
            .base_builder()
            .ledger(self.ledger().await?)
            .audit(Arc::new(self.audit_log()))
            .journal(self.journal())
            .runs(self.runs_index())
            .build()?)
    }

    /// A suite that reads the runs index only (`acgs runs`): no ledger, no provider.
    pub(crate) fn history_suite(&self) -> Result<Suite, Failure> {
        Ok(self.base_builder().runs(self.runs_index()).build()?)
    }

    fn runs_index(&self) -> RunIndex {
        RunIndex::new(self.loaded.paths.state_file("runs.jsonl"))
    }

    /// The key for `provider` (running key_command if needed; taught to the redactor) and the
    /// HTTP client.
    fn key_and_http(
        &self,
        provider: ProviderId,
    ) -> Result<(Arc<acgs_credentials::LoadedKey>, HttpClient), Failure> {
        let key = self.credentials.key(provider)?;
        self.ui.redactor().add_secret(key.secret.expose_secret());
        for warning in &key.warnings {
            self.ui.warning(warning);
        }
        let http = match self.http.get() {
            Some(http) => http.clone(),
            None => {
                let http = HttpClient::new(
                    NetworkPolicy::from_config(&self.config().network),
                    self.ui.redactor().clone(),
                )?;
                self.http.get_or_init(|| http).clone()
            }
        };
        Ok((key, http))
    }

    /// fal's platform API with the fal key (`acgs models search`, `add`, `spend reconcile`).
    pub(crate) fn fal_platform(&self) -> Result<acgs_providers_fal::Platform, Failure> {
        let (key, http) = self.key_and_http(ProviderId::Fal)?;
        Ok(acgs_providers_fal::Platform::new(
            http,
            &self.config().providers.urls(ProviderId::Fal),
            Some(&key.secret),
        )?)
    }

    /// The ElevenLabs provider, for its read-only calls (`acgs voices`).
    pub(crate) fn elevenlabs(
        &self,
    ) -> Result<acgs_providers_elevenlabs::ElevenLabsProvider, Failure> {
        let (key, http) = self.key_and_http(ProviderId::ElevenLabs)?;
        Ok(acgs_providers_elevenlabs::ElevenLabsProvider::new(
            http,
            &self.config().providers.urls(ProviderId::ElevenLabs),
            &key.secret,
        )?)
    }

    /// One cheap authenticated call to `provider` with its key (`acgs keys check`): nothing is
    /// spent, and the key never leaves the provider's own origin.
    pub(crate) async fn check_key(&self, provider: ProviderId) -> Result<(), Failure> {
        let (key, http) = self.key_and_http(provider)?;
        let urls = self.config().providers.urls(provider);
        match provider {
            ProviderId::Fal => {
                acgs_providers_fal::PricingApi::new(http, &urls, &key.secret)?
                    .check_key()
                    .await?;
            }
            ProviderId::Gemini => {
                acgs_providers_gemini::GeminiProvider::new(http, &urls, &key.secret)?
                    .check_key()
                    .await?;
            }
            ProviderId::ElevenLabs => self.elevenlabs()?.check_key().await?,
            ProviderId::Local => {}
        }
        Ok(())
    }

    /// A suite able to spend through `provider`: its key (running key_command if needed), the HTTP
    /// client, the ledger, the audit log and the runs index.
    pub(crate) async fn spending_suite(&self, provider: ProviderId) -> Result<Suite, Failure> {
        self.spending_suite_for(&[provider]).await
    }

    /// A suite able to spend through every provider in `providers` (a pipeline's).
    pub(crate) async fn spending_suite_for(
        &self,
        providers: &[ProviderId],
    ) -> Result<Suite, Failure> {
        let mut builder = self.base_builder();
        for provider in providers {
            let (built, info) = self.provider(*provider)?;
            builder = builder.provider(built, info);
        }
        if let Some(key) = self.audit_key() {
            builder = builder.record_key(RecordKey::from_audit_key(&key));
        }
        Ok(builder
            .ledger(self.ledger().await?)
            .audit(Arc::new(self.audit_log()))
            .journal(self.journal())
            .alert_hook(Arc::new(crate::confirm::AlertCommand::new(
                &self.config().cost_management.alert_command,
                &self.env.vars,
            )))
            .runs(self.runs_index())
            .build()?)
    }

    /// A suite able to spend through every provider whose key can be loaded (`acgs mcp`); the
    /// others are left out with a note, and their models answer `credentials.missing`.
    pub(crate) async fn serving_suite(&self) -> Result<Suite, Failure> {
        let mut available = vec![ProviderId::Local];
        for provider in ProviderId::KEYED {
            match self.credentials.key(provider) {
                Ok(_) => available.push(provider),
                Err(e) => self
                    .ui
                    .note(&format!("{provider} models are unavailable: {e}")),
            }
        }
        self.spending_suite_for(&available).await
    }

    /// The local steps' provider: ffmpeg and ffprobe from `[tools]` or `PATH`; no key.
    fn local_provider(&self) -> Result<(Arc<dyn Provider>, KeyInfo), Failure> {
        let local = acgs_providers_local::LocalProvider::new(
            &self.config().tools,
            self.env.var("PATH").map(std::ffi::OsStr::new),
        )
        .map_err(|source| acgs_core::Error::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let info = KeyInfo {
            fingerprint: String::new(),
            source: "none (runs on this machine)".into(),
        };
        Ok((Arc::new(local), info))
    }

    fn provider(&self, provider: ProviderId) -> Result<(Arc<dyn Provider>, KeyInfo), Failure> {
        let urls = self.config().providers.urls(provider);
        let keyed = || self.key_and_http(provider);
        let (built, key): (Arc<dyn Provider>, _) = match provider {
            ProviderId::Local => return self.local_provider(),
            ProviderId::Fal => {
                let (key, http) = keyed()?;
                let mut fal = acgs_providers_fal::FalProvider::new(http, &urls, &key.secret)?;
                if let Some((url, wakeups)) = self.fal_webhook.get() {
                    fal = fal.with_webhook(url.clone(), wakeups.clone());
                }
                (Arc::new(fal), key)
            }
            ProviderId::Gemini => {
                let (key, http) = keyed()?;
                let gemini = acgs_providers_gemini::GeminiProvider::new(http, &urls, &key.secret)?;
                (Arc::new(gemini), key)
            }
            ProviderId::ElevenLabs => {
                let (key, http) = keyed()?;
                let eleven =
                    acgs_providers_elevenlabs::ElevenLabsProvider::new(http, &urls, &key.secret)?;
                (Arc::new(eleven), key)
            }
        };
        let info = KeyInfo {
            fingerprint: key.fingerprint(),
            source: key.source.to_string(),
        };
        Ok((built, info))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_keys_are_unique_across_providers() {
        let Ok(catalog) = super::builtin_catalog() else {
            panic!("the built-in catalogues parse")
        };
        let mut keys: Vec<&str> = catalog.models().map(|m| m.key.as_str()).collect();
        let total = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), total, "a bare key must name one model");
        for provider in acgs_core::ProviderId::ALL {
            assert!(
                catalog.models().any(|m| m.provider == provider),
                "{provider} ships models"
            );
        }
    }

    #[test]
    fn every_command_default_is_claimed_by_exactly_one_model_of_its_task() {
        let Ok(catalog) = super::builtin_catalog() else {
            panic!("the built-in catalogues parse")
        };
        for purpose in [
            "text_to_image",
            "image_to_image",
            "image_to_image:multi",
            "text_to_video",
            "image_to_video",
            "avatar:audio",
            "avatar:text",
            "upscale_image",
            "upscale_video",
            "speech_to_text",
            "text_generation",
            "image_understanding",
            "video_understanding",
            "video_understanding:audio",
            "text_to_speech",
        ] {
            let claims: Vec<_> = catalog
                .models()
                .filter(|m| m.default_for.iter().any(|p| p == purpose))
                .collect();
            assert_eq!(claims.len(), 1, "{purpose}: {claims:?}");
            let task = purpose.split(':').next().unwrap_or_default();
            assert_eq!(claims[0].task.as_str(), task, "{purpose}");
        }
    }
}
