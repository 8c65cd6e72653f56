//! `acgs keys status`: where each key comes from, what it shadows, its fingerprint and age —
//! without running `key_command` and without showing any key; `acgs keys check`: whether each
//! provider accepts its key; `acgs keys set|delete`: the credentials file.

use acgs_core::ProviderId;
use acgs_credentials::KeySource;
use acgs_storage::keys::{KeyAgeStore, ROTATION_DAYS};
use serde_json::json;

use crate::app::App;
use crate::failure::{CliError, CmdResult, Failure};

fn source_text(source: &KeySource) -> String {
    source.to_string()
}

/// `acgs keys check [PROVIDER]`: one cheap authenticated call per provider whose key is found
/// (or to `provider` alone); the first refusal is the command's error, after the table.
pub(crate) async fn check(app: &App, provider: Option<&str>) -> CmdResult {
    let providers = match provider {
        Some(name) => vec![ProviderId::from_name(name).ok_or_else(|| {
            CliError::Usage(format!(
                "no provider `{name}`; choose fal, gemini or elevenlabs"
            ))
        })?],
        None => ProviderId::KEYED.to_vec(),
    };
    let found: Vec<ProviderId> = app
        .credentials
        .status()
        .iter()
        .filter(|s| s.key.is_some() || s.key_command_configured)
        .map(|s| s.provider)
        .collect();
    let every = provider.is_none();
    let mut rows = Vec::new();
    let mut first_failure = None;
    for provider in providers {
        // Asked for by name, a provider without a key is checked anyway: `credentials.missing`.
        if every && !found.contains(&provider) {
            rows.push(json!({"provider": provider, "checked": false, "ok": null,
                "message": format!("no key; set {}", provider.key_variables())}));
            continue;
        }
        let row = match app.check_key(provider).await {
            Ok(()) => json!({"provider": provider, "checked": true, "ok": true,
                "message": "the key is accepted"}),
            Err(failure) => {
                let row = json!({"provider": provider, "checked": true, "ok": false,
                    "code": failure.error.code(), "message": failure.error.to_string()});
                first_failure.get_or_insert(failure);
                row
            }
        };
        rows.push(row);
    }
    print_checks(app, &rows)?;
    match first_failure {
        Some(failure) => Err(Failure {
            error: failure.error,
            result_printed: true,
        }),
        // Not one key to check: the same error as a command that needs one.
        None if rows.iter().all(|r| r["checked"] == json!(false)) => {
            match app.credentials.key(ProviderId::Fal) {
                Err(e) => Err(Failure {
                    error: Box::new(e),
                    result_printed: true,
                }),
                Ok(_) => Ok(()),
            }
        }
        None => Ok(()),
    }
}

