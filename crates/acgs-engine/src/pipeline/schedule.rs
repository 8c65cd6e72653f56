//! The scheduler: every step of a run through the driver as soon as what it references is
//! ready (a text as soon as its answer is in hand), up to `max_parallel` waiting on a provider
//! at once, in one run folder. A step planned with stand-ins is planned again on what exists
//! and admitted again before it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use acgs_core::ledger::Reservation;
use acgs_core::provider::EventSink;
use acgs_core::request::Artifact;
use acgs_core::{Usd, UserFacing as _};
use acgs_storage::manifest::StepStatus;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::estimate::plan_step;
use super::plan::{Finished, Known, skips};
use super::{OnError, Pipeline, Step};
use crate::driver::{self, Attempt, Entry, StepObserver};
use crate::error::EngineError;
use crate::interrupt::Interrupt;
use crate::plan::Plan;
use crate::report::{PipelineReport, RunReport, StepOutcome};
use crate::run_state::RunState;
use crate::services::Services;
use crate::stages::audit;
use crate::stages::authorize::LeaseKeeper;

/// One step to run: its plan (provisional when it was made with stand-ins) and where its
/// attempt starts.
pub(crate) struct Start {
    pub(crate) plan: Plan,
    pub(crate) entry: Entry,
    /// The preflight's warnings from admission.
    pub(crate) warnings: Vec<String>,
}

/// What a run has to do: the steps to start, what is known, and the outcomes of steps that
/// finished before (a resumed run).
pub(crate) struct Work {
    pub(crate) starts: BTreeMap<String, Start>,
    pub(crate) known: Known,
    pub(crate) prior: Vec<StepOutcome>,
}

/// Tells the scheduler that a step's answer is in hand and is only text
/// ([`Finished::from_text_answer`]): while its files are written, its dependents may start and
/// it no longer counts against `max_parallel` (it waits on no provider).
struct Answers(tokio::sync::mpsc::UnboundedSender<(String, Finished)>);

impl StepObserver for Answers {
    fn answered(&self, step: &str, artifacts: &[Artifact]) {
        if let Some(early) = Finished::from_text_answer(artifacts) {
            let _ = self.0.send((step.to_owned(), early));
        }
    }
}

/// Run `work` of `pipeline` in `run` (see the module documentation); the report when every
/// step ended or was skipped.
pub(crate) async fn schedule(
    services: &Arc<Services>,
    pipeline: &Arc<Pipeline>,
    run: RunState,
    work: Work,
    events: &EventSink,
    interrupt: &Interrupt,
) -> PipelineReport {
    let Work {
        mut starts,
        mut known,
        prior,
    } = work;
    let run = run.for_pipeline();
    let mut keepers = keep_leases(services, &starts);
    let mut outcomes: BTreeMap<String, StepOutcome> =
        prior.into_iter().map(|o| (o.step.clone(), o)).collect();
    let mut running = FuturesUnordered::new();
    // Running steps whose answer is in hand.
    let mut answered = BTreeSet::new();
    let (answers, mut answers_in) = tokio::sync::mpsc::unbounded_channel();
    let answers = Arc::new(Answers(answers));
    let mut stopped = false;
    loop {
        stopped |= interrupt.signal().is_some();
        while !stopped && running.len() - answered.len() < pipeline.max_parallel {
            let Some(step) = next_ready(pipeline, &starts, &known, &outcomes) else {
                break;
            };
            let Some(start) = starts.remove(&step.id) else {
                break;
            };
            keepers.remove(&step.id);
            if skips(step, &known) {
                let outcome = skip(services, &run, step, &start).await;
                known.finished.insert(step.id.clone(), Finished::skipped());
                outcomes.insert(step.id.clone(), outcome);
                continue;
            }
            let id = step.id.clone();
            let task = {
                let (services, pipeline, step) =
                    (Arc::clone(services), Arc::clone(pipeline), step.clone());
                let (snapshot, run, answers) = (known.clone(), run.clone(), Arc::clone(&answers));
                let (events, interrupt) = (events.clone(), interrupt.clone());
                tokio::spawn(async move {
                    let step = StepRun {
                        services: &services,
                        pipeline: &pipeline,
                        step: &step,
                        run,
                        known: &snapshot,
                    };
                    step.run(start, answers.as_ref(), &events, &interrupt).await
                })
            };
            running.push(async move { (id, task.await) });
        }
        // An answer is taken before its step's end (it is sent first).
        let next = tokio::select! {
            biased;
            Some((id, early)) = answers_in.recv() => {
                if !outcomes.contains_key(&id) {
                    answered.insert(id.clone());
                    known.finished.insert(id, early);
                }
                continue;
            }
            next = running.next() => next,
        };
        let Some((id, joined)) = next else {
            break;
        };
        answered.remove(&id);
        let Some(step) = pipeline.step(&id) else {
            continue;
        };
        let result = joined.unwrap_or_else(|e| {
            Err(EngineError::Internal {
                what: format!("step `{id}` ({e})"),
            })
        });
        match result {
            Ok(report) => {
                known
                    .finished
                    .insert(step.id.clone(), Finished::from_files(&report.outputs));
                outcomes.insert(step.id.clone(), outcome_of(step, &report));
            }
            Err(e) => {
                known.finished.remove(&step.id);
                outcomes.insert(step.id.clone(), failed_outcome(step, &run, &e));
                stopped |= pipeline.on_error == OnError::Stop;
            }
        }
    }
    drop(keepers);
    let interrupted = interrupt.signal().is_some();
    release_unstarted(services, pipeline, &run, starts, &mut outcomes, interrupted).await;
    finish(services, pipeline, run, outcomes).await
}

