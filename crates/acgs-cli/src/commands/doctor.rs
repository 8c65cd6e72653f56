//! `acgs doctor [DIR] [--history]`: the security checklist, ticked by acgs — pass, warn or fail
//! per check, exit 7 on any failure. Secrets are never shown: a finding names the file, line or
//! commit and the kind of key.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use acgs_core::ProviderId;
use acgs_core::error::{ErrorKind, UserFacing};
use acgs_core::tools::Tool;
use acgs_credentials::{CredentialSources, Credentials, KeySource};
use acgs_storage::keys::{KeyAgeStore, ROTATION_DAYS};
use serde_json::json;

use crate::app::App;
use crate::cli::DoctorArgs;
use crate::failure::{CliError, CmdResult, Failure};

/// The variables keys are read from (removed to compare the keys files hold).
const KEY_VARIABLES: [&str; 6] = [
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "ELEVENLABS_API_KEY",
];

/// Files larger than this are not scanned for credentials.
const SCAN_CAP: u64 = 1024 * 1024;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Check {
    level: Level,
    code: &'static str,
    message: String,
}

/// Failed checks (exit 7).
#[derive(Debug, thiserror::Error)]
#[error("{0} check(s) failed")]
pub(crate) struct DoctorFailed(usize);

impl UserFacing for DoctorFailed {
    fn code(&self) -> &'static str {
        "doctor.failed"
    }
    fn kind(&self) -> ErrorKind {
        ErrorKind::Check
    }
    fn hint(&self) -> Option<String> {
        Some("fix each FAIL line; docs/security.md explains every check".into())
    }
}

/// Settings given to every git command `doctor` runs; on the command line they win over the
/// repository's configuration.
const GIT_SAFETY: &[&str] = &[
    "--no-pager",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.pager=cat",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "diff.external=",
    "-c",
    "log.showSignature=false",
    "-c",
    "gpg.program=false",
    "-c",
    "gpg.ssh.program=false",
    "-c",
    "gpg.x509.program=false",
    "-c",
    "protocol.allow=never",
];

struct Doctor<'a> {
    app: &'a App,
    dir: PathBuf,
    checks: Vec<Check>,
}

impl Doctor<'_> {
    fn add(&mut self, level: Level, code: &'static str, message: impl Into<String>) {
        self.checks.push(Check {
            level,
            code,
            message: message.into(),
        });
    }

    /// Run git in the folder with the folder's own configuration neutralised: a repository is
    /// someone else's, and its `.git/config` can name programs git would run (an fsmonitor
    /// hook, textconv and external diff drivers, a signature program, hooks, a pager).
    fn git(&self, args: &[&str]) -> Option<std::process::Output> {
        Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(GIT_SAFETY)
            .args(args)
            .env_clear()
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("PATH", self.app.env.var("PATH").unwrap_or("/usr/bin:/bin"))
            .env("HOME", self.app.loaded.paths.home.as_os_str())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
    }
}

/// `acgs doctor`.
pub(crate) async fn run(app: &App, args: &DoctorArgs) -> CmdResult {
    let dir = args
        .dir
        .as_ref()
        .map_or_else(|| app.env.cwd.clone(), |d| app.env.cwd.join(d));
    if !fs_err::metadata(&dir).is_ok_and(|m| m.is_dir()) {
        let shown = crate::ui::printable(&dir.display().to_string());
        return Err(CliError::Usage(format!("{shown} is not a folder")).into());
    }
    let mut doctor = Doctor {
        app,
        dir,
        checks: Vec::new(),
    };
    let tracked = tracked_files(&mut doctor);
    if let Some(files) = &tracked {
        scan_tracked(&mut doctor, files);
        if args.history {
            scan_history(&mut doctor);
        }
    }
    env_files(&mut doctor, tracked.as_deref());
    credentials_file(&mut doctor);
    keys(&mut doctor);
    settings(&mut doctor);
    audit_chain(&mut doctor).await;
    output_folder(&mut doctor);
    media_tools(&mut doctor);
    report(app, &doctor.checks)
}

