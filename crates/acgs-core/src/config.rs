//! Configuration: layered, profiled, strict about unknown keys, and suspicious of project files.
//!
//! Layers, later wins (DESIGN.md §3.1): built-in defaults < user file
//! (`$XDG_CONFIG_HOME/acgs/config.toml`) < project file (`./acgs.toml`, or `--config PATH`, which
//! is trusted) < `ACGS_*` environment variables, which beat every profile table. Each file holds
//! profile tables (`[default]`, `[dev]`, `[prod]`); `[default]` values of every file come first,
//! then the selected profile's.
//!
//! A project file is someone else's: it may not set provider URLs, `network`, `ledger`, `audit`,
//! `key_command`, `models`, `tools`, `user` or any `allow_*` key, and every other value may only tighten
//! limits and guards ([`check_tightens`], also used for pipeline `settings`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::env::{Paths, ProcessEnv};
use crate::error::{Error, Result};
use crate::money::Usd;
use crate::task::ProviderId;

/// A profile name: `[a-z0-9_-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profile(String);

impl Profile {
    /// Validate a profile name.
    pub fn new(name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidConfig {
                key: "profile".into(),
                origin: "--profile / ACGS_PROFILE".into(),
                reason: "profile names are 1–32 of [a-z0-9_-]".into(),
            })
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self("dev".into())
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A multiplier kept exactly, in thousandths (`2.0` is 2000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ratio(pub u32);

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}.{:03}", self.0 / 1000, self.0 % 1000))
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let amount = Usd::deserialize(deserializer)?;
        let permille = amount.micros() / 1000;
        if amount.micros() % 1000 != 0 || permille < 1000 {
            return Err(serde::de::Error::custom(
                "a multiplier of at least 1.0 with up to three decimals",
            ));
        }
        u32::try_from(permille)
            .map(Ratio)
            .map_err(|_| serde::de::Error::custom("multiplier too large"))
    }
}

/// A fraction kept exactly, in thousandths (`0.8` is 800); between 0 (exclusive) and 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fraction(pub u32);

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}.{:03}", self.0 / 1000, self.0 % 1000))
    }
}

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let amount = Usd::deserialize(deserializer)?;
        let permille = amount.micros() / 1000;
        if amount.micros() % 1000 != 0 || permille <= 0 || permille > 10_000 {
            return Err(serde::de::Error::custom(
                "a fraction above 0 and at most 10, with up to three decimals",
            ));
        }
        u32::try_from(permille)
            .map(Fraction)
            .map_err(|_| serde::de::Error::custom("fraction too large"))
    }
}

/// `[cost_management]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostManagement {
    /// Worst case of one command or pipeline run.
    pub max_cost_per_run: Usd,
    /// Per calendar day in `timezone`.
    pub daily_limit: Usd,
    /// At or above this estimate acgs warns.
    pub warn_threshold: Usd,
    /// Ask before spending (or require `--yes` without a terminal).
    pub require_confirmation: bool,
    /// Worst cases at or below this are spent without asking (a $0.0001 text request is not
    /// worth a question); above it, `require_confirmation` asks.
    pub confirm_above: Usd,
    /// IANA time zone that defines the day.
    pub timezone: String,
    /// Allow models without a catalogue price (audited).
    pub allow_unpriced_models: bool,
    /// Multiplier for prices not marked verified.
    pub unverified_price_margin: Ratio,
    /// Fractions of the daily limit at which to alert, each crossing once a day.
    pub alert_at: Vec<Fraction>,
    /// A command told about each alert (argv, user config only; the fraction, spend, limit and
    /// day are appended as arguments).
    pub alert_command: Vec<String>,
}

impl Default for CostManagement {
    fn default() -> Self {
        Self {
            max_cost_per_run: Usd::from_dollars(10),
            daily_limit: Usd::from_dollars(100),
            warn_threshold: Usd::from_dollars(5),
            require_confirmation: true,
            confirm_above: Usd::from_micros(50_000),
            timezone: "UTC".into(),
            allow_unpriced_models: false,
            unverified_price_margin: Ratio(2000),
            alert_at: vec![Fraction(500), Fraction(800), Fraction(1000)],
            alert_command: Vec::new(),
        }
    }
}

/// Submits per minute and jobs in flight for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Submits per minute.
    pub per_minute: u32,
    /// Jobs in flight at once.
    pub in_flight: u32,
}

/// `[rate_limits]`: submits per minute and jobs in flight, by provider id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RateLimits(BTreeMap<ProviderId, RateLimit>);

impl RateLimits {
    /// The limits of `provider`, if configured.
    #[must_use]
    pub fn get(&self, provider: ProviderId) -> Option<RateLimit> {
        self.0.get(&provider).copied()
    }

    /// Set the limits of `provider`.
    pub fn set(&mut self, provider: ProviderId, limit: RateLimit) {
        self.0.insert(provider, limit);
    }

    /// Every provider's limits.
    pub fn iter(&self) -> impl Iterator<Item = (ProviderId, RateLimit)> + '_ {
        self.0.iter().map(|(id, limit)| (*id, *limit))
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        let limit = |per_minute, in_flight| RateLimit {
            per_minute,
            in_flight,
        };
        Self(BTreeMap::from([
            (ProviderId::Fal, limit(60, 10)),
            (ProviderId::Gemini, limit(60, 10)),
            (ProviderId::ElevenLabs, limit(60, 2)),
            // ffmpeg uses every core it is given: two at once.
            (ProviderId::Local, limit(600, 2)),
        ]))
    }
}

/// What to do when injection heuristics fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionPolicy {
    /// Warn and continue.
    Warn,
    /// Refuse (exit 3).
    Block,
}

