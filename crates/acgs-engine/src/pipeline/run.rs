//! Estimating and running a checked pipeline.
//!
//! A run is authorized once: the total worst case against the limits (tightened by the file's
//! settings), one confirmation, then one reservation per step — all or nothing. Steps then run
//! through the whole guarded path as soon as what they reference is ready (a text as soon as its
//! answer is in hand), up to `max_parallel` waiting on a provider at once, in one run folder and
//! manifest. Before a step runs it is priced again on what really exists; model-written text
//! is inspected again before it is used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use acgs_core::Usd;
use acgs_core::UserFacing as _;
use acgs_core::audit::AuditOutcome;
use acgs_core::ledger::{Ledger, Reservation};
use acgs_core::provider::{EventSink, Stage};
use acgs_guard::budget::SpendDecision;
use acgs_storage::StorageError;
use acgs_storage::manifest::{Manifest, RunKind, StepStatus};
use acgs_storage::output::{OutputRoot, StoredFile};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use super::plan::{Finished, Known, request_for};
use super::{OnError, Pipeline, Step};
use crate::error::EngineError;
use crate::run::RunState;
use crate::stages::authorize::{self, LeaseKeeper};
use crate::suite::{Interrupt, Live, Plan, RunReport, Suite};

/// The file a run keeps its pipeline in (so `acgs resume` runs what was confirmed).
pub const PIPELINE_COPY: &str = "pipeline.yaml";

/// The worst case of every step, and of the whole run.
#[derive(Debug, Clone)]
pub struct PipelineEstimate {
    /// Each step's plan, in dependency order.
    pub steps: Vec<Plan>,
    /// Their sum.
    pub total: Usd,
    /// What the limits ask for.
    pub spend: SpendDecision,
}

/// How one step of a run ended.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The step.
    pub step: String,
    /// Its model.
    pub model: String,
    /// Its status.
    pub status: StepStatus,
    /// Its files.
    pub outputs: Vec<StoredFile>,
    /// Reserved.
    pub estimate: Usd,
    /// Settled.
    pub actual: Usd,
    /// Why it failed (code, sentence), or why it did not run.
    pub error: Option<(String, String)>,
}

/// A pipeline run's result.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// The run.
    pub run_id: String,
    /// Its folder.
    pub folder: std::path::PathBuf,
    /// Every step.
    pub steps: Vec<StepOutcome>,
    /// Reserved in all.
    pub estimate: Usd,
    /// Settled in all.
    pub actual: Usd,
    /// Warnings.
    pub warnings: Vec<String>,
}

impl PipelineReport {
    /// Steps that did not finish.
    #[must_use]
    pub fn failed(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.status != StepStatus::Done)
            .count()
    }
}

/// What a run has to do: how each remaining step starts, what is known, and the outcomes of
/// steps that finished before (a resumed run).
pub(crate) struct Work {
    /// Steps to start.
    pub(crate) starts: BTreeMap<String, Start>,
    /// Inputs and finished steps.
    pub(crate) known: Known,
    /// Outcomes of steps finished earlier.
    pub(crate) prior: Vec<StepOutcome>,
    /// On an interrupt, leave submitted jobs running (`--detach`) instead of cancelling them.
    pub(crate) detach: bool,
}

/// Where a running step tells its scheduler that its answer is in hand and is only text
/// ([`Finished::from_text_answer`]): while its files are written, its dependents may start and
/// it no longer counts against `max_parallel` (it waits on no provider).
pub(crate) type Answers = tokio::sync::mpsc::UnboundedSender<(String, Finished)>;

/// How a step of this run starts.
pub(crate) enum Start {
    /// Paid for by this reservation; run the guarded path.
    Run(Reservation),
    /// Already submitted: re-attach to its job.
    Reattach,
}

