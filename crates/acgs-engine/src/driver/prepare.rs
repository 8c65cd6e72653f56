//! Stages 1–5 for one step: resolve, validate, inspect, template, price. No network, no key,
//! no money: what `--dry-run` and `acgs estimate` show.

use acgs_core::request::Verdict;

use crate::error::EngineError;
use crate::plan::{Plan, default_stem};
use crate::request::GenerationRequest;
use crate::services::Services;
use crate::stages::inspect::InspectedTexts;
use crate::stages::{inspect, price, resolve, template, validate};

/// Plan step `step` of run `run_id` for `request`.
pub(crate) fn prepare(
    services: &Services,
    request: &GenerationRequest,
    run_id: &str,
    step: &str,
) -> Result<Plan, EngineError> {
    let model = resolve::resolve(&services.catalog, &request.model, &request.tasks)?;
    let stem = request
        .out_stem
        .clone()
        .unwrap_or_else(|| default_stem(model.task));
    if !acgs_storage::is_plain_stem(&stem) {
        return Err(acgs_storage::StorageError::UnsafeName {
            name: stem.chars().take(64).collect(),
            reason: "--out takes a file stem ([A-Za-z0-9._-], no leading dot), never a path",
        }
        .into());
    }
    let config = &services.config;
    let validated = validate::validate(
        &model,
        &request.texts,
        &request.params,
        request.count,
        config,
    )?;
    let inputs = validate::open_inputs(&model, &request.inputs, &request.assumed_inputs)?;
    let texts: InspectedTexts = inspect::inspect(&services.guard, &validated, config)?;
    let (params, system) = template::assemble(&validated.params, &texts, &services.templates)?;
    let (quote, price_override) =
        price::price(&model, &params, &texts, &inputs, validated.requests, config)?;
    let mut verdict = Verdict {
        warnings: texts.warnings.clone(),
        overrides: validated.overrides.clone(),
    };
    verdict.overrides.extend(price_override);
    Ok(Plan {
        run_id: run_id.to_owned(),
        step: step.to_owned(),
        texts: texts
            .texts
            .iter()
            .chain(texts.system.iter())
            .map(|t| (t.flag.clone(), t.text.clone()))
            .collect(),
        model,
        params,
        system,
        requests: validated.requests,
        quote,
        verdict,
        sanitizer_changes: texts.changes,
        spend: None,
        provisional: false,
        stem_named: request.out_stem.is_some(),
        stem,
        inputs,
        request: request.clone(),
    })
}
