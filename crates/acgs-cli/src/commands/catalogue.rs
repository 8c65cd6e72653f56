//! `acgs models search` and `acgs models add`: fal's model list, and a fal endpoint mapped from
//! its own schema into the user's catalogue (their user configuration, `[default.models.KEY]`).
//! A project folder can never add or change a model: its files may not set `models`.

use std::collections::BTreeMap;

use acgs_core::ProviderId;
use acgs_providers_fal::schema_map::{self, Draft, Mark};
use serde_json::json;

use super::models::aligned;
use crate::app::App;
use crate::cli::ModelsAction;
use crate::failure::{CliError, CmdResult, Failure};
use crate::ui::printable;

/// `models search` or `models add`.
pub(crate) async fn run(app: &App, action: &ModelsAction) -> CmdResult {
    match action {
        ModelsAction::Search { text, limit } => search(app, text, usize::from(*limit)).await,
        ModelsAction::Add {
            endpoint,
            key,
            marks,
        } => add(app, endpoint, key.as_deref(), marks).await,
        ModelsAction::Show { .. } => {
            Err(CliError::Usage("`show` is not a catalogue change".into()).into())
        }
    }
}

async fn search(app: &App, text: &str, limit: usize) -> CmdResult {
    let found = app.fal_platform()?.search_models(text, limit).await?;
    let known = |endpoint: &str| {
        app.catalog
            .models()
            .find(|m| m.provider == ProviderId::Fal && m.endpoint == endpoint)
            .map(|m| m.key.clone())
    };
    if app.ui.json {
        let rows: Vec<_> = found
            .iter()
            .map(|l| {
                let meta = l.metadata.clone().unwrap_or_default();
                json!({"endpoint_id": l.endpoint_id, "name": meta.display_name, "category": meta.category,
                       "status": meta.status, "description": meta.description, "in_catalogue": known(&l.endpoint_id)})
            })
            .collect();
        return app
            .ui
            .result_json(&json!({ "models": rows }))
            .map_err(|e| CliError::from(e).into());
    }
    let mut rows = vec![["ENDPOINT", "CATEGORY", "NAME", "IN CATALOGUE AS"].map(str::to_owned)];
    for listing in &found {
        let meta = listing.metadata.clone().unwrap_or_default();
        rows.push([
            printable(&listing.endpoint_id),
            printable(&meta.category),
            printable(&meta.display_name.chars().take(48).collect::<String>()),
            known(&listing.endpoint_id).unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut text = aligned(&rows);
    text.push_str("`acgs models add fal:ENDPOINT` adds one to your catalogue\n");
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

async fn add(app: &App, endpoint: &str, key: Option<&str>, marks: &[String]) -> CmdResult {
    let endpoint = endpoint_id(endpoint)?;
    let key = key.map_or_else(|| key_for(endpoint), str::to_owned);
    let in_a_profile = user_config_doc(app)?
        .iter()
        .any(|(_, profile)| profile.get("models").and_then(|m| m.get(&key)).is_some());
    if in_a_profile || app.catalog.models().any(|m| m.key == key) {
        return Err(CliError::Usage(format!(
            "`{key}` is already in the catalogue; choose another key with --as"
        ))
        .into());
    }
    let marks = parse_marks(marks)?;
    let platform = app.fal_platform()?;
    let listing = platform.find_model(endpoint).await?.ok_or_else(|| {
        CliError::Usage(format!(
            "fal does not list `{endpoint}`; `acgs models search` finds endpoint ids"
        ))
    })?;
    let price = platform.price_of(endpoint).await?;
    let today = jiff::Zoned::now().date();
    let origin = platform.origin();
    let spec = schema_map::map_entry(&Draft {
        key: &key,
        listing: &listing,
        price: price.as_ref(),
        marks: &marks,
        today,
        origin: &origin,
    })
    .map_err(|reasons| CliError::Unmappable {
        endpoint: endpoint.to_owned(),
        reasons,
    })?;
    let mut table = toml::Table::try_from(&spec)
        .map_err(|e| CliError::Usage(format!("could not write the entry: {e}")))?;
    table.remove("key");
    // The entry must load exactly as the catalogue will read it, before anything is written.
    let mut check = app.catalog.clone();
    check.apply_overrides(
        &BTreeMap::from([(key.clone(), table.clone())]),
        "the new entry",
    )?;
    write_model(app, &key, &table)?;
    if app.ui.json {
        return app
            .ui
            .result_json(&json!({ "added": spec }))
            .map_err(|e| CliError::from(e).into());
    }
    let pricing = spec.pricing.as_ref().map_or_else(String::new, |p| {
        format!("${} per {}", p.rate, p.unit.label())
    });
    let text = format!(
        "added {key} ({}, {}) at {pricing} to {}\n`acgs models show {key}` lists its fields and their kinds\n",
        spec.endpoint,
        spec.task,
        app.loaded.paths.user_config().display()
    );
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// `fal:owner/app[/path]` → the endpoint id, checked to be plain path segments.
fn endpoint_id(text: &str) -> Result<&str, Failure> {
    let id = text.strip_prefix("fal:").ok_or_else(|| {
        CliError::Usage(format!(
            "`{}`: name the endpoint as fal:OWNER/APP",
            printable(text)
        ))
    })?;
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let segments: Vec<&str> = id.split('/').collect();
    if id.len() > 200 || segments.len() < 2 || !segments.iter().all(|s| segment_ok(s)) {
        return Err(CliError::Usage(format!(
            "`{}` is not a fal endpoint id (owner/app[/path], letters, digits, - _ .)",
            printable(id)
        ))
        .into());
    }
    Ok(id)
}

/// A catalogue key from an endpoint id: its last three segments, lowercased, `_`-joined.
fn key_for(endpoint: &str) -> String {
    let segments: Vec<&str> = endpoint.split('/').skip(1).collect();
    let tail = &segments[segments.len().saturating_sub(3)..];
    let mut key = String::new();
    for c in tail.join("_").chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && (key.is_empty() || key.ends_with('_'))) {
            key.push(c);
        }
    }
    key.trim_end_matches('_').chars().take(64).collect()
}

fn parse_marks(marks: &[String]) -> Result<BTreeMap<String, Mark>, Failure> {
    marks
        .iter()
        .map(|m| {
            let (name, kind) = m.split_once('=').unwrap_or((m, ""));
            let mark = Mark::from_name(kind).ok_or_else(|| {
                CliError::Usage(format!(
                    "`--mark {}`: say NAME=text, plain, priced, safety or omit",
                    printable(m)
                ))
            })?;
            Ok((name.to_owned(), mark))
        })
        .collect()
}

/// The user configuration's `[default.models.KEY]` table, made if missing.
pub(crate) fn model_table<'d>(
    doc: &'d mut toml_edit::DocumentMut,
    key: &str,
) -> Option<&'d mut dyn toml_edit::TableLike> {
    doc.entry("default")
        .or_insert(toml_edit::table())
        .as_table_like_mut()?
        .entry("models")
        .or_insert(toml_edit::table())
        .as_table_like_mut()?
        .entry(key)
        .or_insert(toml_edit::table())
        .as_table_like_mut()
}

/// Read the user configuration for editing.
pub(crate) fn user_config_doc(app: &App) -> Result<toml_edit::DocumentMut, Failure> {
    let path = app.loaded.paths.user_config();
    let text = fs_err::read_to_string(&path).unwrap_or_default();
    text.parse()
        .map_err(|_| CliError::Usage(format!("{} is not valid TOML", path.display())).into())
}

/// Write the user configuration back, private, keeping its mode.
pub(crate) fn save_user_config(app: &App, doc: &toml_edit::DocumentMut) -> Result<(), Failure> {
    acgs_storage::ensure_private_dir(&app.loaded.paths.config_dir)?;
    acgs_storage::replace_keeping_mode(
        &app.loaded.paths.user_config(),
        doc.to_string().as_bytes(),
        0o600,
    )?;
    Ok(())
}

fn write_model(app: &App, key: &str, entry: &toml::Table) -> Result<(), Failure> {
    let mut doc = user_config_doc(app)?;
    let rendered: toml_edit::DocumentMut = toml::to_string(entry)
        .map_err(|e| CliError::Usage(format!("could not write the entry: {e}")))?
        .parse()
        .map_err(|_| CliError::Usage("could not write the entry".into()))?;
    let table = model_table(&mut doc, key).ok_or_else(|| {
        CliError::Usage("the user configuration's `default` is not a table".into())
    })?;
    for (name, item) in rendered.iter() {
        table.insert(name, item.clone());
    }
    save_user_config(app, &doc)
}