fn print_checks(app: &App, rows: &[serde_json::Value]) -> CmdResult {
    if app.ui.json {
        return app
            .ui
            .result_json(&json!({ "keys": rows }))
            .map_err(|e| CliError::from(e).into());
    }
    let mut text = String::new();
    for row in rows {
        let mark = match row["ok"].as_bool() {
            Some(true) => "ok     ",
            Some(false) => "REFUSED",
            None => "-      ",
        };
        text.push_str(&format!(
            "{mark}  {:<11} {}\n",
            row["provider"].as_str().unwrap_or_default(),
            crate::ui::printable(row["message"].as_str().unwrap_or_default())
        ));
    }
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// Show the status of every provider's key.
pub(crate) fn status(app: &App) -> CmdResult {
    let statuses = app.credentials.status();
    let fingerprints: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.key.as_ref().map(|k| k.fingerprint()))
        .collect();
    let store = KeyAgeStore::new(app.loaded.paths.state_file("keys.json"));
    let ages = store.observe(&fingerprints).unwrap_or_default();
    let mut rows = Vec::new();
    for status in &statuses {
        let row = match &status.key {
            Some(key) => {
                let fp = key.fingerprint();
                let age = ages.get(&fp).copied();
                let mut warnings = key.warnings.clone();
                if age.is_some_and(|a| a >= ROTATION_DAYS) {
                    warnings.push(format!(
                        "first seen over {ROTATION_DAYS} days ago; consider rotating it"
                    ));
                }
                json!({
                    "provider": status.provider, "found": true, "source": source_text(&key.source),
                    "shadowed": key.shadowed.iter().map(source_text).collect::<Vec<_>>(),
                    "fingerprint": fp, "age_days": age, "warnings": warnings,
                })
            }
            None => json!({
                "provider": status.provider, "found": false,
                "source": if status.key_command_configured { "key_command (run only when needed)" } else { "none" },
                "variables": status.provider.key_variables(), "shadowed": [], "warnings": [],
            }),
        };
        rows.push(row);
    }
    if app.ui.json {
        app.ui
            .result_json(&json!({ "profile": app.loaded.profile.as_str(), "keys": rows }))
            .map_err(CliError::from)?;
        return Ok(());
    }
    let mut text = format!("profile {}\n", app.loaded.profile);
    for row in &rows {
        let provider = row["provider"].as_str().unwrap_or_default();
        if row["found"] == json!(true) {
            text.push_str(&format!(
                "{provider:<11} {}  fingerprint {}  age {} days\n",
                row["source"].as_str().unwrap_or_default(),
                row["fingerprint"].as_str().unwrap_or_default(),
                row["age_days"].as_i64().unwrap_or(0)
            ));
            for shadowed in row["shadowed"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "{:<11} shadows {}\n",
                    "",
                    shadowed.as_str().unwrap_or_default()
                ));
            }
        } else {
            text.push_str(&format!(
                "{provider:<11} not found ({}); set {}\n",
                row["source"].as_str().unwrap_or_default(),
                row["variables"].as_str().unwrap_or_default()
            ));
        }
        for warning in row["warnings"].as_array().into_iter().flatten() {
            app.ui.warning(&format!(
                "{provider}: {}",
                warning.as_str().unwrap_or_default()
            ));
        }
    }
    app.ui.result_text(&text).map_err(CliError::from)?;
    Ok(())
}

/// The variables `acgs keys set` accepts.
const KEY_NAMES: [&str; 6] = [
    "FAL_KEY",
    "FAL_KEY_ID",
    "FAL_KEY_SECRET",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "ELEVENLABS_API_KEY",
];

/// Longest key accepted.
const KEY_MAX: usize = 4096;

fn known_name(name: &str) -> Result<&'static str, Failure> {
    KEY_NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .ok_or_else(|| {
            CliError::Usage(format!(
                "`{}` is not a key acgs reads; use one of {}",
                name.chars().take(40).collect::<String>(),
                KEY_NAMES.join(", ")
            ))
            .into()
        })
}

/// The credentials file as an editable document (empty when it does not exist).
fn credentials_doc(app: &App) -> Result<(std::path::PathBuf, toml_edit::DocumentMut), Failure> {
    let path = app.env.paths().credentials();
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(
                CliError::Usage(format!("cannot read {}: {}", path.display(), e.kind())).into(),
            );
        }
    };
    let doc = text.parse::<toml_edit::DocumentMut>().map_err(|_| {
        CliError::Usage(format!(
            "{} is not valid TOML; fix or remove it",
            path.display()
        ))
    })?;
    Ok((path, doc))
}

fn save(app: &App, path: &std::path::Path, doc: &toml_edit::DocumentMut) -> CmdResult {
    acgs_storage::ensure_private_dir(&app.loaded.paths.config_dir)?;
    acgs_storage::replace_private(path, doc.to_string().as_bytes())?;
    Ok(())
}

