//! `acgs models`: the catalogue with prices and their provenance.

use acgs_core::catalog::ModelSpec;
use acgs_core::{ProviderId, TaskKind};
use serde_json::json;

use crate::cli::ModelsArgs;
use crate::failure::{CliError, CmdResult};
use crate::ui::Ui;

/// List models, filtered by task and provider.
pub fn run(
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
    let mut table = format!(
        "{:<18} {:<10} {:<16} {:<26} {}\n",
        "MODEL", "PROVIDER", "TASK", "PRICE", "PRICED ON"
    );
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
        table.push_str(&format!(
            "{:<18} {:<10} {:<16} {:<26} {}\n",
            m.key, m.provider, m.task, price, priced_on
        ));
    }
    ui.result_text(&table).map_err(CliError::from)?;
    Ok(())
}
