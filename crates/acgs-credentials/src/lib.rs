//! # acgs-credentials
//!
//! Credentials: where each provider key comes from, held as [`SecretString`] from the first read.
//!
//! Sources, first wins (DESIGN.md §3.2): the process environment; `./.env.<profile>` then `./.env`
//! (parsed without touching the environment, no `$VAR` expansion, refused when owned by someone
//! else or writable by group/others); the credentials file `$XDG_CONFIG_HOME/acgs/credentials`
//! (TOML, one table per profile, refused when group/others have any permission); `key_command`,
//! run only when a key is actually needed.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_core::ProviderId;
use acgs_core::config::Profile;
use acgs_core::env::ProcessEnv;
use acgs_core::error::{Error, Result};

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

pub mod command;

/// Largest `key_command` output accepted.
const KEY_COMMAND_MAX_OUTPUT: usize = 8 * 1024;

/// Where a key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A process environment variable.
    Environment(&'static str),
    /// A `.env` file in the current directory.
    DotEnv(PathBuf),
    /// The credentials file, in a profile table.
    CredentialsFile(PathBuf, String),
    /// The configured `key_command`.
    KeyCommand,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Environment(var) => write!(f, "environment ({var})"),
            Self::DotEnv(path) => write!(f, "{}", path.display()),
            Self::CredentialsFile(path, table) => write!(f, "{} [{table}]", path.display()),
            Self::KeyCommand => f.write_str("key_command"),
        }
    }
}

/// A key and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// The provider.
    pub provider: ProviderId,
    /// The key (for fal possibly `id:secret`).
    pub secret: SecretString,
    /// Where it was found.
    pub source: KeySource,
    /// Lower-priority sources that also hold a key for this provider.
    pub shadowed: Vec<KeySource>,
    /// Notes for the user (e.g. `GOOGLE_API_KEY` and `GEMINI_API_KEY` differ).
    pub warnings: Vec<String>,
}

impl LoadedKey {
    /// 12 hex digits of the key's sha256: enough to compare keys, useless to an attacker.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        fingerprint(self.secret.expose_secret())
    }
}

/// 12 hex digits of a value's sha256.
#[must_use]
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    hex::encode(digest)[..12].to_owned()
}

/// The variable passed to `key_command` for each provider.
const fn primary_variable(provider: ProviderId) -> &'static str {
    match provider {
        ProviderId::Fal => "FAL_KEY",
        ProviderId::Gemini => "GEMINI_API_KEY",
        ProviderId::ElevenLabs => "ELEVENLABS_API_KEY",
        ProviderId::Local => "",
    }
}

/// Where to look for keys.
#[derive(Debug, Clone)]
pub struct CredentialSources {
    /// The environment snapshot (variables, and the current directory for `.env` files).
    pub env: ProcessEnv,
    /// The selected profile.
    pub profile: Profile,
    /// The credentials file.
    pub credentials_file: PathBuf,
    /// `key_command` from the user configuration (empty: none).
    pub key_command: Vec<String>,
    /// How long `key_command` may run.
    pub key_command_timeout: Duration,
}

impl CredentialSources {
    /// The standard sources for this environment and profile.
    #[must_use]
    pub fn standard(env: &ProcessEnv, profile: &Profile, key_command: Vec<String>) -> Self {
        Self {
            env: env.clone(),
            profile: profile.clone(),
            credentials_file: env.paths().credentials(),
            key_command,
            key_command_timeout: Duration::from_secs(30),
        }
    }
}

/// A variable set read from one source.
struct SourceVars {
    source: SourceKind,
    vars: BTreeMap<String, String>,
}

#[derive(Clone)]
enum SourceKind {
    Environment,
    DotEnv(PathBuf),
    CredentialsFile(PathBuf, String),
}

/// Every key acgs can find, resolved lazily where a source costs something (`key_command`).
pub struct Credentials {
    sources: Vec<SourceVars>,
    refused: Vec<Error>,
    key_command: Vec<String>,
    command_env: BTreeMap<String, String>,
    timeout: Duration,
    from_command: Mutex<BTreeMap<ProviderId, Arc<LoadedKey>>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("sources", &self.sources.len())
            .field("key_command", &!self.key_command.is_empty())
            .finish_non_exhaustive()
    }
}

/// What `acgs keys status` shows for one provider, without running `key_command`.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// The provider.
    pub provider: ProviderId,
    /// The key that would be used, if found without running a command.
    pub key: Option<LoadedKey>,
    /// Whether `key_command` would be tried.
    pub key_command_configured: bool,
}