/// The files git tracks, or `None` (with a warning) outside a repository.
fn tracked_files(d: &mut Doctor<'_>) -> Option<Vec<String>> {
    match d.git(&["ls-files", "-z"]) {
        Some(out) if out.status.success() => Some(
            String::from_utf8_lossy(&out.stdout)
                .split('\0')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => {
            d.add(Level::Warn, "doctor.not_a_repository", format!("{} is not a git repository (or git is missing): tracked files were not checked", d.dir.display()));
            None
        }
    }
}

/// A line that says its credential is a deliberate fake (a test fixture) is not a finding:
/// `acgs:allow-credential`, or gitleaks' `gitleaks:allow`.
fn allowed_line(line: &str) -> bool {
    line.contains("acgs:allow-credential") || line.contains("gitleaks:allow")
}

/// Files (paths relative to the folder, one per line) listed in `.acgs-allow-credentials`: test
/// fixtures that hold fake credentials on purpose and cannot carry a marker on each line.
fn allowed_files(d: &Doctor<'_>) -> Vec<String> {
    acgs_core::files::read_regular_text(&d.dir.join(ALLOW_FILE), SCAN_CAP)
        .map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The list of files allowed to hold fake credentials.
const ALLOW_FILE: &str = ".acgs-allow-credentials";

/// The credential scanner over every tracked text file (links are not followed: git keeps the
/// link, not what it points at).
fn scan_tracked(d: &mut Doctor<'_>, files: &[String]) {
    let allowed_paths = allowed_files(d);
    let (mut found, mut allowed) = (0, 0);
    for name in files {
        let path = d.dir.join(name);
        let plain = fs_err::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        let Some(text) = plain
            .then(|| acgs_core::files::read_regular(&path, SCAN_CAP).ok())
            .flatten()
        else {
            continue;
        };
        if text.contains(&0) {
            continue;
        }
        let listed = allowed_paths.iter().any(|p| p == name);
        for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
            let Some(finding) = acgs_guard::scan::first_refusal(line) else {
                continue;
            };
            if listed || allowed_line(line) {
                allowed += 1;
                continue;
            }
            found += 1;
            d.add(Level::Fail, "doctor.tracked_credential", format!("{name}:{}: a {} is committed; remove it, rotate the key, and keep keys in the environment or an ignored .env", i + 1, finding.rule));
        }
    }
    if found == 0 {
        let marked = if allowed > 0 {
            format!(" ({allowed} deliberate fakes marked as such)")
        } else {
            String::new()
        };
        d.add(
            Level::Pass,
            "doctor.tracked_credential",
            format!("no credentials in {} tracked files{marked}", files.len()),
        );
    }
}

/// The credential scanner over every added line in the history.
fn scan_history(d: &mut Doctor<'_>) {
    let log = [
        "log",
        "-p",
        "--all",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-show-signature",
    ];
    let Some(out) = d.git(&log) else {
        return;
    };
    let mut commit = String::new();
    let mut found = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(hash) = line.strip_prefix("commit ") {
            commit = hash.chars().take(12).collect();
        } else if line.starts_with('+')
            && !line.starts_with("+++")
            && let Some(finding) = acgs_guard::scan::first_refusal(line)
        {
            found += 1;
            d.add(
                Level::Fail,
                "doctor.history_credential",
                format!(
                    "commit {commit} added a {}; rotate that key (rewriting history is not enough)",
                    finding.rule
                ),
            );
        }
    }
    if found == 0 {
        d.add(
            Level::Pass,
            "doctor.history_credential",
            "no credentials in the git history",
        );
    }
}

/// `.env` files: tracked, not ignored, or readable by others.
fn env_files(d: &mut Doctor<'_>, tracked: Option<&[String]>) {
    let names: Vec<String> = fs_err::read_dir(&d.dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| (n == ".env" || n.starts_with(".env.")) && n != ".env.example")
                .collect()
        })
        .unwrap_or_default();
    let mut bad = false;
    if let Some(tracked) = tracked {
        for name in names.iter().filter(|n| tracked.contains(n)) {
            bad = true;
            d.add(
                Level::Fail,
                "doctor.env_tracked",
                format!("{name} is committed to git; remove it from the index and rotate its keys"),
            );
        }
        let ignored = |name: &str| {
            d.git(&["check-ignore", "-q", "--no-index", name])
                .is_some_and(|o| o.status.success())
        };
        for name in names.iter().chain(std::iter::once(&".env".to_owned())) {
            if !ignored(name) {
                bad = true;
                let level = if names.contains(name) {
                    Level::Fail
                } else {
                    Level::Warn
                };
                d.add(level, "doctor.env_not_ignored", format!("{name} is not ignored by git; add `.env` and `.env.*` (with `!.env.example`) to .gitignore"));
                break;
            }
        }
    }
    for name in &names {
        let mode = fs_err::metadata(d.dir.join(name)).map_or(0, |m| m.permissions().mode() & 0o777);
        if mode & 0o077 != 0 {
            bad = true;
            d.add(
                Level::Fail,
                "doctor.env_permissions",
                format!("{name} is mode {mode:04o}; others can read its keys — chmod 600 {name}"),
            );
        }
    }
    if !bad {
        d.add(
            Level::Pass,
            "doctor.env_files",
            format!("{} .env file(s), private and ignored", names.len()),
        );
    }
}

