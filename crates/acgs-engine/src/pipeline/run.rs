//! Running a checked pipeline: every step planned at its worst case, the run admitted whole by
//! the driver (one confirmation, every reservation or none), its folder made with the manifest
//! and a copy of the file, then the steps scheduled.

use std::collections::BTreeMap;
use std::sync::Arc;

use acgs_core::ledger::Reservation;
use acgs_core::provider::EventSink;
use acgs_storage::manifest::{Manifest, RunKind};

use super::Pipeline;
use super::estimate::{Unplanned, plan_all};
use super::plan::Known;
use super::schedule::{Start, Work, schedule};
use crate::driver::{self, Entry};
use crate::error::EngineError;
use crate::interrupt::Interrupt;
use crate::plan::Plan;
use crate::report::PipelineReport;
use crate::request::GenerationRequest;
use crate::services::Services;
use crate::stages::audit;

/// The file a run keeps its pipeline in (so `acgs resume` runs what was confirmed).
pub const PIPELINE_COPY: &str = "pipeline.yaml";

/// Run `pipeline` with `inputs` (see the module documentation); `detach` leaves submitted jobs
/// running on an interrupt. A step that cannot be planned refuses the run, audited.
pub(crate) async fn run(
    services: &Arc<Services>,
    (pipeline, run_id): (&Arc<Pipeline>, String),
    inputs: &BTreeMap<String, String>,
    detach: bool,
    events: &EventSink,
    interrupt: &Interrupt,
) -> Result<PipelineReport, EngineError> {
    let mut plans = match plan_all(services, pipeline, inputs, &run_id) {
        Ok(plans) => plans,
        Err(unplanned) => {
            let Unplanned {
                step,
                request,
                error,
            } = *unplanned;
            let request = request.unwrap_or_else(|| GenerationRequest {
                model: pipeline
                    .step(&step)
                    .map(|s| s.model.qualified_key())
                    .unwrap_or_default(),
                ..GenerationRequest::default()
            });
            let entry = audit::refusal(services, &request, None, &step, &error);
            audit::record(services, vec![entry]);
            return Err(error);
        }
    };
    for plan in &mut plans {
        plan.request.detach = detach;
    }
    let what = format!(
        "pipeline {} ({} steps)",
        pipeline.name.as_deref().unwrap_or(&pipeline.file),
        pipeline.steps.len()
    );
    let manifest =
        |reserved: &[Reservation]| new_manifest(pipeline, inputs, &plans, &run_id, reserved);
    let files = vec![(PIPELINE_COPY, pipeline.source.clone())];
    let (run, mut admitted) = driver::start(
        services,
        (&run_id, &what),
        &plans,
        &pipeline.cost,
        (manifest, files),
        events,
    )
    .await?;
    let starts = plans
        .into_iter()
        .zip(admitted.reservations)
        .map(|(plan, reservation)| {
            let start = Start {
                warnings: admitted.warnings.remove(&plan.step).unwrap_or_default(),
                entry: Entry::Send(reservation),
                plan,
            };
            (start.plan.step.clone(), start)
        })
        .collect();
    let known = Known {
        inputs: inputs.clone(),
        finished: BTreeMap::new(),
    };
    let work = Work {
        starts,
        known,
        prior: Vec::new(),
    };
    Ok(schedule(services, pipeline, run, work, events, interrupt).await)
}

/// A new pipeline run's manifest: every step pending, with its reservation.
fn new_manifest(
    pipeline: &Pipeline,
    inputs: &BTreeMap<String, String>,
    plans: &[Plan],
    run_id: &str,
    reserved: &[Reservation],
) -> Manifest {
    let mut manifest = Manifest::new(RunKind::Pipeline, run_id);
    manifest.pipeline_sha256 = Some(pipeline.sha256.clone());
    manifest.pipeline_dir = fs_err::canonicalize(&pipeline.folder).ok();
    manifest.inputs = inputs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    manifest.steps = plans
        .iter()
        .zip(reserved)
        .map(|(plan, r)| driver::step_record(plan, r))
        .collect();
    manifest
}