/// Read a key: a hidden prompt on a terminal (racing Ctrl-C and SIGTERM, echo restored either
/// way), else all of stdin (trimmed).
fn read_secret(app: &App, name: &str, profile: &str) -> Result<secrecy::SecretString, Failure> {
    use std::io::{IsTerminal as _, Read as _, Write as _};
    let stdin = std::io::stdin();
    let mut raw = String::new();
    if stdin.is_terminal() {
        app.ui
            .prompt(&format!("{name} for profile {profile} (input hidden): "));
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(mut quiet) = saved.clone() {
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        }
        let answer = crate::confirm::read_line_or_signal(&app.interrupt);
        if let Some(saved) = saved {
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        }
        match answer {
            crate::confirm::Answer::Line(line) => {
                // The Enter that ended the hidden input was not echoed.
                let _ = writeln!(std::io::stderr());
                raw = line;
            }
            crate::confirm::Answer::Signal(signal) => {
                return Err(CliError::Interrupted(signal).into());
            }
            crate::confirm::Answer::Closed => {}
        }
    } else {
        stdin
            .lock()
            .take(KEY_MAX as u64 + 1)
            .read_to_string(&mut raw)
            .map_err(CliError::from)?;
    }
    let value = raw.trim();
    if value.is_empty() || value.len() > KEY_MAX || value.chars().any(char::is_control) {
        return Err(CliError::Usage(
            "the key must be one line of visible text (nothing was stored)".into(),
        )
        .into());
    }
    Ok(secrecy::SecretString::from(value.to_owned()))
}

/// `acgs keys set NAME`.
pub(crate) fn set(app: &App, name: &str) -> CmdResult {
    use secrecy::ExposeSecret as _;
    let name = known_name(name)?;
    let profile = key_table(app).to_owned();
    let secret = read_secret(app, name, &profile)?;
    app.ui.redactor().add_secret(secret.expose_secret());
    let (path, mut doc) = credentials_doc(app)?;
    let table = doc
        .entry(&profile)
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .ok_or_else(|| {
            CliError::Usage(format!("[{profile}] in {} is not a table", path.display()))
        })?;
    table.insert(name, toml_edit::value(secret.expose_secret()));
    save(app, &path, &doc)?;
    let fingerprint = acgs_credentials::fingerprint(secret.expose_secret());
    let store = KeyAgeStore::new(app.loaded.paths.state_file("keys.json"));
    let _ = store.observe(std::slice::from_ref(&fingerprint));
    app.ui
        .result_text(&format!(
            "{name} stored for profile {profile} in {} (fingerprint {fingerprint})\n",
            path.display()
        ))
        .map_err(|e| CliError::from(e).into())
}

/// The credentials table `keys set` and `keys delete` work on: the profile asked for with
/// `--profile` or `ACGS_PROFILE`, else `[default]`, which every profile reads.
fn key_table(app: &App) -> &str {
    if app.loaded.profile_chosen {
        app.loaded.profile.as_str()
    } else {
        "default"
    }
}

/// `acgs keys delete NAME`.
pub(crate) fn delete(app: &App, name: &str) -> CmdResult {
    let name = known_name(name)?;
    let (path, mut doc) = credentials_doc(app)?;
    // Without --profile, `[default]` first, then the default profile's own table.
    let tables = [key_table(app), app.loaded.profile.as_str()];
    let mut remove_from = |table: &str| {
        doc.get_mut(table)
            .and_then(|t| t.as_table_like_mut())
            .and_then(|t| t.remove(name))
            .is_some()
    };
    let Some(profile) = tables
        .into_iter()
        .find(|t| remove_from(t))
        .map(str::to_owned)
    else {
        let profile = key_table(app);
        return Err(CliError::Usage(format!(
            "{} holds no {name} for profile {profile}; nothing was changed",
            path.display()
        ))
        .into());
    };
    save(app, &path, &doc)?;
    app.ui
        .result_text(&format!(
            "{name} removed from profile {profile} in {}\n",
            path.display()
        ))
        .map_err(|e| CliError::from(e).into())
}