/// `[guard]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Image and video prompts; text and speech use the model's limit.
    pub max_prompt_chars: u32,
    /// Speech texts (stitched above one request's limit).
    pub max_speech_chars: u32,
    /// Injection policy.
    pub on_injection: InjectionPolicy,
    /// Block-list files, one term per line, `category: term` allowed.
    pub blocklists: Vec<PathBuf>,
    /// Prompt templates by flag (`prompt = "Studio photo: {{ prompt }}"`); the slot is the flag's
    /// own name and user text fills it in one pass.
    pub templates: BTreeMap<String, String>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_prompt_chars: 2000,
            max_speech_chars: 100_000,
            on_injection: InjectionPolicy::Block,
            blocklists: Vec::new(),
            templates: BTreeMap::new(),
        }
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The JSONL file; empty means `<state>/audit.jsonl`.
    pub path: PathBuf,
    /// Keep prompt text (otherwise only length and a keyed digest).
    pub record_prompt_text: bool,
}

/// `[ledger]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// `sqlite://PATH` or `postgres://…`; empty means `sqlite://<state>/ledger.sqlite3`.
    pub url: String,
    /// Lease of a `held` reservation; the owning process renews it every third of this.
    pub lease_secs: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            lease_secs: 120,
        }
    }
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Allow plain http to loopback (tests, local proxies).
    pub allow_http_loopback: bool,
    /// Extra PEM roots added to the OS roots; empty for none.
    pub ca_bundle: PathBuf,
    /// Explicit proxy URL; empty for none (system proxy variables are ignored).
    pub proxy: String,
    /// Connect timeout.
    pub connect_timeout_secs: u64,
    /// Whole-request timeout for JSON API calls.
    pub request_timeout_secs: u64,
    /// Streams and downloads: longest time without a byte.
    pub read_idle_timeout_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            allow_http_loopback: false,
            ca_bundle: PathBuf::new(),
            proxy: String::new(),
            connect_timeout_secs: 10,
            request_timeout_secs: 120,
            read_idle_timeout_secs: 60,
        }
    }
}

/// `[tools]`: the system programs local media steps run (DESIGN.md §3.7). User configuration
/// only: a project file naming a binary would be code execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// ffmpeg's path (relative to the configuration file); empty: the first `ffmpeg` on `PATH`.
    pub ffmpeg: PathBuf,
    /// ffprobe's path (relative to the configuration file); empty: the first `ffprobe` on `PATH`.
    pub ffprobe: PathBuf,
    /// How long one ffmpeg or ffprobe run may take before it is killed.
    pub timeout_secs: u64,
    /// The longest media input a local step reads, in seconds (what ffprobe reports).
    pub max_input_seconds: u64,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            ffmpeg: PathBuf::new(),
            ffprobe: PathBuf::new(),
            timeout_secs: 600,
            max_input_seconds: 3600,
        }
    }
}

/// `[mcp]`: what an agent may do through `acgs mcp`. User configuration only: neither a project
/// file nor a tool argument can change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// What one server run (one agent session) may reserve and spend in all, on top of the
    /// per-run and daily limits.
    pub session_limit: Usd,
    /// A call whose worst case is above this is refused (there is no terminal to confirm on);
    /// at or below it, the allowance is the confirmation.
    pub confirm_above: Usd,
    /// Absolute folders the agent may read input files and pipeline files from; empty: none.
    pub allowed_input_roots: Vec<PathBuf>,
    /// Let `acgs mcp --http` bind an address other than loopback.
    pub allow_remote: bool,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            session_limit: Usd::from_dollars(5),
            confirm_above: Usd::from_dollars(1),
            allowed_input_roots: Vec::new(),
            allow_remote: false,
        }
    }
}

/// `[providers.<id>]`: one provider's base URLs by name (`queue_url`, `base_url` …). Which
/// names a provider reads is its own crate's business; the defaults name every one, so a
/// misspelt name is an unknown key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderUrls(BTreeMap<String, String>);

impl ProviderUrls {
    /// The URL called `name`.
    #[must_use]
    pub fn url(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Set the URL called `name`.
    pub fn set(&mut self, name: &str, url: impl Into<String>) -> &mut Self {
        self.0.insert(name.to_owned(), url.into());
        self
    }

    fn of(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

/// `[providers]`: each provider's base URLs, by provider id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProvidersConfig(BTreeMap<ProviderId, ProviderUrls>);

impl ProvidersConfig {
    /// The base URLs of `provider` (none when it has no table).
    #[must_use]
    pub fn urls(&self, provider: ProviderId) -> ProviderUrls {
        self.0.get(&provider).cloned().unwrap_or_default()
    }

    /// Set `provider`'s URL called `name` (tests and local proxies point a provider elsewhere).
    pub fn set(&mut self, provider: ProviderId, name: &str, url: impl Into<String>) {
        self.0.entry(provider).or_default().set(name, url);
    }
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self(BTreeMap::from([
            (
                ProviderId::Fal,
                ProviderUrls::of(&[
                    ("queue_url", "https://queue.fal.run"),
                    ("rest_url", "https://rest.fal.ai"),
                    ("api_url", "https://api.fal.ai"),
                    // fal's webhook signing keys (not rest.fal.ai).
                    (
                        "jwks_url",
                        "https://rest.alpha.fal.ai/.well-known/jwks.json",
                    ),
                ]),
            ),
            (
                ProviderId::Gemini,
                ProviderUrls::of(&[("base_url", "https://generativelanguage.googleapis.com")]),
            ),
            (
                ProviderId::ElevenLabs,
                ProviderUrls::of(&[("base_url", "https://api.elevenlabs.io")]),
            ),
        ]))
    }
}

/// The whole configuration of one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The output root; every written path stays inside it.
    pub output_dir: PathBuf,
    /// The acgs user spend and audit entries are attributed to; empty means the OS user.
    pub user: String,
    /// Allow `user` to differ from the OS user.
    pub allow_user_override: bool,
    /// Allow parameters a model's schema does not list.
    pub allow_unknown_params: bool,
    /// Allow `safety` parameters (safety checkers, tolerance) to be changed (audited).
    pub allow_safety_overrides: bool,
    /// Accept keys from a project's `.env` that shadow a key of your own (credentials file,
    /// `key_command`); otherwise acgs warns on every command (refuses in `prod` or with
    /// `--strict`), since a cloned project could send your prompts under someone else's key.
    pub allow_project_env: bool,
    /// A command printing a key (argv, no shell); the variable name is appended as last argument.
    pub key_command: Vec<String>,
    /// Money.
    pub cost_management: CostManagement,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Guard.
    pub guard: GuardConfig,
    /// Audit log.
    pub audit: AuditConfig,
    /// Spend ledger.
    pub ledger: LedgerConfig,
    /// Network policy.
    pub network: NetworkConfig,
    /// Provider base URLs.
    pub providers: ProvidersConfig,
    /// User catalogue entries: add or override models.
    pub models: BTreeMap<String, toml::Table>,
    /// `acgs mcp`.
    pub mcp: McpConfig,
    /// ffmpeg and ffprobe for local media steps.
    pub tools: ToolsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("output"),
            user: String::new(),
            allow_user_override: false,
            allow_unknown_params: false,
            allow_safety_overrides: false,
            allow_project_env: false,
            key_command: Vec::new(),
            cost_management: CostManagement::default(),
            rate_limits: RateLimits::default(),
            guard: GuardConfig::default(),
            audit: AuditConfig::default(),
            ledger: LedgerConfig::default(),
            network: NetworkConfig::default(),
            providers: ProvidersConfig::default(),
            models: BTreeMap::new(),
            mcp: McpConfig::default(),
            tools: ToolsConfig::default(),
        }
    }
}

