//! `acgs models`: the catalogue with prices and their provenance.

use acgs_core::catalog::ModelSpec;
use acgs_core::{ProviderId, TaskKind};
use serde_json::json;

use crate::cli::ModelsArgs;
use crate::failure::{CliError, CmdResult};
use crate::ui::Ui;

/// List models, filtered by task and provider.
pub(crate) fn run(
    catalog: &acgs_core::Catalog,
    args: &ModelsArgs,
    ui: &Ui,
    margin_permille: u32,
) -> CmdResult {
    let task = match &args.task {
        Some(name) => Some(TaskKind::from_name(name).ok_or_else(|| {
            CliError::Usage(format!(
                "unknown task `{name}`; tasks are {}",
                TaskKind::ALL.map(TaskKind::as_str).join(", ")
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
        ui.result_json(&json!({ "unverified_price_margin": format!("{}.{:03}", margin_permille / 1000, margin_permille % 1000), "models": list }))
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

/// Rows as left-aligned columns, each as wide as its widest cell.
pub(crate) fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `acgs models --refresh-prices`: fal's pricing API into the user's configuration.
pub(crate) mod refresh {
    use acgs_core::pricing::{PriceUnit, Pricing};
    use acgs_core::{ProviderId, Usd};
    use acgs_http::{Credential, HttpClient, HttpRequest, NetworkPolicy, RetryPolicy};
    use secrecy::ExposeSecret as _;
    use serde::Deserialize;
    use serde_json::json;
    use url::Url;

    use crate::app::App;
    use crate::failure::{CliError, CmdResult, Failure};

    #[derive(Deserialize)]
    struct Prices {
        prices: Vec<Price>,
    }

    #[derive(Deserialize)]
    struct Price {
        endpoint_id: String,
        unit_price: serde_json::Number,
        unit: String,
        #[serde(default)]
        currency: Option<String>,
    }

    /// fal's unit names to the catalogue's.
    fn unit_of(text: &str) -> Option<PriceUnit> {
        let t = text.to_ascii_lowercase();
        Some(if t.contains("megapixel") {
            PriceUnit::Megapixel
        } else if t.contains("image") {
            PriceUnit::Image
        } else if t.contains("second") {
            PriceUnit::Second
        } else if t.contains("minute") {
            PriceUnit::Minute
        } else if t.contains("character") {
            PriceUnit::KiloCharacters
        } else if t.contains("request") || t.contains("video") || t.contains("call") {
            PriceUnit::Request
        } else {
            return None;
        })
    }

    /// One model's outcome.
    struct Outcome {
        key: String,
        old: Option<Usd>,
        new: Option<Pricing>,
        note: String,
    }

    /// Read every fal model's price and write the ones that fit into the user config.
    pub(crate) async fn run(app: &App) -> CmdResult {
        let key = app.credentials.key(ProviderId::Fal)?;
        app.ui.redactor().add_secret(key.secret.expose_secret());
        let config = app.config();
        let http = HttpClient::new(
            NetworkPolicy::from_config(&config.network),
            app.ui.redactor().clone(),
        )?;
        let api = Url::parse(config.providers.fal.api_url.trim_end_matches('/'))
            .map_err(|_| CliError::Usage("providers.fal.api_url is not a URL".into()))?;
        let credential = Credential::new(&api, "authorization", "Key ", &key.secret)?;
        let today = jiff::Zoned::now().date();
        let mut outcomes = Vec::new();
        let models: Vec<_> = app
            .catalog
            .models()
            .filter(|m| m.provider == ProviderId::Fal)
            .cloned()
            .collect();
        for model in models {
            let mut url = api.clone();
            url.set_path(&format!(
                "{}/v1/models/pricing",
                api.path().trim_end_matches('/')
            ));
            url.query_pairs_mut()
                .append_pair("endpoint_id", &model.endpoint);
            let response = http
                .execute_retrying(
                    &HttpRequest::get(url).credential(&credential),
                    &RetryPolicy::default(),
                    &acgs_providers_fal::protocol::classify,
                )
                .await;
            let old = model.pricing.as_ref().map(|p| p.rate);
            let outcome = match response.map(|r| r.json::<Prices>()) {
                Ok(Ok(prices)) => judge(&model, prices, today, &api),
                Ok(Err(_)) => Outcome {
                    key: model.key.clone(),
                    old,
                    new: None,
                    note: "unexpected answer".into(),
                },
                Err(e) => Outcome {
                    key: model.key.clone(),
                    old,
                    new: None,
                    note: acgs_core::UserFacing::code(&e).into(),
                },
            };
            outcomes.push(outcome);
        }
        write_overrides(app, &outcomes)?;
        report(app, &outcomes)
    }

    fn judge(
        model: &acgs_core::ModelSpec,
        prices: Prices,
        today: jiff::civil::Date,
        api: &Url,
    ) -> Outcome {
        let old = model.pricing.as_ref().map(|p| p.rate);
        let skip = |note: &str| Outcome {
            key: model.key.clone(),
            old,
            new: None,
            note: note.to_owned(),
        };
        let Some(price) = prices
            .prices
            .into_iter()
            .find(|p| p.endpoint_id == model.endpoint)
        else {
            return skip("no price listed");
        };
        if price
            .currency
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case("USD"))
        {
            return skip("not priced in USD");
        }
        let Ok(rate) = Usd::parse(&price.unit_price.to_string()) else {
            return skip("unreadable price");
        };
        let Some(current) = &model.pricing else {
            return skip("the catalogue has no price kind for it; add one in your config");
        };
        if unit_of(&price.unit) != Some(current.unit) {
            return skip(&format!(
                "fal prices it per {}, the catalogue per {}",
                price.unit,
                current.unit.label()
            ));
        }
        let updated = Pricing {
            rate,
            priced_on: today,
            source: format!("fal pricing API ({})", api.origin().ascii_serialization()),
            verified: current.tiers.is_empty(),
            ..current.clone()
        };
        let note = if current.tiers.is_empty() {
            "updated".into()
        } else {
            "updated; tiers kept unverified".into()
        };
        Outcome {
            key: model.key.clone(),
            old,
            new: Some(updated),
            note,
        }
    }

    /// Write `[default.models.<key>.pricing]` tables into the user config, keeping the rest.
    fn write_overrides(app: &App, outcomes: &[Outcome]) -> Result<(), Failure> {
        let path = app.loaded.paths.user_config();
        let text = fs_err::read_to_string(&path).unwrap_or_default();
        let mut doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|_| CliError::Usage(format!("{} is not valid TOML", path.display())))?;
        for outcome in outcomes {
            let Some(pricing) = &outcome.new else {
                continue;
            };
            let rendered = toml::to_string(&json!({ "pricing": pricing }))
                .map_err(|e| CliError::Usage(format!("could not write a price: {e}")))?;
            let parsed: toml_edit::DocumentMut = rendered
                .parse()
                .map_err(|_| CliError::Usage("could not write a price".into()))?;
            let Some(item) = parsed.get("pricing").cloned() else {
                continue;
            };
            let profile = doc.entry("default").or_insert(toml_edit::table());
            let models = profile
                .as_table_like_mut()
                .map(|t| t.entry("models").or_insert(toml_edit::table()));
            if let Some(model) = models
                .and_then(|m| m.as_table_like_mut())
                .map(|m| m.entry(&outcome.key).or_insert(toml_edit::table()))
                && let Some(table) = model.as_table_like_mut()
            {
                table.insert("pricing", item);
            }
        }
        acgs_storage::ensure_private_dir(&app.loaded.paths.config_dir)?;
        let temp = path.with_extension("toml.tmp");
        fs_err::write(&temp, doc.to_string()).map_err(|e| {
            CliError::Usage(format!("cannot write {}: {}", temp.display(), e.kind()))
        })?;
        fs_err::rename(&temp, &path).map_err(|e| {
            CliError::Usage(format!("cannot replace {}: {}", path.display(), e.kind()))
        })?;
        Ok(())
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
