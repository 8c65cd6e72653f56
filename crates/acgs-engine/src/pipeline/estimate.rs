//! Loading a pipeline file and pricing it: every step planned at its worst case, with
//! stand-ins for what earlier steps will make (see [`super::plan`]).

use std::collections::BTreeMap;
use std::path::Path;

use acgs_core::Usd;

use super::plan::{Known, request_for, uses_unfinished};
use super::{Pipeline, Step};
use crate::driver;
use crate::error::EngineError;
use crate::plan::Plan;
use crate::problems::Problems;
use crate::report::PipelineEstimate;
use crate::request::GenerationRequest;
use crate::services::Services;
use crate::stages::inspect;
use crate::stages::validate::open_input;

/// Read and check a pipeline file (at most 1 MiB, a regular file).
pub(crate) fn load(services: &Services, path: &Path) -> Result<Pipeline, EngineError> {
    let shown = path.display().to_string();
    let unreadable = |reason: String| {
        EngineError::Pipeline(Problems::one(&shown, "pipeline.unreadable", reason))
    };
    let read_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::FileTooLarge => unreadable("larger than 1 MiB".into()),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            unreadable(e.to_string())
        }
        kind => unreadable(kind.to_string()),
    };
    let cap = super::schema::MAX_FILE_BYTES as u64;
    // A caller restricted to allowed folders reads the file it was allowed to open, and its
    // relative paths from where that file really is.
    let (bytes, folder) = match services.caller.input_roots.as_deref() {
        Some(roots) => {
            let file = open_input(Some(roots), "pipeline", path)?;
            let real = acgs_core::files::real_path(file.file()).map_err(read_error)?;
            let bytes = acgs_core::files::read_capped(file, cap).map_err(read_error)?;
            (bytes, real.parent().map(Path::to_owned))
        }
        None => {
            let bytes = acgs_core::files::read_regular(path, cap).map_err(read_error)?;
            (bytes, path.parent().map(Path::to_owned))
        }
    };
    let source = String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))?;
    let folder = folder
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new(".").to_owned());
    super::validate::check(
        &shown,
        &source,
        &folder,
        &services.catalog,
        &services.config,
    )
    .map_err(EngineError::Pipeline)
}

/// A step that could not be planned.
#[derive(Debug)]
pub(crate) struct Unplanned {
    /// Its id.
    pub(crate) step: String,
    /// Its request, when one was made.
    pub(crate) request: Option<GenerationRequest>,
    /// Why.
    pub(crate) error: EngineError,
}

/// Every step of run `run_id` priced at its worst case, and the total against the run's limits
/// (what `acgs estimate` shows).
pub(crate) fn estimate(
    services: &Services,
    pipeline: &Pipeline,
    inputs: &BTreeMap<String, String>,
    run_id: &str,
) -> Result<PipelineEstimate, EngineError> {
    let steps = plan_all(services, pipeline, inputs, run_id).map_err(|u| u.error)?;
    let total = steps
        .iter()
        .fold(Usd::ZERO, |sum, p| sum.saturating_add(p.quote.amount));
    let spend = acgs_guard::budget::check_run(total, &pipeline.cost)?;
    Ok(PipelineEstimate {
        steps,
        total,
        spend,
    })
}

/// Every step of run `run_id` planned at its worst case, in order.
pub(crate) fn plan_all(
    services: &Services,
    pipeline: &Pipeline,
    inputs: &BTreeMap<String, String>,
    run_id: &str,
) -> Result<Vec<Plan>, Box<Unplanned>> {
    let known = Known {
        inputs: inputs.clone(),
        finished: BTreeMap::new(),
    };
    pipeline
        .steps
        .iter()
        .map(|step| plan_step(services, pipeline, step, &known, run_id, true))
        .collect()
}

/// Plan `step` of run `run_id` with what is `known` (stand-ins for the rest when `estimate`):
/// its request built, the model text it uses inspected, then stages 1–5. A plan with stand-ins
/// is provisional.
pub(crate) fn plan_step(
    services: &Services,
    pipeline: &Pipeline,
    step: &Step,
    known: &Known,
    run_id: &str,
    estimate: bool,
) -> Result<Plan, Box<Unplanned>> {
    let failed = |request: Option<&GenerationRequest>, error: EngineError| {
        Box::new(Unplanned {
            step: step.id.clone(),
            request: request.cloned(),
            error,
        })
    };
    let (request, model_texts) = request_for(pipeline, step, known, estimate, &services.config)
        .map_err(|reason| {
            let error = EngineError::Step {
                step: step.id.clone(),
                reason,
            };
            failed(None, error)
        })?;
    for (_, text) in &model_texts {
        inspect::inspect_model_text(&services.guard, &step.id, text, &services.config)
            .map_err(|e| failed(Some(&request), e.into()))?;
    }
    let mut plan = driver::prepare(services, &request, run_id, &step.id)
        .map_err(|e| failed(Some(&request), e))?;
    plan.provisional = estimate && uses_unfinished(step, known);
    plan.stem_named = false;
    Ok(plan)
}