impl Credentials {
    /// Read the environment, `.env` files and the credentials file (never runs `key_command`).
    #[must_use]
    pub fn from_env(sources: &CredentialSources) -> Self {
        let mut found = vec![SourceVars {
            source: SourceKind::Environment,
            vars: sources.env.vars.clone(),
        }];
        let mut refused = Vec::new();
        let cwd = &sources.env.cwd;
        for name in [format!(".env.{}", sources.profile), ".env".to_owned()] {
            let path = cwd.join(name);
            match read_dotenv(&path) {
                Ok(Some(vars)) => found.push(SourceVars {
                    source: SourceKind::DotEnv(path),
                    vars,
                }),
                Ok(None) => {}
                Err(e) => refused.push(e),
            }
        }
        match read_credentials_file(&sources.credentials_file, &sources.profile) {
            Ok(Some((table, vars))) => found.push(SourceVars {
                source: SourceKind::CredentialsFile(sources.credentials_file.clone(), table),
                vars,
            }),
            Ok(None) => {}
            Err(e) => refused.push(e),
        }
        let command_env = crate::command::limited_env(&sources.env.vars);
        Self {
            sources: found,
            refused,
            key_command: sources.key_command.clone(),
            command_env,
            timeout: sources.key_command_timeout,
            from_command: Mutex::new(BTreeMap::new()),
        }
    }

    /// The key for `provider`, running `key_command` if no other source has one.
    pub fn key(&self, provider: ProviderId) -> Result<Arc<LoadedKey>> {
        if let Some(key) = self.find(provider) {
            return Ok(Arc::new(key));
        }
        if !self.key_command.is_empty() {
            let mut cache = self
                .from_command
                .lock()
                .map_err(|_| Error::KeyCommandFailed {
                    reason: "internal lock poisoned".into(),
                })?;
            if let Some(key) = cache.get(&provider) {
                return Ok(Arc::clone(key));
            }
            let secret = run_key_command(
                &self.key_command,
                primary_variable(provider),
                &self.command_env,
                self.timeout,
            )?;
            let key = Arc::new(LoadedKey {
                provider,
                secret,
                source: KeySource::KeyCommand,
                shadowed: Vec::new(),
                warnings: Vec::new(),
            });
            cache.insert(provider, Arc::clone(&key));
            return Ok(key);
        }
        if let Some(refusal) = self.refused.first() {
            return Err(Error::UnsafeCredentialSource {
                path: match refusal {
                    Error::UnsafeCredentialSource { path, .. } => path.clone(),
                    _ => PathBuf::new(),
                },
                reason: refusal.to_string(),
            });
        }
        Err(Error::MissingKey {
            provider: provider.as_str(),
            variables: provider.key_variables(),
        })
    }

    /// What each provider's key would be, without running `key_command`.
    #[must_use]
    pub fn status(&self) -> Vec<KeyStatus> {
        ProviderId::KEYED
            .into_iter()
            .map(|provider| KeyStatus {
                provider,
                key: self.find(provider),
                key_command_configured: !self.key_command.is_empty(),
            })
            .collect()
    }

    /// Sources that were refused (unsafe permissions, malformed), for warnings.
    #[must_use]
    pub fn refused(&self) -> &[Error] {
        &self.refused
    }

    /// Every secret found so far that looks like a credential (for the redactor), without
    /// running `key_command`: a shadowed `.env` line such as `FAL_KEY_ID=output` must not mask
    /// the word "output" in everything acgs prints.
    #[must_use]
    pub fn known_secrets(&self) -> Vec<SecretString> {
        let mut out: Vec<SecretString> = ProviderId::KEYED
            .into_iter()
            .filter_map(|p| self.find(p).map(|k| k.secret))
            .filter(|k| looks_like_credential(k.expose_secret()))
            .collect();
        for source in &self.sources {
            for name in [
                "FAL_KEY",
                "FAL_KEY_ID",
                "FAL_KEY_SECRET",
                "GEMINI_API_KEY",
                "GOOGLE_API_KEY",
                "ELEVENLABS_API_KEY",
            ] {
                if let Some(v) = source.vars.get(name).filter(|v| looks_like_credential(v)) {
                    out.push(SecretString::from(v.clone()));
                }
            }
        }
        out
    }

    /// Keys a project's `.env` provides although a source of the user's own (the credentials
    /// file, `key_command`) has one: each provider, the `.env` and what it shadows.
    #[must_use]
    pub fn project_shadowing(&self) -> Vec<(ProviderId, KeySource, KeySource)> {
        ProviderId::KEYED
            .into_iter()
            .filter_map(|provider| {
                let key = self.find(provider)?;
                if !matches!(key.source, KeySource::DotEnv(_)) {
                    return None;
                }
                let trusted = key
                    .shadowed
                    .iter()
                    .find(|s| matches!(s, KeySource::CredentialsFile(..)))
                    .cloned()
                    .or_else(|| (!self.key_command.is_empty()).then_some(KeySource::KeyCommand))?;
                Some((provider, key.source, trusted))
            })
            .collect()
    }