/// Renew the leases of the reservations of steps that have not started.
fn keep_leases(
    services: &Services,
    starts: &BTreeMap<String, Start>,
) -> BTreeMap<String, LeaseKeeper> {
    let Some(ledger) = &services.ledger else {
        return BTreeMap::new();
    };
    starts
        .iter()
        .filter_map(|(id, start)| match &start.entry {
            Entry::Send(r) => Some((
                id.clone(),
                LeaseKeeper::start(
                    Arc::clone(ledger),
                    r.id.clone(),
                    r.owner.clone(),
                    services.lease(),
                ),
            )),
            Entry::Wait { .. } => None,
        })
        .collect()
}

/// The next step whose dependencies finished.
fn next_ready<'p>(
    pipeline: &'p Pipeline,
    starts: &BTreeMap<String, Start>,
    known: &Known,
    outcomes: &BTreeMap<String, StepOutcome>,
) -> Option<&'p Step> {
    pipeline.steps.iter().find(|step| {
        starts.contains_key(&step.id)
            && !outcomes.contains_key(&step.id)
            && step.deps.iter().all(|d| known.finished.contains_key(d))
    })
}

/// One step of a run, about to go through the driver.
struct StepRun<'a> {
    services: &'a Services,
    pipeline: &'a Pipeline,
    step: &'a Step,
    run: RunState,
    known: &'a Known,
}

impl StepRun<'_> {
    /// A provisional plan made again on what exists and admitted again (refused: booked by the
    /// driver), then the attempt.
    async fn run(
        self,
        start: Start,
        observer: &dyn StepObserver,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let Start {
            plan,
            entry,
            mut warnings,
        } = start;
        let plan = match (&entry, plan.provisional) {
            (Entry::Send(reservation), true) => {
                let (plan, found) = self.readmit(&plan, reservation).await?;
                warnings.extend(found);
                plan
            }
            _ => plan,
        };
        let attempt = Attempt {
            services: self.services,
            plan: &plan,
            run: self.run,
            events: events.for_step(&plan.run_id, &plan.step),
            observer,
            warnings,
        };
        attempt.run(entry, interrupt).await
    }

    /// The step planned on what exists, and admitted within its reservation.
    async fn readmit(
        &self,
        provisional: &Plan,
        reservation: &Reservation,
    ) -> Result<(Plan, Vec<String>), EngineError> {
        let run_id = self.run.run_id();
        let planned = plan_step(
            self.services,
            self.pipeline,
            self.step,
            self.known,
            &run_id,
            false,
        );
        let mut plan = match planned {
            Ok(plan) => plan,
            Err(unplanned) => {
                let super::estimate::Unplanned { request, error, .. } = *unplanned;
                let request = request.unwrap_or_else(|| provisional.request.clone());
                let at = (self.step.id.as_str(), &request, None);
                driver::refuse_step(self.services, &self.run, at, reservation, &error).await;
                return Err(error);
            }
        };
        plan.request.detach = provisional.request.detach;
        match driver::admit_step(self.services, &plan, provisional.quote.amount).await {
            Ok(warnings) => Ok((plan, warnings)),
            Err(error) => {
                let at = (self.step.id.as_str(), &plan.request, Some(&plan));
                driver::refuse_step(self.services, &self.run, at, reservation, &error).await;
                Err(error)
            }
        }
    }
}