impl Suite {
    /// Read and check a pipeline file (at most 1 MiB, a regular file).
    pub fn load_pipeline(&self, path: &Path) -> Result<Pipeline, EngineError> {
        let shown = path.display().to_string();
        let unreadable = |reason: String| {
            EngineError::Pipeline(super::Problems {
                file: shown.clone(),
                problems: vec![super::Problem::at(0, None, reason)],
            })
        };
        let meta = fs_err::metadata(path).map_err(|e| unreadable(e.kind().to_string()))?;
        if !meta.is_file() {
            return Err(unreadable("not a regular file".into()));
        }
        if meta.len() > super::schema::MAX_FILE_BYTES as u64 {
            return Err(unreadable("larger than 1 MiB".into()));
        }
        let source = fs_err::read_to_string(path).map_err(|e| unreadable(e.kind().to_string()))?;
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| Path::new(".").to_owned(), Path::to_owned);
        super::validate::check(&shown, &source, &folder, &self.catalog, &self.config)
            .map_err(EngineError::Pipeline)
    }

    /// Every step priced at its worst case, and the total against the run's limits.
    pub fn estimate_pipeline(
        &self,
        pipeline: &Pipeline,
        inputs: &BTreeMap<String, String>,
    ) -> Result<PipelineEstimate, EngineError> {
        let known = Known {
            inputs: inputs.clone(),
            finished: BTreeMap::new(),
        };
        let mut steps = Vec::new();
        for step in &pipeline.steps {
            steps.push(self.plan_step(pipeline, step, &known, true)?);
        }
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

    /// Plan one step with what is known (stand-ins allowed when `estimate`).
    pub(crate) fn plan_step(
        &self,
        pipeline: &Pipeline,
        step: &Step,
        known: &Known,
        estimate: bool,
    ) -> Result<Plan, EngineError> {
        let in_step = |reason: String| EngineError::Step {
            step: step.id.clone(),
            reason,
        };
        let (request, model_texts) =
            request_for(pipeline, step, known, estimate, &self.config).map_err(in_step)?;
        for (_, text) in &model_texts {
            self.inspect_model_text(&step.id, text)?;
        }
        let mut plan = self.plan(&request)?;
        plan.step.clone_from(&step.id);
        plan.stem_named = false;
        Ok(plan)
    }

    /// Run a checked pipeline with `inputs` (see the module documentation); `estimate` is what
    /// [`Suite::estimate_pipeline`] returned for them.
    pub async fn run_pipeline(
        self: &Arc<Self>,
        pipeline: &Pipeline,
        inputs: &BTreeMap<String, String>,
        estimate: PipelineEstimate,
        detach: bool,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<PipelineReport, EngineError> {
        if !estimate
            .steps
            .iter()
            .map(|plan| &plan.step)
            .eq(pipeline.steps.iter().map(|step| &step.id))
        {
            return Err(EngineError::Unsupported(
                "the estimate is not this pipeline's".into(),
            ));
        }
        let run_id = crate::suite::new_run_id();
        let what = format!(
            "pipeline {} ({} steps)",
            pipeline.name.as_deref().unwrap_or(&pipeline.file),
            pipeline.steps.len()
        );
        let ledger = self.ledger()?;
        let reservations = self
            .authorize_pipeline(pipeline, &estimate, &run_id, &what, &ledger, events)
            .await?;
        let run = match self
            .create_pipeline_run(pipeline, inputs, &estimate, &run_id, &reservations)
            .await
        {
            Ok(run) => run,
            Err(e) => {
                for r in reservations.values() {
                    let _ = ledger.release(&r.id).await;
                }
                return Err(e);
            }
        };
        let starts = reservations
            .into_iter()
            .map(|(id, r)| (id, Start::Run(r)))
            .collect();
        let known = Known {
            inputs: inputs.clone(),
            finished: BTreeMap::new(),
        };
        Ok(self
            .schedule(
                &Arc::new(pipeline.clone()),
                run,
                Work {
                    starts,
                    known,
                    prior: Vec::new(),
                    detach,
                },
                events,
                interrupt,
            )
            .await)
    }

    fn ledger(&self) -> Result<Arc<dyn Ledger>, EngineError> {
        self.ledger
            .clone()
            .ok_or_else(|| EngineError::Unsupported("no spend ledger is configured".into()))
    }

    /// The total against the limits, one confirmation, then one reservation per step — all or
    /// nothing (a refusal releases what was reserved).
    pub(crate) async fn authorize_pipeline(
        &self,
        pipeline: &Pipeline,
        estimate: &PipelineEstimate,
        run_id: &str,
        what: &str,
        ledger: &Arc<dyn Ledger>,
        events: &EventSink,
    ) -> Result<BTreeMap<String, Reservation>, EngineError> {
        let shared = acgs_core::ledger::shared_limits(ledger.as_ref()).await?;
        let cost = authorize::effective_limits(&pipeline.cost, &shared);
        let decision = authorize::check(estimate.total, what, &cost, self.confirm.as_ref())?;
        if decision.warn {
            events.for_step(run_id, "").report(
                Stage::Preparing,
                "spend_warning",
                None,
                Some(format!(
                    "this run may cost up to ${}, at or above your warn_threshold of ${}",
                    estimate.total, cost.warn_threshold
                )),
            );
        }
        let requests = estimate
            .steps
            .iter()
            .map(|plan| self.reserve_request(run_id, plan, &cost))
            .collect();
        let reserved = ledger.reserve_all(requests).await?;
        Ok(estimate
            .steps
            .iter()
            .map(|plan| plan.step.clone())
            .zip(reserved)
            .collect())
    }

    /// The run folder with its first manifest and the pipeline's copy, entered in the runs
    /// index at the same time.
    async fn create_pipeline_run(
        &self,
        pipeline: &Pipeline,
        inputs: &BTreeMap<String, String>,
        estimate: &PipelineEstimate,
        run_id: &str,
        reservations: &BTreeMap<String, Reservation>,
    ) -> Result<RunState, EngineError> {
        let manifest = new_manifest(pipeline, inputs, estimate, run_id, reservations);
        let root = OutputRoot::open(&self.config.output_dir)?;
        let (folder, index) = (root.path().join(run_id), self.runs.clone());
        let (id, source) = (run_id.to_owned(), pipeline.source.clone());
        let indexed = tokio::task::spawn_blocking(move || match index {
            Some(runs) => runs.append(&id, &folder),
            None => Ok(()),
        });
        let (id, first) = (run_id.to_owned(), manifest.clone());
        let created = tokio::task::spawn_blocking(move || {
            let dir = root.create_run(&id)?;
            first.save_first(&dir, &[(PIPELINE_COPY, source.as_bytes())])?;
            Ok::<_, StorageError>(dir)
        });
        let (created, indexed) = tokio::join!(created, indexed);
        let stopped = |e: tokio::task::JoinError| StorageError::Io {
            what: "creating the run folder".into(),
            source: std::io::Error::other(e),
        };
        let dir = created.map_err(stopped)??;
        indexed.map_err(stopped)??;
        Ok(RunState::new(dir, manifest))
    }

    /// Run every step as soon as its references are ready, up to `max_parallel` waiting on a
    /// provider at once. A step's references are ready when it finished, or — for a step whose
    /// answer is only text — as soon as that answer is in hand (its files are written
    /// meanwhile; should that fail, no further dependent starts).
    pub(crate) async fn schedule(
        self: &Arc<Self>,
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
            detach,
        } = work;
        let run = run.for_pipeline();
        let ledger = self.ledger.clone();
        let lease = self.lease();
        let mut keepers: BTreeMap<String, LeaseKeeper> = starts
            .iter()
            .filter_map(|(id, start)| match (start, &ledger) {
                (Start::Run(r), Some(l)) => Some((
                    id.clone(),
                    LeaseKeeper::start(Arc::clone(l), r.id.clone(), r.owner.clone(), lease),
                )),
                _ => None,
            })
            .collect();
        let mut outcomes: BTreeMap<String, StepOutcome> =
            prior.into_iter().map(|o| (o.step.clone(), o)).collect();
        let mut running = FuturesUnordered::new();
        // Running steps whose answer is in hand.
        let mut answered = BTreeSet::new();
        let (answers, mut answers_in) = tokio::sync::mpsc::unbounded_channel();
        let mut stopped = false;
        loop {
            stopped |= interrupt.signal().is_some();
            while !stopped && running.len() - answered.len() < pipeline.max_parallel {
                let Some(step) = self.next_ready(pipeline, &starts, &known, &mut outcomes) else {
                    break;
                };
                let Some(start) = starts.remove(&step.id) else {
                    break;
                };
                keepers.remove(&step.id);
                let id = step.id.clone();
                let task = {
                    let (suite, pipeline, step) =
                        (Arc::clone(self), Arc::clone(pipeline), step.clone());
                    let (snapshot, run, answers) = (known.clone(), run.clone(), answers.clone());
                    let (events, interrupt) = (events.clone(), interrupt.clone());
                    tokio::spawn(async move {
                        suite
                            .run_one(
                                &pipeline,
                                &step,
                                (start, detach, answers),
                                run,
                                &snapshot,
                                &events,
                                &interrupt,
                            )
                            .await
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
                Err(EngineError::Unsupported(format!(
                    "the step stopped unexpectedly: {e}"
                )))
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
        self.release_unstarted(
            pipeline,
            &run,
            starts,
            &mut outcomes,
            interrupt.signal().is_some(),
        )
        .await;
        // The run's audit entry follows every step's; the manifest is saved whole while they
        // are written.
        self.audit_pipeline(&run, &outcomes);
        let (saved, audit_warnings) = tokio::join!(run.save(), run.finish_background());
        let mut report = report(pipeline, &run, outcomes);
        report.warnings = audit_warnings;
        if let Err(e) = saved {
            report.warnings.push(format!(
                "the run's manifest could not be saved ({e}); `acgs resume` may not see the last finished steps"
            ));
        }
        report
    }

    /// The next step whose dependencies finished; steps behind a failure are marked skipped.
    fn next_ready<'p>(
        &self,
        pipeline: &'p Pipeline,
        starts: &BTreeMap<String, Start>,
        known: &Known,
        outcomes: &mut BTreeMap<String, StepOutcome>,
    ) -> Option<&'p Step> {
        pipeline.steps.iter().find(|step| {
            starts.contains_key(&step.id)
                && !outcomes.contains_key(&step.id)
                && step.deps.iter().all(|d| known.finished.contains_key(d))
        })
    }

    /// One step: planned again on what exists, checked against its reservation, then the
    /// guarded path (or a re-attach to its job).
    #[allow(clippy::too_many_arguments)]
    async fn run_one(
        &self,
        pipeline: &Pipeline,
        step: &Step,
        (start, detach, answers): (Start, bool, Answers),
        run: RunState,
        known: &Known,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let reservation = match start {
            Start::Reattach => return self.reattach_step(run, &step.id, events, interrupt).await,
            Start::Run(r) => r,
        };
        let ledger = self.ledger()?;
        let reserved = run
            .step(&step.id)
            .and_then(|s| s.estimate)
            .unwrap_or(Usd::ZERO);
        let planned = self
            .plan_step(pipeline, step, known, false)
            .and_then(|mut plan| {
                plan.run_id = run.run_id();
                if plan.quote.amount > reserved {
                    return Err(EngineError::OverStepEstimate {
                        step: step.id.clone(),
                        needed: plan.quote.amount,
                        reserved,
                    });
                }
                Ok(plan)
            });
        let plan = match planned {
            Ok(mut plan) => {
                plan.request.detach = detach;
                plan
            }
            Err(e) => {
                let _ = ledger.release(&reservation.id).await;
                let _ = run
                    .update_step(&step.id, |s| {
                        s.status = StepStatus::Failed;
                        s.error_code = Some(e.code().to_owned());
                    })
                    .await;
                return Err(e);
            }
        };
        if let Err(e) = self.moderate(&plan).await {
            let _ = ledger.release(&reservation.id).await;
            return Err(e.into());
        }
        let provider = self.provider_for(&plan)?;
        let warnings = match provider.preflight(&self.preflight_request(&plan)).await {
            Ok(w) => w,
            Err(e) => {
                let _ = ledger.release(&reservation.id).await;
                return Err(e.into());
            }
        };
        run.note_step(&step.id, |s| {
            s.params = plan.params.clone();
            s.request = serde_json::to_value(&plan.request).ok();
            s.timings.started_at = Some(jiff::Timestamp::now());
        });
        let mut live = Live {
            plan: &plan,
            provider,
            ledger,
            reservation,
            run,
            events: events.for_step(&plan.run_id, &step.id),
            warnings,
            answers: Some(answers),
        };
        self.drive(&mut live, interrupt).await
    }

    /// Release the reservations of steps that never started, and record why.
    async fn release_unstarted(
        &self,
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
            if let (Start::Run(r), Some(ledger)) = (&start, &self.ledger) {
                let _ = ledger.release(&r.id).await;
            }
            let _ = run
                .update_step(&id, |s| {
                    s.status = StepStatus::Cancelled;
                    s.error_code = Some(code.to_owned());
                })
                .await;
            if let Some(step) = pipeline.step(&id) {
                let mut outcome = failed_outcome(step, run, &EngineError::Unsupported(why.into()));
                outcome.status = StepStatus::Cancelled;
                outcome.error = Some((code.to_owned(), why.to_owned()));
                outcomes.insert(id, outcome);
            }
        }
    }

    /// Queue the run's own audit entry (after every step's) with the run's background audit.
    fn audit_pipeline(&self, run: &RunState, outcomes: &BTreeMap<String, StepOutcome>) {
        let Some(sink) = &self.audit else {
            return;
        };
        let failed = outcomes
            .values()
            .filter(|o| o.status != StepStatus::Done)
            .count();
        let event = acgs_core::audit::AuditEvent {
            operation: "pipeline".into(),
            run_id: Some(run.run_id()),
            estimate: Some(
                outcomes
                    .values()
                    .fold(Usd::ZERO, |s, o| s.saturating_add(o.estimate)),
            ),
            actual: Some(
                outcomes
                    .values()
                    .fold(Usd::ZERO, |s, o| s.saturating_add(o.actual)),
            ),
            user: self.user.clone(),
            outcome: Some(if failed == 0 {
                AuditOutcome::Success
            } else {
                AuditOutcome::Failed
            }),
            code: (failed > 0).then(|| "pipeline.step_failed".to_owned()),
            ..acgs_core::audit::AuditEvent::default()
        };
        run.audit_in_background(sink, vec![event]);
    }
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

/// A new pipeline run's manifest: every step pending, with its reservation.
fn new_manifest(
    pipeline: &Pipeline,
    inputs: &BTreeMap<String, String>,
    estimate: &PipelineEstimate,
    run_id: &str,
    reservations: &BTreeMap<String, Reservation>,
) -> Manifest {
    let mut manifest = Manifest::new(RunKind::Pipeline, run_id);
    manifest.pipeline_sha256 = Some(pipeline.sha256.clone());
    manifest.pipeline_dir = fs_err::canonicalize(&pipeline.folder).ok();
    manifest.inputs = inputs
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    for plan in &estimate.steps {
        let mut record = crate::suite::step_record(plan, &reservations[&plan.step]);
        record.timings.started_at = None;
        manifest.steps.push(record);
    }
    manifest
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