    fn find(&self, provider: ProviderId) -> Option<LoadedKey> {
        let mut hits = self
            .sources
            .iter()
            .filter_map(|s| lookup(provider, &s.vars).map(|hit| (s, hit)));
        let (first, (secret, variable, warnings)) = hits.next()?;
        let shadowed = hits
            .map(|(s, (_, var, _))| to_key_source(&s.source, var))
            .collect();
        Some(LoadedKey {
            provider,
            secret: SecretString::from(secret),
            source: to_key_source(&first.source, variable),
            shadowed,
            warnings,
        })
    }
}

fn to_key_source(kind: &SourceKind, variable: &'static str) -> KeySource {
    match kind {
        SourceKind::Environment => KeySource::Environment(variable),
        SourceKind::DotEnv(path) => KeySource::DotEnv(path.clone()),
        SourceKind::CredentialsFile(path, table) => {
            KeySource::CredentialsFile(path.clone(), table.clone())
        }
    }
}

/// The key for `provider` in one set of variables: `(value, variable, warnings)`.
fn lookup(
    provider: ProviderId,
    vars: &BTreeMap<String, String>,
) -> Option<(String, &'static str, Vec<String>)> {
    let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    match provider {
        ProviderId::Fal => get("FAL_KEY")
            .map(|k| (k.to_owned(), "FAL_KEY", Vec::new()))
            .or_else(|| {
                let (id, secret) = (get("FAL_KEY_ID")?, get("FAL_KEY_SECRET")?);
                Some((
                    format!("{id}:{secret}"),
                    "FAL_KEY_ID+FAL_KEY_SECRET",
                    Vec::new(),
                ))
            }),
        ProviderId::Gemini => match (get("GEMINI_API_KEY"), get("GOOGLE_API_KEY")) {
            (Some(gemini), google) => {
                let warnings = match google {
                    Some(g) if g != gemini => {
                        vec!["GEMINI_API_KEY and GOOGLE_API_KEY are both set and differ; using GEMINI_API_KEY".into()]
                    }
                    _ => Vec::new(),
                };
                Some((gemini.to_owned(), "GEMINI_API_KEY", warnings))
            }
            (None, Some(google)) => Some((google.to_owned(), "GOOGLE_API_KEY", Vec::new())),
            (None, None) => None,
        },
        ProviderId::ElevenLabs => {
            get("ELEVENLABS_API_KEY").map(|k| (k.to_owned(), "ELEVENLABS_API_KEY", Vec::new()))
        }
        ProviderId::Local => None,
    }
}

/// Whether `value` could be a credential: at least 16 characters, no whitespace, at least 8
/// different characters (every provider's key format passes; words and paths mostly do not).
fn looks_like_credential(value: &str) -> bool {
    let distinct: std::collections::BTreeSet<char> = value.chars().collect();
    value.len() >= 16 && !value.chars().any(char::is_whitespace) && distinct.len() >= 8
}

/// Open a file and check its owner and permission bits on the open handle.
fn open_checked(path: &Path, forbidden_mode: u32, rule: &str) -> Result<Option<fs_err::File>> {
    let file = match acgs_core::files::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::UnsafeCredentialSource {
                path: path.to_owned(),
                reason: if e.kind() == std::io::ErrorKind::InvalidInput {
                    e.to_string()
                } else {
                    e.kind().to_string()
                },
            });
        }
    };
    let meta = file.metadata().map_err(|e| Error::UnsafeCredentialSource {
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })?;
    let unsafe_reason = if !meta.is_file() {
        Some("not a regular file".to_owned())
    } else if meta.uid() != rustix::process::getuid().as_raw() {
        Some("it is owned by another user".to_owned())
    } else if meta.mode() & forbidden_mode != 0 {
        Some(format!(
            "its permissions are {:o}; {rule}",
            meta.mode() & 0o777
        ))
    } else {
        None
    };
    match unsafe_reason {
        Some(reason) => Err(Error::UnsafeCredentialSource {
            path: path.to_owned(),
            reason,
        }),
        None => Ok(Some(file)),
    }
}

fn read_limited(mut file: fs_err::File, path: &Path) -> Result<String> {
    let mut text = String::new();
    file.by_ref()
        .take(1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| Error::UnsafeCredentialSource {
            path: path.to_owned(),
            reason: format!("unreadable: {}", e.kind()),
        })?;
    Ok(text)
}