fn credentials_file(d: &mut Doctor<'_>) {
    let path = d.app.env.paths().credentials();
    match fs_err::metadata(&path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => d.add(
            Level::Fail,
            "doctor.credentials_permissions",
            format!(
                "{} is mode {:04o}; chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            ),
        ),
        Ok(_) => d.add(
            Level::Pass,
            "doctor.credentials_permissions",
            "the credentials file is private (0600)",
        ),
        Err(_) => {}
    }
}

/// Key ages, and the same key serving dev and prod.
fn keys(d: &mut Doctor<'_>) {
    let statuses = d.app.credentials.status();
    let fingerprints: Vec<String> = statuses
        .iter()
        .filter_map(|s| Some(s.key.as_ref()?.fingerprint()))
        .collect();
    let store = KeyAgeStore::new(d.app.loaded.paths.state_file("keys.json"));
    let ages = store.observe(&fingerprints).unwrap_or_default();
    for status in &statuses {
        let Some(key) = &status.key else { continue };
        match ages.get(&key.fingerprint()) {
            Some(age) if *age >= ROTATION_DAYS => d.add(Level::Warn, "doctor.key_age", format!("the {} key ({}) was first seen {age} days ago; rotate it (every {ROTATION_DAYS} days)", status.provider, key.source)),
            _ => d.add(Level::Pass, "doctor.key_age", format!("the {} key is younger than {ROTATION_DAYS} days", status.provider)),
        }
    }
    shared_keys(d);
    project_env(d);
}

/// A project `.env` that shadows a key of the user's own (warned on every command).
fn project_env(d: &mut Doctor<'_>) {
    if d.app.config().allow_project_env {
        return;
    }
    let shadowing = d.app.credentials.project_shadowing();
    let level = if d.app.loaded.profile.as_str() == "prod" {
        Level::Fail
    } else {
        Level::Warn
    };
    for (provider, project, trusted) in &shadowing {
        d.add(level, "doctor.project_env_shadows", format!("{project} holds a {provider} key that shadows yours from {trusted}; remove it, or set allow_project_env = true"));
    }
    if shadowing.is_empty() {
        d.add(
            Level::Pass,
            "doctor.project_env_shadows",
            "no project .env shadows a key of yours",
        );
    }
}

/// Keys from files (not the environment, which every profile shares) for one profile.
fn file_keys(d: &Doctor<'_>, profile: &str) -> Vec<(ProviderId, String, KeySource)> {
    let Ok(profile) = acgs_core::config::Profile::new(profile) else {
        return Vec::new();
    };
    let mut env = d.app.env.clone();
    env.cwd.clone_from(&d.dir);
    env.vars
        .retain(|name, _| !KEY_VARIABLES.contains(&name.as_str()));
    let credentials =
        Credentials::from_env(&CredentialSources::standard(&env, &profile, Vec::new()));
    credentials
        .status()
        .into_iter()
        .filter_map(|s| {
            let key = s.key?;
            Some((s.provider, key.fingerprint(), key.source))
        })
        .collect()
}

fn shared_keys(d: &mut Doctor<'_>) {
    let dev = file_keys(d, "dev");
    let prod = file_keys(d, "prod");
    let specific = |source: &KeySource, profile: &str| match source {
        KeySource::DotEnv(path) => path
            .file_name()
            .is_some_and(|n| n.to_string_lossy() == format!(".env.{profile}")),
        KeySource::CredentialsFile(_, table) => table == profile,
        _ => false,
    };
    let mut shared = false;
    for (provider, fp, dev_source) in &dev {
        if let Some((_, _, prod_source)) = prod.iter().find(|(p, f, _)| p == provider && f == fp) {
            let level = match (specific(dev_source, "dev"), specific(prod_source, "prod")) {
                (true, true) => Level::Fail,
                (false, false) => continue,
                _ => Level::Warn,
            };
            shared = true;
            d.add(level, "doctor.shared_key", format!("the same {provider} key serves the dev and prod profiles ({dev_source}, {prod_source}); give prod its own key"));
        }
    }
    if !shared {
        d.add(
            Level::Pass,
            "doctor.shared_key",
            "dev and prod do not share a key from a file",
        );
    }
}

fn settings(d: &mut Doctor<'_>) {
    let config = d.app.config();
    let cost = &config.cost_management;
    if cost.require_confirmation {
        d.add(
            Level::Pass,
            "doctor.cost_limits",
            format!(
                "limits ${} per run, ${} per day; spending asks first",
                cost.max_cost_per_run, cost.daily_limit
            ),
        );
    } else {
        d.add(
            Level::Warn,
            "doctor.cost_limits",
            format!(
                "require_confirmation is off: runs up to ${} spend without asking",
                cost.max_cost_per_run
            ),
        );
    }
    if config.network.allow_http_loopback {
        d.add(
            Level::Warn,
            "doctor.http_loopback",
            "plain http is allowed to loopback addresses (meant for tests)",
        );
    } else {
        d.add(
            Level::Pass,
            "doctor.https_only",
            "every request uses verified HTTPS",
        );
    }
    if !config.network.proxy.is_empty() {
        d.add(Level::Warn, "doctor.proxy", "a proxy is configured: the proxy, not acgs, resolves provider names, so acgs's address checks cannot see where connections go");
    }
}

async fn audit_chain(d: &mut Doctor<'_>) {
    let path = d.app.loaded.audit_path();
    if !path.exists() {
        d.add(Level::Pass, "doctor.audit_chain", "the audit log is empty");
        return;
    }
    let key_path = d.app.loaded.paths.config_dir.join("audit-key");
    let key = key_path
        .exists()
        .then(|| acgs_storage::audit::AuditKey::load_or_create(&key_path).ok())
        .flatten();
    let anchor = match d.app.ledger().await {
        Ok(ledger) => ledger
            .meta(&d.app.audit_log().head_key())
            .await
            .ok()
            .flatten()
            .and_then(|m| acgs_storage::audit::Anchor::from_meta(&m)),
        Err(_) => None,
    };
    match acgs_storage::audit::verify(&path, key.as_ref(), anchor.as_ref()) {
        Ok(Ok(report)) => d.add(
            Level::Pass,
            "doctor.audit_chain",
            format!("the audit chain of {} entries is intact", report.entries),
        ),
        Ok(Err(broken)) => d.add(
            Level::Fail,
            "doctor.audit_chain",
            format!("the audit log was changed: {broken}"),
        ),
        Err(e) => d.add(
            Level::Fail,
            "doctor.audit_chain",
            format!("the audit log cannot be read: {e}"),
        ),
    }
}

fn output_folder(d: &mut Doctor<'_>) {
    let folder = &d.app.config().output_dir;
    let Ok(meta) = fs_err::metadata(folder) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        d.add(
            Level::Fail,
            "doctor.output_permissions",
            format!(
                "{} is mode {mode:04o}; others can list your outputs — chmod 700 it",
                folder.display()
            ),
        );
    } else {
        d.add(
            Level::Pass,
            "doctor.output_permissions",
            "the output folder is private (0700)",
        );
    }
}

