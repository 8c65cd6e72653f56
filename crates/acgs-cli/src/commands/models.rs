//! `acgs models`: the catalogue with prices and their provenance.

use acgs_core::catalog::ModelSpec;
use acgs_core::{ProviderId, TaskKind};
use serde_json::json;

use crate::cli::{ModelsAction, ModelsArgs};
use crate::failure::{CliError, CmdResult};
use crate::ui::Ui;

/// `acgs models show KEY`: one model, everything the catalogue knows of it.
fn show(catalog: &acgs_core::Catalog, key: &str, ui: &Ui) -> CmdResult {
    let model = catalog.resolve(key)?;
    if ui.json {
        return ui
            .result_json(&json!({ "model": model.as_ref() }))
            .map_err(|e| CliError::from(e).into());
    }
    let mut text = format!(
        "{} ({})\nprovider  {}\nendpoint  {}\ntask      {}\n",
        model.key, model.name, model.provider, model.endpoint, model.task
    );
    text.push_str(&format!("price     {}\n", price_line(&model)));
    text.push_str(&format!("outputs   {}\n", outputs_line(&model)));
    if let Some(added) = &model.added {
        text.push_str(&format!("added     {added}\n"));
    }
    if !model.default_for.is_empty() {
        text.push_str(&format!("default   for {}\n", model.default_for.join(", ")));
    }
    text.push_str(&format!("deadline  {} s\n\n", model.deadline_secs));
    let mut rows = vec![
        [
            "PARAMETER",
            "KIND",
            "TYPE",
            "GIVEN AS",
            "ALLOWED",
            "DEFAULT",
        ]
        .map(str::to_owned),
    ];
    for (name, spec) in &model.params {
        rows.push([
            format!("{name}{}", if spec.required { " *" } else { "" }),
            format!("{:?}", spec.kind).to_lowercase(),
            format!("{:?}", spec.ty).to_lowercase(),
            // A flag's field is the command's own argument or option, or a pipeline step key.
            spec.flag
                .clone()
                .unwrap_or_else(|| format!("--param {name}=…")),
            allowed(spec),
            spec.default
                .as_ref()
                .map_or_else(|| "-".into(), ToString::to_string),
        ]);
    }
    text.push_str(&aligned(&rows));
    for (name, reason) in &model.unsupported {
        text.push_str(&format!("not supported: {name}: {reason}\n"));
    }
    text.push_str("* required\n");
    ui.result_text(&text).map_err(|e| CliError::from(e).into())
}

/// Per provider of `models`: how many are priced, how many of those prices were checked
/// against the provider's own page or API, and that share in whole percent (rounded down).
fn verified_share(models: &[&ModelSpec]) -> serde_json::Value {
    let mut share = serde_json::Map::new();
    for provider in ProviderId::ALL {
        let priced: Vec<&ModelSpec> = models
            .iter()
            .copied()
            .filter(|m| m.provider == provider && m.pricing.is_some())
            .collect();
        if priced.is_empty() {
            continue;
        }
        let verified = priced
            .iter()
            .filter(|m| m.pricing.as_ref().is_some_and(|p| p.verified))
            .count();
        share.insert(
            provider.to_string(),
            json!({"priced": priced.len(), "verified": verified, "percent": verified * 100 / priced.len()}),
        );
    }
    serde_json::Value::Object(share)
}

/// What one request makes: the kind of file, and how many.
fn outputs_line(model: &ModelSpec) -> String {
    let kind = format!("{:?}", model.task.output()).to_lowercase();
    match &model.count {
        acgs_core::catalog::CountMode::Param(name) => format!("{kind} files, as many as `{name}`"),
        acgs_core::catalog::CountMode::Product(names) => {
            format!("{kind} files, {} of them", names.join(" × "))
        }
        acgs_core::catalog::CountMode::Requests => format!("one {kind} file"),
    }
}

/// A model's price in one line: rate, unit, tiers, and where it came from.
fn price_line(model: &ModelSpec) -> String {
    let Some(p) = &model.pricing else {
        return "unpriced (refused unless allow_unpriced_models)".into();
    };
    let tiers: String = p
        .tiers
        .iter()
        .map(|t| {
            format!(
                "; ${} when {}",
                t.rate,
                serde_json::to_string(&t.when).unwrap_or_default()
            )
        })
        .collect();
    format!(
        "${} per {}{tiers} — {} on {} ({})",
        p.rate,
        p.unit.label(),
        if p.verified { "verified" } else { "unverified" },
        p.priced_on,
        p.source
    )
}