/// Read a `.env` file; `Ok(None)` when it does not exist.
fn read_dotenv(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    let Some(file) = open_checked(path, 0o022, "group and others must not be able to write it")?
    else {
        return Ok(None);
    };
    Ok(Some(parse_dotenv(&read_limited(file, path)?)))
}

/// `KEY=value` lines; `export ` allowed; single quotes literal, double quotes with `\n \" \\`
/// escapes; `#` starts a comment outside quotes; no variable expansion.
///
/// Kept by hand rather than taken from `dotenvy`: dotenvy 0.15 expands `$VAR` and `${VAR}`
/// from the process environment with no way to turn it off, so a project `.env` holding
/// `FAL_KEY=$GEMINI_API_KEY` would hand one provider's key to another
/// (`dotenv_parsing_is_literal` fails under it).
#[must_use]
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        vars.insert(key.to_owned(), parse_dotenv_value(raw.trim()));
    }
    vars
}

fn parse_dotenv_value(raw: &str) -> String {
    if let Some(rest) = raw.strip_prefix('\'') {
        return rest.split('\'').next().unwrap_or_default().to_owned();
    }
    if let Some(rest) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => break,
                },
                other => out.push(other),
            }
        }
        return out;
    }
    let value = raw.find(" #").map_or(raw, |i| &raw[..i]);
    value.trim().to_owned()
}

/// Read the profile's table (or `[default]`) from the credentials file.
fn read_credentials_file(
    path: &Path,
    profile: &Profile,
) -> Result<Option<(String, BTreeMap<String, String>)>> {
    let Some(file) = open_checked(path, 0o077, "it must be readable only by you (chmod 600)")?
    else {
        return Ok(None);
    };
    let text = read_limited(file, path)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| Error::UnsafeCredentialSource {
        path: path.to_owned(),
        reason: format!("not valid TOML ({})", e.message()),
    })?;
    for name in [profile.as_str(), "default"] {
        if let Some(toml::Value::Table(section)) = table.get(name) {
            let vars = section
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect();
            return Ok(Some((name.to_owned(), vars)));
        }
    }
    Ok(None)
}