/// ffmpeg and ffprobe, which local media steps run: where they are and which version (a warning
/// when missing: only pipelines that join, cut or mux video need them).
fn media_tools(d: &mut Doctor<'_>) {
    let path = d.app.env.var("PATH").map(std::ffi::OsStr::new);
    for tool in [Tool::Ffmpeg, Tool::Ffprobe] {
        match tool.locate(&d.app.config().tools, path) {
            Ok(found) => {
                let version = Command::new(&found)
                    .arg("-version")
                    .env_clear()
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .ok()
                    .and_then(|out| {
                        let text = String::from_utf8_lossy(&out.stdout).into_owned();
                        text.lines().next().map(|l| crate::ui::printable(l.trim()))
                    })
                    .unwrap_or_else(|| "its version could not be read".into());
                let message = format!("{} ({version})", found.display());
                d.add(Level::Pass, "doctor.media_tools", message);
            }
            Err(why) => d.add(
                Level::Warn,
                "doctor.media_tools",
                format!(
                    "local media steps (concat, mux_audio, subtitles, trim, frame) need it: {why}"
                ),
            ),
        }
    }
}

fn report(app: &App, checks: &[Check]) -> CmdResult {
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    if app.ui.json {
        app.ui
            .result_json(&json!({ "checks": checks, "failed": failed }))
            .map_err(CliError::from)?;
    } else {
        let text: String = checks
            .iter()
            .map(|c| {
                let level = match c.level {
                    Level::Pass => "PASS",
                    Level::Warn => "WARN",
                    Level::Fail => "FAIL",
                };
                format!("{level}  {:<31} {}\n", c.code, c.message)
            })
            .collect();
        app.ui.result_text(&text).map_err(CliError::from)?;
    }
    if failed > 0 {
        return Err(Failure::after_result(DoctorFailed(failed)));
    }
    Ok(())
}