/// Where configuration comes from.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    /// The user file, if it exists.
    pub user_file: Option<PathBuf>,
    /// `./acgs.toml`, if it exists (untrusted).
    pub project_file: Option<PathBuf>,
    /// `--config PATH` / `ACGS_CONFIG` (trusted; replaces the project file).
    pub explicit_file: Option<PathBuf>,
    /// The environment snapshot.
    pub env: ProcessEnv,
    /// The selected profile.
    pub profile: Profile,
    /// Whether the profile was asked for (`--profile`, `ACGS_PROFILE`) rather than the default;
    /// a profile asked for must exist.
    pub profile_chosen: bool,
}

impl ConfigSources {
    /// The standard sources for this environment: the user file, `./acgs.toml`, `ACGS_*`.
    /// `config_flag` and `profile_flag` are `--config` and `--profile`, which beat `ACGS_CONFIG`
    /// and `ACGS_PROFILE`.
    pub fn standard(
        env: &ProcessEnv,
        config_flag: Option<PathBuf>,
        profile_flag: Option<&str>,
    ) -> Result<Self> {
        let paths = env.paths();
        let chosen = profile_flag.or_else(|| env.var("ACGS_PROFILE"));
        let profile = match chosen {
            Some(name) => Profile::new(name)?,
            None => Profile::default(),
        };
        let explicit_file = config_flag
            .or_else(|| env.var("ACGS_CONFIG").map(PathBuf::from))
            .map(|p| env.cwd.join(p));
        let project = env.cwd.join("acgs.toml");
        let user = paths.user_config();
        // Anything found under these names is read as configuration, so that a FIFO or a
        // device there is refused by name rather than silently ignored.
        let present = |path: &Path| fs_err::symlink_metadata(path).is_ok();
        Ok(Self {
            user_file: present(&user).then_some(user),
            project_file: (explicit_file.is_none() && present(&project)).then_some(project),
            explicit_file,
            env: env.clone(),
            profile,
            profile_chosen: chosen.is_some(),
        })
    }
}

/// A loaded configuration with what it was loaded from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration of the selected profile.
    pub config: Config,
    /// The selected profile.
    pub profile: Profile,
    /// Whether it was asked for rather than the default (see [`ConfigSources::profile_chosen`]).
    pub profile_chosen: bool,
    /// Files read, in order, with whether they were trusted.
    pub files: Vec<(PathBuf, bool)>,
    /// Standard folders.
    pub paths: Paths,
}

impl LoadedConfig {
    /// The audit log path (configured or default).
    #[must_use]
    pub fn audit_path(&self) -> PathBuf {
        if self.config.audit.path.as_os_str().is_empty() {
            self.paths.state_file("audit.jsonl")
        } else {
            self.config.audit.path.clone()
        }
    }

    /// The ledger URL (configured or default).
    #[must_use]
    pub fn ledger_url(&self) -> String {
        if self.config.ledger.url.is_empty() {
            format!(
                "sqlite://{}",
                self.paths.state_file("ledger.sqlite3").display()
            )
        } else {
            self.config.ledger.url.clone()
        }
    }

    /// The acgs user name: `user` when allowed, else the OS user.
    #[must_use]
    pub fn user(&self, env: &ProcessEnv) -> String {
        if self.config.allow_user_override && !self.config.user.is_empty() {
            self.config.user.clone()
        } else {
            env.os_user()
        }
    }
}

/// One configuration source with its profile tables.
struct Layer {
    origin: String,
    trusted: bool,
    profiles: BTreeMap<String, toml::Table>,
}

impl Config {
    /// Load the configuration of the selected profile from `sources`.
    pub fn load(sources: &ConfigSources) -> Result<LoadedConfig> {
        let mut layers = Vec::new();
        let mut files = Vec::new();
        if let Some(path) = &sources.user_file {
            layers.push(read_layer(path, true)?);
            files.push((path.clone(), true));
        }
        if let Some(path) = &sources.explicit_file {
            layers.push(read_layer(path, true)?);
            files.push((path.clone(), true));
        } else if let Some(path) = &sources.project_file {
            let layer = read_layer(path, false)?;
            check_project_keys(&layer, path)?;
            layers.push(layer);
            files.push((path.clone(), false));
        }
        let profile = sources.profile.as_str();
        if sources.profile_chosen {
            check_profile_exists(&layers, profile)?;
        }
        let trusted_only: Vec<&Layer> = layers.iter().filter(|l| l.trusted).collect();
        let all: Vec<&Layer> = layers.iter().collect();
        let base = merge_profile(&trusted_only, profile);
        let with_project = merge_profile(&all, profile);
        let mut merged = with_project.clone();
        let env_table = env_layer(&sources.env)?;
        deep_merge(&mut merged, &env_table);
        let config = deserialize(merged, "the merged configuration")?;
        if let Some((path, _)) = files.iter().find(|(_, trusted)| !trusted) {
            let origin = path.display().to_string();
            let before = deserialize(base, &origin)?;
            let after = deserialize(with_project, &origin)?;
            check_tightens(&before, &after, &origin)?;
        }
        Ok(LoadedConfig {
            config,
            profile: sources.profile.clone(),
            profile_chosen: sources.profile_chosen,
            files,
            paths: sources.env.paths(),
        })
    }
}