/// Run `key_command` and trim its output straight into a secret.
fn run_key_command(
    argv: &[String],
    variable: &str,
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<SecretString> {
    let fail = |reason: String| Error::KeyCommandFailed { reason };
    let output = crate::command::run(argv, &[variable], env, timeout, KEY_COMMAND_MAX_OUTPUT)
        .map_err(fail)?;
    let text = String::from_utf8(output)
        .map_err(|_| fail("printed something that is not UTF-8".into()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("printed nothing".into()));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    struct Fixture {
        _dir: tempfile::TempDir,
        sources: CredentialSources,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = ProcessEnv {
            cwd: dir.path().to_owned(),
            ..ProcessEnv::default()
        };
        env.vars.insert("PATH".into(), "/usr/bin:/bin".into());
        let sources = CredentialSources {
            env,
            profile: Profile::default(),
            credentials_file: dir.path().join("credentials"),
            key_command: Vec::new(),
            key_command_timeout: Duration::from_secs(5),
        };
        Fixture { _dir: dir, sources }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        fs_err::write(path, text).expect("write");
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn environment_beats_dotenv_which_beats_the_credentials_file() {
        let mut fx = fixture();
        write(
            &fx.sources.env.cwd.join(".env"),
            "FAL_KEY=from-dotenv\n",
            0o600,
        );
        write(
            &fx.sources.credentials_file,
            "[dev]\nFAL_KEY = \"from-file\"\n",
            0o600,
        );
        let creds = Credentials::from_env(&fx.sources);
        let key = creds.key(ProviderId::Fal).expect("found");
        assert_eq!(key.secret.expose_secret(), "from-dotenv");
        assert_eq!(key.shadowed.len(), 1);
        fx.sources
            .env
            .vars
            .insert("FAL_KEY".into(), "from-env".into());
        let key = Credentials::from_env(&fx.sources)
            .key(ProviderId::Fal)
            .expect("found");
        assert_eq!(key.secret.expose_secret(), "from-env");
        assert_eq!(key.source, KeySource::Environment("FAL_KEY"));
        assert_eq!(key.shadowed.len(), 2);
    }

    #[test]
    fn fal_id_and_secret_come_from_one_source() {
        let mut fx = fixture();
        fx.sources.env.vars.insert("FAL_KEY_ID".into(), "id".into());
        write(
            &fx.sources.env.cwd.join(".env"),
            "FAL_KEY_SECRET=secret\n",
            0o600,
        );
        assert!(
            Credentials::from_env(&fx.sources)
                .key(ProviderId::Fal)
                .is_err()
        );
        fx.sources
            .env
            .vars
            .insert("FAL_KEY_SECRET".into(), "secret".into());
        let key = Credentials::from_env(&fx.sources)
            .key(ProviderId::Fal)
            .expect("pair");
        assert_eq!(key.secret.expose_secret(), "id:secret");
    }

    #[test]
    fn gemini_warns_when_both_variables_differ() {
        let mut fx = fixture();
        fx.sources
            .env
            .vars
            .insert("GEMINI_API_KEY".into(), "a".into());
        fx.sources
            .env
            .vars
            .insert("GOOGLE_API_KEY".into(), "b".into());
        let key = Credentials::from_env(&fx.sources)
            .key(ProviderId::Gemini)
            .expect("found");
        assert_eq!(key.secret.expose_secret(), "a");
        assert_eq!(key.warnings.len(), 1);
    }

    #[test]
    fn unsafe_files_are_refused() {
        let fx = fixture();
        write(&fx.sources.env.cwd.join(".env"), "FAL_KEY=x\n", 0o666);
        let err = Credentials::from_env(&fx.sources)
            .key(ProviderId::Fal)
            .expect_err("refused");
        assert_eq!(
            acgs_core::error::UserFacing::code(&err),
            "credentials.unsafe_source"
        );
        let fx = fixture();
        write(
            &fx.sources.credentials_file,
            "[dev]\nFAL_KEY = \"x\"\n",
            0o640,
        );
        assert!(
            Credentials::from_env(&fx.sources)
                .key(ProviderId::Fal)
                .is_err()
        );
    }

    #[test]
    fn missing_key_is_a_clear_auth_error() {
        let fx = fixture();
        let err = Credentials::from_env(&fx.sources)
            .key(ProviderId::ElevenLabs)
            .expect_err("missing");
        assert_eq!(acgs_core::error::UserFacing::kind(&err).exit_code(), 5);
        assert!(
            acgs_core::error::UserFacing::hint(&err)
                .unwrap_or_default()
                .contains("ELEVENLABS_API_KEY")
        );
    }

    #[test]
    fn dotenv_parsing_is_literal() {
        let vars = parse_dotenv(
            "# comment\nexport A=1\nB='$HOME x'\nC=\"line\\nnext\"\nD=plain # note\nbad line\nE=$A\n",
        );
        assert_eq!(vars.get("A").map(String::as_str), Some("1"));
        assert_eq!(vars.get("B").map(String::as_str), Some("$HOME x"));
        assert_eq!(vars.get("C").map(String::as_str), Some("line\nnext"));
        assert_eq!(vars.get("D").map(String::as_str), Some("plain"));
        assert_eq!(vars.get("E").map(String::as_str), Some("$A"));
    }

    #[test]
    fn key_command_runs_only_when_needed_and_gets_a_minimal_environment() {
        let mut fx = fixture();
        fx.sources
            .env
            .vars
            .insert("SECRET_ELSEWHERE".into(), "leak".into());
        fx.sources.key_command = vec![
            "/bin/sh".into(),
            "-c".into(),
            "printf '  k-%s-%s  \\n' \"$1\" \"${SECRET_ELSEWHERE:-none}\"".into(),
            "sh".into(),
        ];
        let creds = Credentials::from_env(&fx.sources);
        assert!(
            creds.status().iter().all(|s| s.key.is_none()),
            "status never runs the command"
        );
        let key = creds.key(ProviderId::Fal).expect("command key");
        assert_eq!(key.secret.expose_secret(), "k-FAL_KEY-none");
        assert_eq!(key.source, KeySource::KeyCommand);
    }

    #[test]
    fn key_command_failures_are_reported_without_output() {
        for (script, expected) in [
            ("echo secret-output; exit 3", "exited"),
            ("head -c 9000 /dev/zero | tr '\\0' a", "8 KiB"),
            ("true", "nothing"),
            ("sleep 5", "timed out"),
        ] {
            let mut fx = fixture();
            fx.sources.key_command_timeout = Duration::from_millis(300);
            fx.sources.key_command =
                vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()];
            let err = Credentials::from_env(&fx.sources)
                .key(ProviderId::Fal)
                .expect_err(script);
            let text = err.to_string();
            assert!(text.contains(expected), "{script}: {text}");
            assert!(!text.contains("secret-output"));
            assert_eq!(
                acgs_core::error::UserFacing::code(&err),
                "credentials.key_command_failed"
            );
        }
    }
}
