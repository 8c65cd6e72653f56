//! Stages 1–5 for one step: resolve, validate, inspect, template, price. No network, no key,
//! no money: what `--dry-run` and `acgs estimate` show.

use acgs_core::request::Verdict;

use crate::error::EngineError;
use crate::plan::{Plan, default_stem};
use crate::request::GenerationRequest;
use crate::services::Services;
use crate::stages::inspect::InspectedTexts;
use crate::stages::{inspect, price, resolve, template, validate};

/// The longest file extension acgs writes, with its dot (`.webp`).
const LONGEST_EXTENSION: usize = 5;

/// Every name the outputs will be stored under must fit a file name acgs writes (64
/// characters): checked before anything is reserved, so that a run is never paid for and then
/// refused at storing. `outputs` is how many the request may make.
fn check_names(stem: &str, named: bool, outputs: u64) -> Result<(), EngineError> {
    let suffix = if named && outputs == 1 {
        0
    } else {
        1 + outputs.max(1).to_string().len()
    };
    if stem.len() + suffix + LONGEST_EXTENSION > acgs_storage::MAX_NAME {
        return Err(acgs_storage::StorageError::UnsafeName {
            name: stem.chars().take(64).collect(),
            reason: "too long: with its number and extension every file name must fit in 64 characters",
        }
        .into());
    }
    Ok(())
}

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
    let outputs = model
        .outputs(&validated.params)
        .saturating_mul(u64::from(validated.requests));
    check_names(&stem, request.out_stem.is_some(), outputs)?;
    let inputs = validate::open_inputs(
        &model,
        (&request.inputs, input_roots(services, run_id).as_deref()),
        &request.assumed_inputs,
    )?;
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

/// The folders a caller restricted to allowed folders may read inputs from for run `run_id`:
/// those, and the run's own folder (where an earlier step's outputs are a later step's inputs).
fn input_roots(services: &Services, run_id: &str) -> Option<Vec<std::path::PathBuf>> {
    let mut roots = services.caller.input_roots.as_deref()?.to_vec();
    if let Ok(folder) = fs_err::canonicalize(services.config.output_dir.join(run_id)) {
        roots.push(folder);
    }
    Some(roots)
}
