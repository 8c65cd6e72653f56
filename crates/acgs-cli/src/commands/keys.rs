//! `acgs keys status`: where each key comes from, what it shadows, its fingerprint and age —
//! without running `key_command` and without showing any key.

use acgs_core::credentials::{KeySource, key_variables};
use acgs_storage::keys::{KeyAgeStore, ROTATION_DAYS};
use serde_json::json;

use crate::app::App;
use crate::failure::{CliError, CmdResult};

fn source_text(source: &KeySource) -> String {
    source.to_string()
}

/// Show the status of every provider's key.
pub fn status(app: &App) -> CmdResult {
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
                "variables": key_variables(status.provider), "shadowed": [], "warnings": [],
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