/// Skip `step`, whose list item does not exist: its reservation released, its record
/// `skipped`.
async fn skip(services: &Services, run: &RunState, step: &Step, start: &Start) -> StepOutcome {
    // Nothing was spent and nothing is held: it counts $0 in the report, as on resume.
    if let (Entry::Send(r), Some(ledger)) = (&start.entry, &services.ledger) {
        let _ = ledger.release(&r.id).await;
    }
    let _ = run
        .update_step(&step.id, |s| s.status = StepStatus::Skipped)
        .await;
    StepOutcome {
        step: step.id.clone(),
        model: step.model.key.clone(),
        status: StepStatus::Skipped,
        outputs: Vec::new(),
        estimate: Usd::ZERO,
        actual: Usd::ZERO,
        error: None,
    }
}

/// Release the reservations of steps that never started, and record why.
async fn release_unstarted(
    services: &Services,
    pipeline: &Pipeline,
    run: &RunState,
    starts: BTreeMap<String, Start>,
    outcomes: &mut BTreeMap<String, StepOutcome>,
    interrupted: bool,
) {
    let (code, why) = if interrupted {
        (
            "run.interrupted",
            "the run was interrupted before this step started",
        )
    } else {
        (
            "pipeline.not_run",
            "an earlier step failed, so this step did not run",
        )
    };
    for (id, start) in starts {
        if let (Entry::Send(r), Some(ledger)) = (&start.entry, &services.ledger) {
            let _ = ledger.release(&r.id).await;
        }
        let _ = run
            .update_step(&id, |s| {
                s.status = StepStatus::Cancelled;
                s.error_code = Some(code.to_owned());
            })
            .await;
        if let Some(step) = pipeline.step(&id) {
            let record = run.step(&id);
            outcomes.insert(
                id,
                StepOutcome {
                    step: step.id.clone(),
                    model: step.model.key.clone(),
                    status: StepStatus::Cancelled,
                    outputs: Vec::new(),
                    estimate: record.and_then(|r| r.estimate).unwrap_or(Usd::ZERO),
                    actual: Usd::ZERO,
                    error: Some((code.to_owned(), why.to_owned())),
                },
            );
        }
    }
}

/// The run's own audit entry (after every step's), the manifest saved whole meanwhile, and the
/// report.
async fn finish(
    services: &Services,
    pipeline: &Pipeline,
    run: RunState,
    outcomes: BTreeMap<String, StepOutcome>,
) -> PipelineReport {
    let mut report = report(pipeline, &run, outcomes);
    if let Some(sink) = &services.audit {
        let entry = audit::run_summary(
            services,
            &report.run_id,
            (report.estimate, report.actual),
            report.failed(),
        );
        run.audit_in_background(sink, vec![entry]);
    }
    let (saved, audit_warnings) = tokio::join!(run.save(), run.finish_background());
    report.warnings = audit_warnings;
    if let Err(e) = saved {
        report.warnings.push(format!(
            "the run's manifest could not be saved ({e}); `acgs resume` may not see the last finished steps"
        ));
    }
    report
}

pub(crate) fn outcome_of(step: &Step, report: &RunReport) -> StepOutcome {
    StepOutcome {
        step: step.id.clone(),
        model: report.model.clone(),
        status: StepStatus::Done,
        outputs: report.outputs.clone(),
        estimate: report.estimate,
        actual: report.actual,
        error: None,
    }
}

fn failed_outcome(step: &Step, run: &RunState, error: &EngineError) -> StepOutcome {
    let record = run.step(&step.id);
    StepOutcome {
        step: step.id.clone(),
        model: step.model.key.clone(),
        status: record.as_ref().map_or(StepStatus::Failed, |r| {
            if r.status == StepStatus::Done {
                StepStatus::Failed
            } else {
                r.status
            }
        }),
        outputs: Vec::new(),
        estimate: record
            .as_ref()
            .and_then(|r| r.estimate)
            .unwrap_or(Usd::ZERO),
        actual: record.as_ref().and_then(|r| r.actual).unwrap_or(Usd::ZERO),
        error: Some((error.code().to_owned(), error.to_string())),
    }
}

fn report(
    pipeline: &Pipeline,
    run: &RunState,
    mut outcomes: BTreeMap<String, StepOutcome>,
) -> PipelineReport {
    let steps: Vec<StepOutcome> = pipeline
        .steps
        .iter()
        .filter_map(|s| outcomes.remove(&s.id))
        .collect();
    PipelineReport {
        run_id: run.run_id(),
        folder: run.dir.path().to_owned(),
        estimate: steps
            .iter()
            .fold(Usd::ZERO, |s, o| s.saturating_add(o.estimate)),
        actual: steps
            .iter()
            .fold(Usd::ZERO, |s, o| s.saturating_add(o.actual)),
        steps,
        warnings: Vec::new(),
    }
}