/// What a parameter accepts: its values, its range, its size limits.
fn allowed(spec: &acgs_core::catalog::ParamSpec) -> String {
    if !spec.values.is_empty() {
        let values: Vec<String> = spec
            .values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        return values.join(" | ");
    }
    let mut parts = Vec::new();
    match (spec.min, spec.max) {
        (Some(min), Some(max)) => parts.push(format!("{min}–{max}")),
        (Some(min), None) => parts.push(format!("≥ {min}")),
        (None, Some(max)) => parts.push(format!("≤ {max}")),
        (None, None) => {}
    }
    if let Some(media) = spec.media {
        parts.push(format!("{media:?}").to_lowercase());
    }
    if let Some(secs) = spec.max_seconds {
        parts.push(format!("≤ {secs} s"));
    }
    if let Some(items) = spec.max_items {
        parts.push(format!("≤ {items} files"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// List models, filtered by task and provider, or show one.
pub(crate) fn run(
    catalog: &acgs_core::Catalog,
    args: &ModelsArgs,
    ui: &Ui,
    margin_permille: u32,
) -> CmdResult {
    if let Some(ModelsAction::Show { model }) = &args.action {
        return show(catalog, model, ui);
    }
    let task = match &args.task {
        Some(name) => Some(TaskKind::from_name(name).ok_or_else(|| {
            let tasks = TaskKind::ALL.map(TaskKind::as_str);
            let close = acgs_core::suggest::closest(name, tasks, 2);
            CliError::Usage(format!(
                "unknown task `{name}`{}; tasks are {}",
                acgs_core::suggest::did_you_mean(&close),
                tasks.join(", ")
            ))
        })?),
        None => None,
    };
    let provider = match &args.provider {
        Some(name) => Some(ProviderId::from_name(name).ok_or_else(|| {
            CliError::Usage(format!(
                "unknown provider `{name}`; providers are fal, gemini, elevenlabs"
            ))
        })?),
        None => None,
    };
    let models: Vec<&ModelSpec> = catalog
        .models()
        .map(AsRef::as_ref)
        .filter(|m| task.is_none_or(|t| m.task == t) && provider.is_none_or(|p| m.provider == p))
        .collect();
    if ui.json {
        let list: Vec<_> = models.iter().map(|m| json!(m)).collect();
        ui.result_json(&json!({
            "unverified_price_margin": format!("{}.{:03}", margin_permille / 1000, margin_permille % 1000),
            "verified_prices": verified_share(&models),
            "models": list,
        }))
        .map_err(CliError::from)?;
        return Ok(());
    }
    let mut rows = vec![["MODEL", "PROVIDER", "TASK", "PRICE", "PRICED ON"].map(str::to_owned)];
    for m in models {
        let (price, priced_on) = m.pricing.as_ref().map_or_else(
            || ("unpriced".to_owned(), String::new()),
            |p| {
                let mark = if p.verified { "" } else { " (unverified)" };
                (
                    format!("${}/{}{mark}", p.rate, p.unit.label()),
                    p.priced_on.to_string(),
                )
            },
        );
        rows.push([
            m.key.clone(),
            m.provider.to_string(),
            m.task.to_string(),
            price,
            priced_on,
        ]);
    }
    ui.result_text(&aligned(&rows)).map_err(CliError::from)?;
    Ok(())
}

/// Rows as left-aligned columns, each as wide as its widest cell on a terminal (a wide
/// character counts two columns).
///
/// Kept by hand rather than taken from `comfy-table`: these plain columns are 20 lines, and the
/// crate's equivalent (no borders, no wrapping, padding per column, lines trimmed) is no shorter
/// and brings `crossterm` or `unicode-segmentation` with it.
pub(crate) fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.width());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.width())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_on_a_terminal_with_wide_characters() {
        let rows = [
            ["名前".to_owned(), "x".to_owned()],
            ["ab".to_owned(), "y".to_owned()],
        ];
        let text = super::aligned(&rows);
        let columns: Vec<usize> = text
            .lines()
            .map(|l| {
                use unicode_width::UnicodeWidthStr as _;
                l.width() - 1
            })
            .collect();
        assert_eq!(columns, [6, 6], "{text}");
    }
}

/// `acgs models --refresh-prices`: fal's pricing API into the user's configuration.
pub(crate) mod refresh {
    use acgs_core::ProviderId;
    use acgs_http::{HttpClient, NetworkPolicy};
    use acgs_providers_fal::{PriceRefresh as Outcome, PricingApi};
    use secrecy::ExposeSecret as _;
    use serde_json::json;

    use crate::app::App;
    use crate::failure::{CliError, CmdResult, Failure};

    /// Read every fal model's price and write the ones that fit into the user config.
    pub(crate) async fn run(app: &App) -> CmdResult {
        let key = app.credentials.key(ProviderId::Fal)?;
        app.ui.redactor().add_secret(key.secret.expose_secret());
        let config = app.config();
        let http = HttpClient::new(
            NetworkPolicy::from_config(&config.network),
            app.ui.redactor().clone(),
        )?;
        let api = PricingApi::new(http, &config.providers.urls(ProviderId::Fal), &key.secret)?;
        let today = jiff::Zoned::now().date();
        let mut outcomes = Vec::new();
        for model in app
            .catalog
            .models()
            .filter(|m| m.provider == ProviderId::Fal)
        {
            let mut outcome = api.refresh(model, today).await;
            if outcome.far && !confirm_far(app, &outcome)? {
                let new = outcome.new.take().map(|p| p.rate);
                outcome.note = format!(
                    "moved more than 4× (to ${}); not written: confirm on a terminal or pass --yes",
                    new.unwrap_or_default()
                );
            }
            outcomes.push(outcome);
        }
        write_overrides(app, &outcomes)?;
        report(app, &outcomes)
    }

    /// Whether a price that moved more than 4× may be written: `--yes`, or a yes on the terminal
    /// (Ctrl-C there stops the refresh, nothing written).
    fn confirm_far(app: &App, outcome: &Outcome) -> Result<bool, Failure> {
        use acgs_engine::ConfirmAnswer;
        let new = outcome.new.as_ref().map(|p| p.rate).unwrap_or_default();
        let what = format!(
            "Accept a new price for {} (was ${}, now ${new}: more than 4× apart)",
            outcome.key,
            outcome.old.unwrap_or_default()
        );
        match app.terminal_confirm().ask(&what) {
            ConfirmAnswer::Interrupted(signal) => Err(CliError::Interrupted(signal).into()),
            answer => Ok(answer == ConfirmAnswer::Yes),
        }
    }

    /// Write `[default.models.<key>.pricing]` tables into the user config, keeping the rest.
    fn write_overrides(app: &App, outcomes: &[Outcome]) -> Result<(), Failure> {
        use crate::commands::catalogue::{model_table, save_user_config, user_config_doc};
        let mut doc = user_config_doc(app)?;
        for outcome in outcomes {
            let Some(pricing) = &outcome.new else {
                continue;
            };
            let rendered = toml::to_string(&json!({ "pricing": pricing }))
                .map_err(|e| CliError::Usage(format!("could not write a price: {e}")))?;
            let parsed: toml_edit::DocumentMut = rendered
                .parse()
                .map_err(|_| CliError::Usage("could not write a price".into()))?;
            if let (Some(item), Some(table)) = (
                parsed.get("pricing").cloned(),
                model_table(&mut doc, &outcome.key),
            ) {
                table.insert("pricing", item);
            }
        }
        save_user_config(app, &doc)
    }

    fn report(app: &App, outcomes: &[Outcome]) -> CmdResult {
        if app.ui.json {
            let rows: Vec<_> = outcomes
                .iter()
                .map(|o| json!({"model": o.key, "old": o.old, "new": o.new.as_ref().map(|p| p.rate), "verified": o.new.as_ref().map(|p| p.verified), "note": o.note}))
                .collect();
            return app
                .ui
                .result_json(&json!({ "refreshed": rows }))
                .map_err(|e| CliError::from(e).into());
        }
        let mut text = String::new();
        for o in outcomes {
            let old = o.old.map_or_else(|| "—".into(), |r| format!("${r}"));
            let new = o
                .new
                .as_ref()
                .map_or_else(|| "—".into(), |p| format!("${}", p.rate));
            text.push_str(&format!("{:<22} {old:>10} → {new:<10} {}\n", o.key, o.note));
        }
        app.ui
            .result_text(&text)
            .map_err(|e| CliError::from(e).into())
    }
}
