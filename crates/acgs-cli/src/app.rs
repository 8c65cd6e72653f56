//! The context every command starts from: environment, configuration, catalogue, credentials,
//! the redactor and the terminal. Providers, the ledger and the audit log are opened only by the
//! commands that need them, so `models` and `--dry-run` need no key, no network and no state.

use std::sync::Arc;

use acgs_core::catalog::Catalog;
use acgs_core::config::{Config, ConfigSources, LoadedConfig};
use acgs_core::credentials::{CredentialSources, Credentials};
use acgs_core::env::ProcessEnv;
use acgs_core::{Provider, ProviderId};
use acgs_engine::{KeyInfo, Suite, SuiteBuilder};
use acgs_http::{HttpClient, NetworkPolicy};
use acgs_storage::audit::{AuditKey, AuditLog};
use acgs_storage::runs::RunIndex;
use secrecy::ExposeSecret as _;

use crate::cli::Cli;
use crate::confirm::TerminalConfirm;
use crate::failure::Failure;
use crate::ui::Ui;

/// The loaded context.
pub struct App {
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
}

/// The built-in catalogues of every provider crate.
pub fn builtin_catalog() -> Result<Catalog, Failure> {
    Ok(acgs_providers_fal::catalog()?)
}

impl App {
    /// Load configuration, catalogue and credentials, and teach the redactor every known secret.
    pub fn load(cli: &Cli, env: ProcessEnv, ui: Ui) -> Result<Self, Failure> {
        let sources = ConfigSources::standard(&env, cli.config.clone(), cli.profile.as_deref())?;
        let mut loaded = Config::load(&sources)?;
        loaded.config.output_dir = env.cwd.join(&loaded.config.output_dir);
        let mut catalog = builtin_catalog()?;
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
        Ok(Self {
            env,
            loaded,
            catalog,
            credentials,
            ui,
            yes: cli.yes,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    /// A suite for planning only: no providers, no ledger, no audit.
    pub fn planning_suite(&self) -> Result<Suite, Failure> {
        Ok(self.base_builder().build()?)
    }

    fn base_builder(&self) -> SuiteBuilder {
        Suite::builder()
            .config(self.config().clone())
            .catalog(self.catalog.clone())
            .secrets(self.ui.redactor().clone())
            .user(&self.loaded.user(&self.env))
    }

    /// A suite able to spend through `provider`: its key (running key_command if needed), the HTTP
    /// client, the ledger, the audit log and the runs index.
    pub fn spending_suite(&self, provider: ProviderId) -> Result<Suite, Failure> {
        let key = self.credentials.key(provider)?;
        self.ui.redactor().add_secret(key.secret.expose_secret());
        for warning in &key.warnings {
            self.ui.warning(warning);
        }
        let config = self.config();
        let http = HttpClient::new(
            NetworkPolicy::from_config(&config.network),
            self.ui.redactor().clone(),
        )?;
        let built: Arc<dyn Provider> = match provider {
            ProviderId::Fal => Arc::new(acgs_providers_fal::FalProvider::new(
                http,
                &config.providers.fal,
                &key.secret,
            )?),
            other => {
                return Err(crate::failure::CliError::Usage(format!(
                    "the {other} provider is not available in this build"
                ))
                .into());
            }
        };
        let paths = &self.loaded.paths;
        acgs_storage::ensure_private_dir(&paths.state_dir)?;
        let ledger = acgs_storage::open_ledger(&self.loaded.ledger_url())?;
        let audit_key = AuditKey::load_or_create(&paths.config_dir.join("audit-key"))
            .map_err(|e| self.ui.warning(&format!("audit chain not keyed: {e}")))
            .ok();
        let audit = AuditLog::new(
            self.loaded.audit_path(),
            audit_key,
            config.audit.record_prompt_text,
            self.env.os_user(),
        );
        let info = KeyInfo {
            fingerprint: key.fingerprint(),
            source: key.source.to_string(),
        };
        Ok(self
            .base_builder()
            .provider(built, info)
            .ledger(ledger)
            .audit(Arc::new(audit))
            .runs(RunIndex::new(paths.state_file("runs.jsonl")))
            .confirm(Arc::new(TerminalConfirm { yes: self.yes }))
            .build()?)
    }
}