/// The profiles that exist without a table: the default one and `prod` (which turns
/// `--strict` on).
const BUILT_IN_PROFILES: [&str; 3] = ["default", "dev", "prod"];

/// A profile asked for by name must be one of [`BUILT_IN_PROFILES`] or a table of a file read:
/// a misspelt `--profile` would otherwise run with the defaults, silently.
fn check_profile_exists(layers: &[Layer], profile: &str) -> Result<()> {
    let mut known: Vec<&str> = BUILT_IN_PROFILES.to_vec();
    for name in layers.iter().flat_map(|l| l.profiles.keys()) {
        if !known.contains(&name.as_str()) {
            known.push(name);
        }
    }
    if known.contains(&profile) {
        return Ok(());
    }
    Err(Error::UnknownProfile {
        profile: profile.to_owned(),
        closest: crate::suggest::closest(profile, known.iter().copied(), 2)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        known: known.into_iter().map(str::to_owned).collect(),
    })
}

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

fn read_layer(path: &Path, trusted: bool) -> Result<Layer> {
    let origin = path.display().to_string();
    let text = crate::files::read_regular_text(path, MAX_CONFIG_BYTES)
        .map_err(|e| crate::files::unreadable(path, &e))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| Error::ConfigSyntax {
        origin: match e.span() {
            Some(span) => format!("{origin}:{}", line_at(&text, span.start)),
            None => origin.clone(),
        },
        reason: e.message().trim().to_owned(),
    })?;
    // `path:line` of a key path (profile first) in this file.
    let place = |keys: &[&str]| match line_of(&text, keys) {
        Some(line) => format!("{origin}:{line}"),
        None => origin.clone(),
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut profiles = BTreeMap::new();
    for (name, value) in table {
        let toml::Value::Table(mut section) = value else {
            return Err(Error::InvalidConfig {
                key: name.clone(),
                origin: place(&[&name]),
                reason: "top-level keys are profile tables such as [default] or [dev]".into(),
            });
        };
        Profile::new(&name).map_err(|_| Error::InvalidConfig {
            key: name.clone(),
            origin: place(&[&name]),
            reason: "profile names are 1–32 of [a-z0-9_-]".into(),
        })?;
        let in_profile = |keys: &[&str]| place(&[&[name.as_str()], keys].concat());
        check_known_keys(&section, &defaults_table(), &[], &in_profile)?;
        resolve_relative_paths(&mut section, &base_dir);
        check_values(&section, &in_profile)?;
        profiles.insert(name, section);
    }
    Ok(Layer {
        origin,
        trusted,
        profiles,
    })
}

/// The 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> u32 {
    let before = text.get(..offset).unwrap_or(text);
    u32::try_from(before.bytes().filter(|b| *b == b'\n').count() + 1).unwrap_or(u32::MAX)
}

/// The line on which the key at `keys` (a profile table, then dotted keys) is written.
fn line_of(text: &str, keys: &[&str]) -> Option<u32> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut at = None;
    for (i, wanted) in keys.iter().enumerate() {
        let (key, value) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == *wanted)?;
        at = Some(key.span().start);
        if i + 1 < keys.len() {
            let toml::de::DeValue::Table(inner) = value.get_ref() else {
                return None;
            };
            table = inner;
        }
    }
    Some(line_at(text, at?))
}

/// Each value of a profile table against its type: the first that does not fit is named, with
/// its line, rather than the whole table being refused without a place.
fn check_values(section: &toml::Table, place: &dyn Fn(&[&str]) -> String) -> Result<()> {
    let Err(whole) = deserialize(section.clone(), "") else {
        return Ok(());
    };
    let mut leaves = Vec::new();
    collect_leaves(section, &mut Vec::new(), &mut leaves);
    for (keys, value) in leaves {
        // The leaf alone, nested under its keys.
        let alone = keys.iter().rev().fold(value, |inner, key| {
            toml::Value::Table(toml::Table::from_iter([(key.clone(), inner)]))
        });
        let toml::Value::Table(alone) = alone else {
            continue;
        };
        if let Err(Error::InvalidConfig { reason, .. }) = deserialize(alone, "") {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            return Err(Error::InvalidConfig {
                key: keys.join("."),
                origin: place(&keys),
                reason,
            });
        }
    }
    Err(match whole {
        Error::InvalidConfig { key, reason, .. } => Error::InvalidConfig {
            key,
            origin: place(&[]),
            reason,
        },
        other => other,
    })
}

/// Every leaf (a value that is not a table) of `table`, with its key path.
fn collect_leaves(
    table: &toml::Table,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, toml::Value)>,
) {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            toml::Value::Table(inner)
                if !matches!(prefix.first().map(String::as_str), Some("models")) =>
            {
                collect_leaves(inner, prefix, out);
            }
            _ => out.push((prefix.clone(), value.clone())),
        }
        prefix.pop();
    }
}

fn defaults_table() -> toml::Table {
    match toml::Value::try_from(Config::default()) {
        Ok(toml::Value::Table(table)) => table,
        _ => toml::Table::new(),
    }
}

/// Every key must exist in the defaults (except free-form `models` entries); an unknown one is
/// named with its place and the closest known keys.
fn check_known_keys(
    table: &toml::Table,
    known: &toml::Table,
    prefix: &[&str],
    place: &dyn Fn(&[&str]) -> String,
) -> Result<()> {
    for (key, value) in table {
        let keys = [prefix, &[key.as_str()]].concat();
        let path = keys.join(".");
        if path == "models" || path == "guard.templates" {
            continue;
        }
        match known.get(key) {
            None => {
                let closest = crate::suggest::closest(key, known.keys().map(String::as_str), 2);
                return Err(Error::UnknownConfigKey {
                    key: path,
                    origin: place(&keys),
                    closest: closest.into_iter().map(str::to_owned).collect(),
                });
            }
            Some(toml::Value::Table(inner_known)) => {
                if let toml::Value::Table(inner) = value {
                    check_known_keys(inner, inner_known, &keys, place)?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Relative paths in a file resolve against that file's folder.
fn resolve_relative_paths(section: &mut toml::Table, base_dir: &Path) {
    let absolutize = |value: &mut toml::Value| {
        if let toml::Value::String(s) = value
            && !s.is_empty()
            && Path::new(s.as_str()).is_relative()
        {
            *s = base_dir.join(&*s).display().to_string();
        }
    };
    if let Some(toml::Value::Table(guard)) = section.get_mut("guard")
        && let Some(toml::Value::Array(lists)) = guard.get_mut("blocklists")
    {
        lists.iter_mut().for_each(absolutize);
    }
    for (table, key) in [
        ("network", "ca_bundle"),
        ("audit", "path"),
        ("tools", "ffmpeg"),
        ("tools", "ffprobe"),
    ] {
        if let Some(toml::Value::Table(t)) = section.get_mut(table)
            && let Some(v) = t.get_mut(key)
        {
            absolutize(v);
        }
    }
    if let Some(toml::Value::Table(ledger)) = section.get_mut("ledger")
        && let Some(toml::Value::String(url)) = ledger.get_mut("url")
        && let Some(rest) = url.strip_prefix("sqlite://")
        && Path::new(rest).is_relative()
        && !rest.is_empty()
    {
        *url = format!("sqlite://{}", base_dir.join(rest).display());
    }
}

/// Keys a project file may never set.
fn check_project_keys(layer: &Layer, path: &Path) -> Result<()> {
    const FORBIDDEN: [&str; 9] = [
        "mcp",
        "tools",
        "providers",
        "network",
        "ledger",
        "audit",
        "key_command",
        "models",
        "user",
    ];
    let untrusted = |key: String| Error::UntrustedConfigKey {
        key,
        file: path.to_owned(),
    };
    for section in layer.profiles.values() {
        for (key, value) in section {
            if FORBIDDEN.contains(&key.as_str()) || key.starts_with("allow_") {
                return Err(untrusted(first_leaf(key, value)));
            }
            if let toml::Value::Table(inner) = value
                && let Some(name) = inner.keys().find(|k| {
                    k.starts_with("allow_")
                        || matches!(k.as_str(), "timezone" | "templates" | "alert_command")
                })
            {
                return Err(untrusted(format!("{key}.{name}")));
            }
            if key == "output_dir" {
                let ok = value.as_str().map(Path::new).is_some_and(|p| {
                    p.components()
                        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
                });
                if !ok {
                    return Err(untrusted(
                        "output_dir (only a relative folder without `..`)".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The first leaf key under `key`, for a precise message (`providers.fal.queue_url`).
fn first_leaf(key: &str, value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => match t.iter().next() {
            Some((k, v)) => first_leaf(&format!("{key}.{k}"), v),
            None => key.to_owned(),
        },
        _ => key.to_owned(),
    }
}

/// Defaults, then every layer's `[default]`, then every layer's selected profile.
fn merge_profile(layers: &[&Layer], profile: &str) -> toml::Table {
    let mut merged = defaults_table();
    for name in ["default", profile] {
        for layer in layers {
            if let Some(section) = layer.profiles.get(name) {
                deep_merge(&mut merged, section);
            }
        }
        if profile == "default" {
            break;
        }
    }
    merged
}

fn deep_merge(target: &mut toml::Table, overlay: &toml::Table) {
    for (key, value) in overlay {
        match (target.get_mut(key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                deep_merge(existing, incoming);
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The `ACGS_*` variables of `env` that set configuration: all but `ACGS_PROFILE`, `ACGS_LOG`
/// and `ACGS_CONFIG`.
pub fn env_settings(env: &ProcessEnv) -> Vec<&str> {
    env.vars
        .keys()
        .filter(|name| {
            name.strip_prefix("ACGS_")
                .is_some_and(|rest| !matches!(rest, "PROFILE" | "LOG" | "CONFIG"))
        })
        .map(String::as_str)
        .collect()
}

/// [`env_settings`] as a table; `__` nests.
fn env_layer(env: &ProcessEnv) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    for name in env_settings(env) {
        let (Some(rest), Some(raw)) = (name.strip_prefix("ACGS_"), env.vars.get(name)) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let origin = format!("environment variable {name}");
        insert_path(&mut table, &path, value);
        check_known_keys(&table, &defaults_table(), &[], &|_| origin.clone())?;
    }
    let cwd = env.cwd.clone();
    resolve_relative_paths(&mut table, &cwd);
    deserialize(table.clone(), "ACGS_* environment variables")?;
    Ok(table)
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

fn deserialize(table: toml::Table, origin: &str) -> Result<Config> {
    let mut merged = defaults_table();
    deep_merge(&mut merged, &table);
    merged
        .try_into()
        .map_err(|e: toml::de::Error| Error::InvalidConfig {
            key: "(value)".into(),
            origin: origin.to_owned(),
            reason: e.message().to_owned(),
        })
}

/// Refuse any value in `candidate` that is looser than in `base`: limits may only go down, guards
/// only get stricter, confirmation only turn on, alert thresholds only be added. Used for project
/// files and pipeline `settings`. Every field is named below, so that a new field does not
/// compile until someone decides how it may change.
pub fn check_tightens(base: &Config, candidate: &Config, origin: &str) -> Result<()> {
    let loosens = |key: &str| Error::LoosensLimit {
        key: key.to_owned(),
        origin: origin.to_owned(),
    };
    let Config {
        // Trusted-only keys (refused in project files by `check_project_keys`, never in
        // pipeline settings) or not a limit: `output_dir` is where files go, not how many.
        output_dir: _,
        user: _,
        key_command: _,
        audit: _,
        ledger: _,
        providers: _,
        models: _,
        mcp: _,
        tools: _,
        allow_user_override,
        allow_unknown_params,
        allow_safety_overrides,
        allow_project_env,
        cost_management,
        rate_limits,
        guard,
        network,
    } = candidate;
    let switches = [
        (
            "allow_unknown_params",
            base.allow_unknown_params,
            *allow_unknown_params,
        ),
        (
            "allow_safety_overrides",
            base.allow_safety_overrides,
            *allow_safety_overrides,
        ),
        (
            "allow_user_override",
            base.allow_user_override,
            *allow_user_override,
        ),
        (
            "allow_project_env",
            base.allow_project_env,
            *allow_project_env,
        ),
    ];
    if let Some((key, ..)) = switches
        .iter()
        .find(|(_, before, after)| *after && !*before)
    {
        return Err(loosens(key));
    }
    tightens_cost(&base.cost_management, cost_management).map_err(|key| loosens(&key))?;
    tightens_rates(&base.rate_limits, rate_limits).map_err(|key| loosens(&key))?;
    tightens_guard(&base.guard, guard).map_err(|key| loosens(&key))?;
    tightens_network(&base.network, network).map_err(|key| loosens(&key))
}

/// The `[cost_management]` key `candidate` loosens, if any.
fn tightens_cost(
    base: &CostManagement,
    candidate: &CostManagement,
) -> std::result::Result<(), String> {
    let CostManagement {
        max_cost_per_run,
        daily_limit,
        warn_threshold,
        require_confirmation,
        confirm_above,
        timezone,
        allow_unpriced_models,
        unverified_price_margin,
        alert_at,
        // A command to run: user config only (refused in project files).
        alert_command: _,
    } = candidate;
    let key = |name: &str| format!("cost_management.{name}");
    let money = [
        ("max_cost_per_run", base.max_cost_per_run, *max_cost_per_run),
        ("daily_limit", base.daily_limit, *daily_limit),
        ("warn_threshold", base.warn_threshold, *warn_threshold),
        ("confirm_above", base.confirm_above, *confirm_above),
    ];
    if let Some((name, ..)) = money.iter().find(|(_, before, after)| after > before) {
        return Err(key(name));
    }
    if base.require_confirmation && !*require_confirmation {
        return Err(key("require_confirmation"));
    }
    if *allow_unpriced_models && !base.allow_unpriced_models {
        return Err(key("allow_unpriced_models"));
    }
    if *timezone != base.timezone {
        return Err(key("timezone"));
    }
    if *unverified_price_margin < base.unverified_price_margin {
        return Err(key("unverified_price_margin"));
    }
    // Alerts may be added, never removed.
    if base.alert_at.iter().any(|f| !alert_at.contains(f)) {
        return Err(key("alert_at"));
    }
    Ok(())
}

/// The `[rate_limits]` key `candidate` loosens, if any: a provider's rate or in-flight cap
/// raised, or a limit dropped.
fn tightens_rates(base: &RateLimits, candidate: &RateLimits) -> std::result::Result<(), String> {
    for (provider, before) in base.iter() {
        let loosened = candidate.get(provider).is_none_or(|after| {
            after.per_minute > before.per_minute || after.in_flight > before.in_flight
        });
        if loosened {
            return Err(format!("rate_limits.{provider}"));
        }
    }
    Ok(())
}

/// The `[guard]` key `candidate` loosens, if any.
fn tightens_guard(base: &GuardConfig, candidate: &GuardConfig) -> std::result::Result<(), String> {
    let GuardConfig {
        max_prompt_chars,
        max_speech_chars,
        on_injection,
        blocklists,
        templates,
    } = candidate;
    let key = |name: &str| Err(format!("guard.{name}"));
    if *max_prompt_chars > base.max_prompt_chars {
        return key("max_prompt_chars");
    }
    if *max_speech_chars > base.max_speech_chars {
        return key("max_speech_chars");
    }
    if *on_injection < base.on_injection {
        return key("on_injection");
    }
    if base
        .blocklists
        .iter()
        .any(|list| !blocklists.contains(list))
    {
        return key("blocklists");
    }
    // A template wraps what the user wrote; replacing or dropping the user's would change what
    // is sent without the user's say.
    if *templates != base.templates {
        return key("templates");
    }
    Ok(())
}

/// The `[network]` key `candidate` loosens, if any.
fn tightens_network(
    base: &NetworkConfig,
    candidate: &NetworkConfig,
) -> std::result::Result<(), String> {
    let NetworkConfig {
        allow_http_loopback,
        // Trusted-only keys (refused in project files, never in pipeline settings).
        ca_bundle: _,
        proxy: _,
        connect_timeout_secs: _,
        request_timeout_secs: _,
        read_idle_timeout_secs: _,
    } = candidate;
    if *allow_http_loopback && !base.allow_http_loopback {
        return Err("network.allow_http_loopback".into());
    }
    Ok(())
}

/// Names of the layers, for messages: `user config`, `project file`.
impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Layer({}, trusted={})", self.origin, self.trusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        env: ProcessEnv,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut env = ProcessEnv {
                cwd: dir.path().join("project"),
                ..ProcessEnv::default()
            };
            fs_err::create_dir_all(&env.cwd).expect("mkdir");
            env.vars
                .insert("HOME".into(), dir.path().display().to_string());
            env.vars.insert(
                "XDG_CONFIG_HOME".into(),
                dir.path().join("cfg").display().to_string(),
            );
            Self { dir, env }
        }

        fn user_file(&self, text: &str) {
            let path = self.dir.path().join("cfg/acgs/config.toml");
            fs_err::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs_err::write(path, text).expect("write");
        }

        fn project_file(&self, text: &str) {
            fs_err::write(self.env.cwd.join("acgs.toml"), text).expect("write");
        }

        fn load(&self, profile: Option<&str>) -> Result<LoadedConfig> {
            Config::load(&ConfigSources::standard(&self.env, None, profile)?)
        }
    }

    #[test]
    fn defaults_match_the_design() {
        let fx = Fixture::new();
        let c = fx.load(None).expect("loads").config;
        assert_eq!(c.cost_management.max_cost_per_run, Usd::from_dollars(10));
        assert_eq!(c.cost_management.daily_limit, Usd::from_dollars(100));
        assert!(c.cost_management.require_confirmation);
        assert_eq!(
            c.rate_limits
                .get(ProviderId::ElevenLabs)
                .map(|l| l.in_flight),
            Some(2)
        );
        assert_eq!(
            c.providers.urls(ProviderId::Fal).url("queue_url"),
            Some("https://queue.fal.run")
        );
    }

    #[test]
    fn profiles_layer_over_default_and_env_wins() {
        let mut fx = Fixture::new();
        fx.user_file("[default.cost_management]\ndaily_limit = 50.0\n[dev.cost_management]\ndaily_limit = 20.0\n[prod.cost_management]\ndaily_limit = 80.0\n");
        assert_eq!(
            fx.load(None)
                .expect("dev")
                .config
                .cost_management
                .daily_limit,
            Usd::from_dollars(20)
        );
        assert_eq!(
            fx.load(Some("prod"))
                .expect("prod")
                .config
                .cost_management
                .daily_limit,
            Usd::from_dollars(80)
        );
        fx.env
            .vars
            .insert("ACGS_COST_MANAGEMENT__DAILY_LIMIT".into(), "7.5".into());
        assert_eq!(
            fx.load(None)
                .expect("env")
                .config
                .cost_management
                .daily_limit,
            Usd::parse("7.5").expect("usd")
        );
    }

    #[test]
    fn unknown_keys_name_key_and_file() {
        let fx = Fixture::new();
        fx.user_file("[default.guard]\nmax_prompt_chars = 10\nmax_prompt_charz = 5\n");
        let err = fx.load(None).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("guard.max_prompt_charz"), "{text}");
        assert!(text.contains("config.toml:3"), "the line: {text}");
        assert!(text.contains("did you mean max_prompt_chars?"), "{text}");
        fx.user_file("[dev]\n[dev.cost_managment]\ndaily_limit = 5\n");
        let text = fx.load(None).expect_err("section").to_string();
        assert!(
            text.contains("config.toml:2") && text.contains("did you mean cost_management?"),
            "{text}"
        );
    }

    #[test]
    fn bad_values_and_syntax_are_placed_by_line_and_key() {
        let fx = Fixture::new();
        fx.user_file("[default]\noutput_dir = \"out\"\n\n[default.cost_management]\nwarn_threshold = 1\ndaily_limit = \"lots\"\n");
        let err = fx.load(None).expect_err("value");
        let text = err.to_string();
        assert!(
            text.contains("`cost_management.daily_limit`") && text.contains("config.toml:6"),
            "{text}"
        );
        fx.user_file("[default]\noutput_dir = \"out\n");
        let err = fx.load(None).expect_err("syntax");
        assert_eq!(crate::UserFacing::code(&err), "config.syntax");
        let text = err.to_string();
        assert!(text.contains("config.toml:2: not valid TOML"), "{text}");
    }

    #[test]
    fn a_profile_asked_for_must_exist() {
        let fx = Fixture::new();
        fx.user_file("[staging.cost_management]\ndaily_limit = 3\n");
        assert!(fx.load(Some("staging")).is_ok());
        assert!(fx.load(Some("prod")).is_ok(), "built in");
        assert!(fx.load(None).is_ok(), "the default needs no table");
        let err = fx.load(Some("stagign")).expect_err("misspelt");
        assert_eq!(crate::UserFacing::code(&err), "config.unknown_profile");
        assert!(err.to_string().contains("did you mean staging?"), "{err}");
        let hint = crate::UserFacing::hint(&err).unwrap_or_default();
        assert!(hint.contains("default, dev, prod, staging"), "{hint}");
    }

    #[test]
    fn provider_tables_are_keyed_by_provider_and_misspellings_are_unknown_keys() {
        let fx = Fixture::new();
        fx.user_file("[default.providers.fal]\nqueue_url = \"https://q.example\"\n[default.rate_limits.gemini]\nper_minute = 5\nin_flight = 1\n");
        let c = fx.load(None).expect("valid").config;
        let fal = c.providers.urls(ProviderId::Fal);
        assert_eq!(fal.url("queue_url"), Some("https://q.example"));
        assert_eq!(
            fal.url("rest_url"),
            Some("https://rest.fal.ai"),
            "the rest kept"
        );
        assert_eq!(
            c.rate_limits.get(ProviderId::Gemini).map(|l| l.per_minute),
            Some(5)
        );
        for (text, key) in [
            (
                "[default.providers.fal]\nqueue_ur = \"https://q.example\"\n",
                "providers.fal.queue_ur",
            ),
            (
                "[default.providers.replicate]\nbase_url = \"https://r.example\"\n",
                "providers.replicate",
            ),
            (
                "[default.rate_limits.replicate]\nper_minute = 1\nin_flight = 1\n",
                "rate_limits.replicate",
            ),
        ] {
            let fx = Fixture::new();
            fx.user_file(text);
            let err = fx.load(None).expect_err(key);
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_env_keys_name_the_variable() {
        let mut fx = Fixture::new();
        fx.env
            .vars
            .insert("ACGS_NETWORK__ALLOW_HTTP_LOOPBAK".into(), "true".into());
        let text = fx.load(None).expect_err("unknown").to_string();
        assert!(text.contains("ACGS_NETWORK__ALLOW_HTTP_LOOPBAK"), "{text}");
    }

    #[test]
    fn project_files_cannot_set_trusted_keys() {
        for (text, key) in [
            (
                "[default.providers.fal]\nqueue_url = \"https://evil.example\"\n",
                "providers.fal.queue_url",
            ),
            (
                "[default]\nkey_command = [\"sh\", \"-c\", \"curl evil\"]\n",
                "key_command",
            ),
            (
                "[dev.network]\nallow_http_loopback = true\n",
                "network.allow_http_loopback",
            ),
            (
                "[default.cost_management]\nallow_unpriced_models = true\n",
                "cost_management.allow_unpriced_models",
            ),
            ("[default]\noutput_dir = \"/etc\"\n", "output_dir"),
            (
                "[default.mcp]\nsession_limit = \"500.00\"\n",
                "mcp.session_limit",
            ),
            // A program named by someone else's folder would be code execution.
            ("[default.tools]\nffmpeg = \"./evil.sh\"\n", "tools.ffmpeg"),
        ] {
            let fx = Fixture::new();
            fx.project_file(text);
            let err = fx.load(None).expect_err(key);
            assert_eq!(crate::error::UserFacing::code(&err), "config.untrusted_key");
            assert!(err.to_string().contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn project_files_may_tighten_but_not_loosen() {
        let fx = Fixture::new();
        fx.project_file("[default.cost_management]\ndaily_limit = 5\n");
        assert_eq!(
            fx.load(None)
                .expect("tightens")
                .config
                .cost_management
                .daily_limit,
            Usd::from_dollars(5)
        );
        let fx = Fixture::new();
        fx.project_file("[default.cost_management]\ndaily_limit = 5000\n");
        let err = fx.load(None).expect_err("loosens");
        assert!(err.to_string().contains("cost_management.daily_limit"));
        let fx = Fixture::new();
        fx.project_file("[dev.cost_management]\nrequire_confirmation = false\n");
        assert!(fx.load(None).is_err());
    }

    #[test]
    fn project_files_may_add_alerts_but_never_remove_one() {
        let fx = Fixture::new();
        fx.project_file("[default.cost_management]\nalert_at = []\n");
        let err = fx.load(None).expect_err("silencing the user's alerts");
        assert!(
            err.to_string().contains("cost_management.alert_at"),
            "{err}"
        );
        let fx = Fixture::new();
        fx.project_file("[default.cost_management]\nalert_at = [0.5, 0.8]\n");
        assert!(fx.load(None).is_err(), "dropping the 100% alert");
        let fx = Fixture::new();
        fx.project_file("[default.cost_management]\nalert_at = [0.25, 0.5, 0.8, 1.0]\n");
        let loaded = fx.load(None).expect("an added alert");
        assert_eq!(loaded.config.cost_management.alert_at.len(), 4);
    }

    #[test]
    fn explicit_config_is_trusted() {
        let fx = Fixture::new();
        let path = fx.dir.path().join("trusted.toml");
        fs_err::write(
            &path,
            "[default.providers.fal]\nqueue_url = \"http://127.0.0.1:9\"\n",
        )
        .expect("write");
        let sources = ConfigSources::standard(&fx.env, Some(path), None).expect("sources");
        let c = Config::load(&sources).expect("trusted").config;
        assert_eq!(
            c.providers.urls(ProviderId::Fal).url("queue_url"),
            Some("http://127.0.0.1:9")
        );
    }

    #[test]
    fn relative_paths_resolve_against_their_file() {
        let fx = Fixture::new();
        fx.user_file("[default.audit]\npath = \"logs/audit.jsonl\"\n");
        let loaded = fx.load(None).expect("loads");
        assert_eq!(
            loaded.audit_path(),
            fx.dir.path().join("cfg/acgs/logs/audit.jsonl")
        );
    }

    #[test]
    fn bad_profile_names_are_refused() {
        assert!(Profile::new("Prod").is_err());
        assert!(Profile::new("../x").is_err());
        assert!(Profile::new("staging-2").is_ok());
    }

    #[test]
    fn pipelines_cannot_raise_limits() {
        let base = Config::default();
        let mut raised = base.clone();
        raised.cost_management.max_cost_per_run = Usd::from_dollars(11);
        assert!(check_tightens(&base, &raised, "pipeline").is_err());
        let mut lowered = base.clone();
        lowered.cost_management.max_cost_per_run = Usd::from_dollars(1);
        lowered.guard.max_prompt_chars = 100;
        assert!(check_tightens(&base, &lowered, "pipeline").is_ok());
    }

    mod policy {
        use super::*;
        use proptest::prelude::*;

        fn money() -> impl Strategy<Value = Usd> {
            (0i64..1_000_000_000).prop_map(Usd::from_micros)
        }

        prop_compose! {
            fn limits()(per_run in money(), daily in money(), warn in money(), confirm in any::<bool>(),
                        margin in 1000u32..5000, prompt in 1u32..10_000, per_minute in 1u32..500, in_flight in 1u32..50)
                -> Config {
                let mut c = Config::default();
                c.cost_management.max_cost_per_run = per_run;
                c.cost_management.daily_limit = daily;
                c.cost_management.warn_threshold = warn;
                c.cost_management.require_confirmation = confirm;
                c.cost_management.unverified_price_margin = Ratio(margin);
                c.guard.max_prompt_chars = prompt;
                c.rate_limits.set(ProviderId::Fal, RateLimit { per_minute, in_flight });
                c
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever a pipeline's settings or a project file say, what passes the check never
            /// raises a configured limit or loosens a guard.
            #[test]
            fn nothing_that_passes_raises_a_limit(base in limits(), candidate in limits()) {
                if check_tightens(&base, &candidate, "pipeline").is_ok() {
                    let (b, c) = (&base.cost_management, &candidate.cost_management);
                    prop_assert!(c.max_cost_per_run <= b.max_cost_per_run);
                    prop_assert!(c.daily_limit <= b.daily_limit);
                    prop_assert!(c.warn_threshold <= b.warn_threshold);
                    prop_assert!(c.require_confirmation || !b.require_confirmation);
                    prop_assert!(c.unverified_price_margin >= b.unverified_price_margin);
                    prop_assert!(candidate.guard.max_prompt_chars <= base.guard.max_prompt_chars);
                    let (b, c) = (base.rate_limits.get(ProviderId::Fal), candidate.rate_limits.get(ProviderId::Fal));
                    prop_assert!(c.zip(b).is_some_and(|(c, b)| c.per_minute <= b.per_minute && c.in_flight <= b.in_flight));
                }
            }

            /// Raising any one limit by any amount is refused, naming that limit.
            #[test]
            fn raising_any_limit_is_refused(base in limits(), extra in 1i64..1_000_000, which in 0usize..3) {
                let mut raised = base.clone();
                let (key, field) = match which {
                    0 => ("cost_management.max_cost_per_run", &mut raised.cost_management.max_cost_per_run),
                    1 => ("cost_management.daily_limit", &mut raised.cost_management.daily_limit),
                    _ => ("cost_management.warn_threshold", &mut raised.cost_management.warn_threshold),
                };
                *field = field.saturating_add(Usd::from_micros(extra));
                let err = check_tightens(&base, &raised, "pipeline").expect_err("a raised limit");
                prop_assert!(err.to_string().contains(key), "{err}");
            }
        }
    }
}
