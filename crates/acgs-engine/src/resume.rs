//! `acgs resume RUN_ID`: finish a run where it stopped, through the driver. The run folder may
//! have been edited (it may sit on a synced drive), so the ledger decides what each step needs
//! ([`Fate`]); the manifest only says where its files are and what was asked:
//!
//! - a `done` step is reused after its files' sha256 is checked;
//! - a step whose reservation is `submitted` with a job is waited for again (never sent
//!   again), settled once and stored: the attempt enters at Wait with a plan rebuilt from its
//!   record and the reservation's estimate;
//! - a step whose reservation is `submitted` without a job was being sent when its process
//!   stopped: its outcome is unknown, so it is refused unless `--resubmit`, which writes the
//!   reservation off at its estimate (audited) and sends the request again;
//! - any other step was never sent, or its attempt ended: it is planned again, admitted
//!   (priced, confirmed, paid for) and sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use acgs_core::ledger::{ReservationRecord, ReservationState};
use acgs_core::pricing::Quote;
use acgs_core::provider::EventSink;
use acgs_core::request::{JobHandle, Verdict};
use acgs_core::{ContentType, Usd};
use acgs_storage::StorageError;
use acgs_storage::manifest::{Manifest, RunKind, StepRecord, StepStatus};
use acgs_storage::output::StoredFile;
use sha2::Digest as _;

use crate::driver::{self, Attempt, Entry, Unobserved};
use crate::error::EngineError;
use crate::interrupt::Interrupt;
use crate::pipeline::plan::{Finished, Known};
use crate::pipeline::schedule::{Start, Work, outcome_of, schedule};
use crate::pipeline::{self, PIPELINE_COPY, Pipeline};
use crate::plan::{Plan, default_stem};
use crate::report::{Resumed, RunReport};
use crate::request::GenerationRequest;
use crate::run_state::RunState;
use crate::services::Services;
use crate::stages::{audit, inspect, resolve, template, validate};

/// What a step of a stopped run needs, as the ledger tells it.
#[derive(Debug)]
enum Fate {
    /// Finished and paid: reuse its files.
    Reuse,
    /// Sent and still counting: wait for its job.
    Wait(ReservationRecord, JobHandle),
    /// Being sent when its process stopped: whether the provider accepted it is unknown.
    Unknown(ReservationRecord),
    /// Never sent (its reservation, if still held, is released first), or its attempt ended:
    /// send it again, paid for again.
    Resend(Option<ReservationRecord>),
}

/// Finish run `run_id` (see the module documentation).
pub(crate) async fn resume(
    services: &Arc<Services>,
    run_id: &str,
    resubmit: bool,
    events: &EventSink,
    interrupt: &Interrupt,
) -> Result<Resumed, EngineError> {
    let run = open_run(services, run_id)?;
    let manifest = run.manifest();
    let sealed = check_run_seal(services, &run, &manifest).await?;
    let fates = fates(services, &run, &manifest, sealed).await?;
    // A local step stopped while running is sent again without asking: it has no provider
    // that could have accepted it, and costs nothing.
    let local = |id: &str| {
        let step = manifest.steps.iter().find(|s| s.id == id);
        step.and_then(|s| services.catalog.resolve(&s.model).ok())
            .is_some_and(|m| m.provider == acgs_core::ProviderId::Local)
    };
    let unknown = fates
        .iter()
        .any(|(id, f)| matches!(f, Fate::Unknown(_)) && !local(id));
    if !resubmit && unknown {
        return Err(EngineError::OutcomeUnknown {
            run_id: manifest.run_id.clone(),
        });
    }
    let resumed = Resuming {
        services,
        run,
        fates,
        events,
        interrupt,
    };
    match manifest.kind {
        RunKind::Single => resumed.single(&manifest).await.map(Resumed::Single),
        RunKind::Pipeline => resumed.pipeline(&manifest).await.map(Resumed::Pipeline),
    }
}

/// The run folder of `run_id`, found through the runs index, with its manifest.
fn open_run(services: &Services, run_id: &str) -> Result<RunState, EngineError> {
    let (dir, manifest) = crate::run_state::find_run(services.runs()?, run_id)?;
    Ok(RunState::new(dir, manifest).sealed_by(services.record_key.clone()))
}

/// Each step's fate, from its newest reservation in the ledger.
async fn fates(
    services: &Services,
    run: &RunState,
    manifest: &Manifest,
    sealed: bool,
) -> Result<BTreeMap<String, Fate>, EngineError> {
    let mut newest: BTreeMap<String, ReservationRecord> = BTreeMap::new();
    for row in services.ledger()?.reservations(None).await? {
        if row.run_id != manifest.run_id {
            continue;
        }
        match newest.get(&row.step) {
            Some(seen) if seen.created_at >= row.created_at => {}
            _ => {
                newest.insert(row.step.clone(), row);
            }
        }
    }
    manifest
        .steps
        .iter()
        .map(|step| {
            if sealed && !step_sealed(services, manifest, step) {
                return Err(corrupt(
                    run,
                    &format!("the record of step `{}` was changed outside acgs", step.id),
                ));
            }
            let fate = fate(run, step, newest.remove(&step.id), sealed)?;
            Ok((step.id.clone(), fate))
        })
        .collect()
}

/// Whether the run's records are sealed (then every record must verify). A run acgs sealed
/// (the ledger remembers) must carry its seals; one with no seal at all that the ledger does
/// not know as sealed (written before records were sealed, or without an audit key) is
/// accepted unsealed, and then nothing its records say about their status is trusted. The run's own fields (pipeline,
/// inputs) are checked here: they decide which file a resumed pipeline runs and which input
/// files it reads.
async fn check_run_seal(
    services: &Services,
    run: &RunState,
    manifest: &Manifest,
) -> Result<bool, EngineError> {
    let Some(key) = &services.record_key else {
        return Ok(false);
    };
    let unsealed = manifest.seal.is_none() && manifest.steps.iter().all(|s| s.seal.is_none());
    let marked = services
        .ledger()?
        .meta(&crate::driver::sealed_meta(&manifest.run_id))
        .await?
        .is_some();
    if unsealed && !marked {
        return Ok(false);
    }
    if manifest.run_sealed_by(key) {
        return Ok(true);
    }
    Err(corrupt(
        run,
        "the run's inputs or pipeline were changed outside acgs",
    ))
}

/// Whether `step`'s record carries acgs's seal over what it holds now.
fn step_sealed(services: &Services, manifest: &Manifest, step: &StepRecord) -> bool {
    services
        .record_key
        .as_ref()
        .is_some_and(|key| key.verifies(&manifest.run_id, step))
}

/// What `step` needs, given its newest reservation (see [`Fate`]). A record the ledger
/// contradicts is refused. Only a `sealed` record's `pending` is believed: nothing is sent before
/// the `submitting` record and the ledger's `submitted` mark are both written, so a sealed
/// pending step whose reservation is `submitted` without a job stopped between the two.
fn fate(
    run: &RunState,
    step: &StepRecord,
    reservation: Option<ReservationRecord>,
    sealed: bool,
) -> Result<Fate, EngineError> {
    use ReservationState as R;
    let Some(reservation) = reservation else {
        return Err(corrupt(
            run,
            &format!("step `{}` has no reservation in this ledger", step.id),
        ));
    };
    let sent = matches!(reservation.state, R::Submitted | R::Settled | R::Abandoned);
    let claims_sent = matches!(
        step.status,
        StepStatus::Done | StepStatus::Submitting | StepStatus::Submitted
    );
    if claims_sent && !sent {
        return Err(corrupt(
            run,
            &format!(
                "step `{}` is {:?} in the manifest but its reservation is {}",
                step.id,
                step.status,
                reservation.state.as_str()
            )
            .to_lowercase(),
        ));
    }
    Ok(
        match (step.status, reservation.state, reservation.job.clone()) {
            (StepStatus::Done, ..) => Fate::Reuse,
            (_, R::Submitted, Some(job)) => Fate::Wait(reservation, job),
            (StepStatus::Pending, R::Submitted, None) if sealed => Fate::Resend(Some(reservation)),
            (_, R::Submitted, None) => Fate::Unknown(reservation),
            (_, R::Held, _) => Fate::Resend(Some(reservation)),
            _ => Fate::Resend(None),
        },
    )
}

/// A run being resumed.
struct Resuming<'a> {
    services: &'a Arc<Services>,
    run: RunState,
    fates: BTreeMap<String, Fate>,
    events: &'a EventSink,
    interrupt: &'a Interrupt,
}

impl Resuming<'_> {
    /// A single run: its one step reused, waited for, or sent again.
    async fn single(mut self, manifest: &Manifest) -> Result<RunReport, EngineError> {
        let step = manifest
            .steps
            .first()
            .ok_or_else(|| corrupt(&self.run, "the manifest has no step"))?;
        let request = recorded_request(&self.run, step)?;
        let services = self.services.as_ref();
        let fate = self.fates.remove(&step.id).unwrap_or(Fate::Resend(None));
        let (plan, entry, warnings) = match fate {
            Fate::Reuse => return verified_report(&self.run, step),
            Fate::Wait(reservation, job) => {
                let plan = rebuild(services, &self.run, step, &request, &reservation)?;
                let entry = Entry::Wait {
                    reservation: reservation.id,
                    job,
                };
                (plan, entry, Vec::new())
            }
            Fate::Unknown(reservation) => {
                self.write_off(&reservation).await?;
                self.resend_single(step, &request).await?
            }
            Fate::Resend(held) => {
                self.release(held.as_ref()).await;
                self.resend_single(step, &request).await?
            }
        };
        let attempt = Attempt {
            services,
            plan: &plan,
            run: self.run,
            events: self.events.for_step(&plan.run_id, &plan.step),
            observer: &Unobserved,
            warnings,
        };
        attempt.run(entry, self.interrupt).await
    }

    /// Plan the single run's step again and admit it in its run folder.
    async fn resend_single(
        &self,
        step: &StepRecord,
        request: &GenerationRequest,
    ) -> Result<(Plan, Entry, Vec<String>), EngineError> {
        let services = self.services.as_ref();
        let run_id = self.run.run_id();
        let plan = driver::prepare(services, request, &run_id, &step.id).inspect_err(|e| {
            let entry = audit::refusal(services, request, None, &step.id, e);
            audit::record(services, vec![entry]);
        })?;
        let plans = [plan];
        let cost = &services.config.cost_management;
        let what = plans[0].model.key.clone();
        let mut admitted =
            driver::restart(services, &self.run, &what, &plans, cost, self.events).await?;
        let [plan] = plans;
        let warnings = admitted.warnings.remove(&plan.step).unwrap_or_default();
        let reservation = admitted.reservations.remove(0);
        Ok((plan, Entry::Send(reservation), warnings))
    }

    /// A pipeline run: finished steps reused, sent ones waited for, the rest planned again and
    /// admitted together, then scheduled.
    async fn pipeline(
        mut self,
        manifest: &Manifest,
    ) -> Result<crate::report::PipelineReport, EngineError> {
        let services = self.services;
        let pipeline = Arc::new(recorded_pipeline(services, &self.run, manifest)?);
        let mut known = Known {
            inputs: manifest
                .inputs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
            finished: BTreeMap::new(),
        };
        let (mut starts, mut prior, mut resend) = (BTreeMap::new(), Vec::new(), Vec::new());
        for record in &manifest.steps {
            let step = pipeline.step(&record.id).ok_or_else(|| {
                corrupt(&self.run, "a step of the manifest is not in the pipeline")
            })?;
            match self.fates.remove(&record.id).unwrap_or(Fate::Resend(None)) {
                Fate::Reuse => {
                    let report = verified_report(&self.run, record)?;
                    known
                        .finished
                        .insert(step.id.clone(), Finished::from_files(&report.outputs));
                    prior.push(outcome_of(step, &report));
                }
                Fate::Wait(reservation, job) => {
                    let request = recorded_request(&self.run, record)?;
                    let plan = rebuild(services, &self.run, record, &request, &reservation)?;
                    let entry = Entry::Wait {
                        reservation: reservation.id,
                        job,
                    };
                    let start = Start {
                        plan,
                        entry,
                        warnings: Vec::new(),
                    };
                    starts.insert(step.id.clone(), start);
                }
                Fate::Unknown(reservation) => {
                    self.write_off(&reservation).await?;
                    resend.push(step);
                }
                Fate::Resend(held) => {
                    self.release(held.as_ref()).await;
                    resend.push(step);
                }
            }
        }
        let run_id = self.run.run_id();
        let mut plans = Vec::new();
        for step in resend {
            if pipeline::plan::skips(step, &known) {
                let _ = self
                    .run
                    .update_step(&step.id, |s| s.status = StepStatus::Skipped)
                    .await;
                known.finished.insert(step.id.clone(), Finished::skipped());
                prior.push(skipped_outcome(step));
                continue;
            }
            let plan =
                pipeline::estimate::plan_step(services, &pipeline, step, &known, &run_id, true)
                    .map_err(|u| u.error)?;
            plans.push(plan);
        }
        if !plans.is_empty() {
            let what = format!("the unfinished steps of {run_id}");
            let cost = &pipeline.cost;
            let mut admitted =
                driver::restart(services, &self.run, &what, &plans, cost, self.events).await?;
            for (plan, reservation) in plans.into_iter().zip(admitted.reservations) {
                let warnings = admitted.warnings.remove(&plan.step).unwrap_or_default();
                let start = Start {
                    entry: Entry::Send(reservation),
                    warnings,
                    plan,
                };
                starts.insert(start.plan.step.clone(), start);
            }
        }
        let work = Work {
            starts,
            known,
            prior,
        };
        Ok(schedule(
            services,
            &pipeline,
            self.run,
            work,
            self.events,
            self.interrupt,
        )
        .await)
    }

    /// `--resubmit`: the first attempt may have been accepted, so its reservation is written off
    /// at its estimate (audited) before the request is sent again.
    async fn write_off(&self, reservation: &ReservationRecord) -> Result<(), EngineError> {
        let ledger = self.services.ledger()?;
        let written_off = match ledger.abandon(&reservation.id).await {
            Ok(settlement) => Some(settlement.actual),
            Err(acgs_core::ledger::LedgerError::InvalidTransition { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let entry = audit::write_off(self.services, reservation, written_off, "run.resubmit");
        audit::record(self.services, vec![entry]);
        Ok(())
    }

    /// Release the reservation of a step that was never sent (the run stopped before sending
    /// it); one that changed meanwhile is left as it is.
    async fn release(&self, held: Option<&ReservationRecord>) {
        let (Some(held), Some(ledger)) = (held, &self.services.ledger) else {
            return;
        };
        if let Err(e) = ledger.release(&held.id).await {
            tracing::warn!(
                code = acgs_core::UserFacing::code(&e),
                step = %held.step,
                "the reservation of a step that was never sent could not be released; it expires with its lease"
            );
        }
    }
}

/// The report line of a step skipped for a missing list item.
fn skipped_outcome(step: &pipeline::Step) -> crate::report::StepOutcome {
    crate::report::StepOutcome {
        step: step.id.clone(),
        model: step.model.key.clone(),
        status: StepStatus::Skipped,
        outputs: Vec::new(),
        estimate: acgs_core::Usd::ZERO,
        actual: acgs_core::Usd::ZERO,
        error: None,
    }
}

/// The request a step's record holds.
fn recorded_request(run: &RunState, step: &StepRecord) -> Result<GenerationRequest, EngineError> {
    step.request
        .as_ref()
        .map(GenerationRequest::from_record)
        .ok_or_else(|| corrupt(run, "the manifest does not record the request"))
}

/// The pipeline a run kept a copy of, checked against the sha256 it started with.
fn recorded_pipeline(
    services: &Services,
    run: &RunState,
    manifest: &Manifest,
) -> Result<Pipeline, EngineError> {
    let max = pipeline::schema::MAX_FILE_BYTES as u64;
    let source = String::from_utf8(run.dir.read(PIPELINE_COPY, max)?)
        .map_err(|_| corrupt(run, "the pipeline copy is not UTF-8"))?;
    let sha256 = hex::encode(sha2::Sha256::digest(source.as_bytes()));
    if manifest.pipeline_sha256.as_deref() != Some(sha256.as_str()) {
        return Err(corrupt(
            run,
            "the pipeline copy changed since the run started",
        ));
    }
    let folder = manifest
        .pipeline_dir
        .clone()
        .unwrap_or_else(|| run.dir.path().to_owned());
    let shown = run.dir.path().join(PIPELINE_COPY).display().to_string();
    pipeline::validate::check(
        &shown,
        &source,
        &folder,
        &services.catalog,
        &services.config,
    )
    .map_err(EngineError::Pipeline)
}

/// The plan of a step sent before, rebuilt from its record: the model, the parameters and texts
/// its request gives (validated and templated again, not inspected: they were sent), and the
/// amount its reservation holds. Its inputs are not opened: they were uploaded.
fn rebuild(
    services: &Services,
    run: &RunState,
    step: &StepRecord,
    request: &GenerationRequest,
    reservation: &ReservationRecord,
) -> Result<Plan, EngineError> {
    let model = resolve::resolve(&services.catalog, &request.model, &request.tasks)?;
    let validated = validate::validate(
        &model,
        &request.texts,
        &request.params,
        request.count,
        &services.config,
    )?;
    let texts = inspect::sanitized(&validated);
    let (params, system) = template::assemble(&validated.params, &texts, &services.templates)?;
    Ok(Plan {
        run_id: run.run_id(),
        step: step.id.clone(),
        texts: texts
            .texts
            .iter()
            .chain(texts.system.iter())
            .map(|t| (t.flag.clone(), t.text.clone()))
            .collect(),
        params,
        system,
        requests: validated.requests,
        quote: Quote::reserved(reservation.estimate),
        verdict: Verdict {
            warnings: Vec::new(),
            overrides: validated.overrides,
        },
        sanitizer_changes: Vec::new(),
        spend: None,
        provisional: false,
        stem: request
            .out_stem
            .clone()
            .unwrap_or_else(|| default_stem(model.task)),
        stem_named: request.out_stem.is_some(),
        inputs: crate::inputs::OpenedInputs::default(),
        request: request.clone(),
        model,
    })
}

/// A finished step's report: every output's sha256 checked.
fn verified_report(run: &RunState, step: &StepRecord) -> Result<RunReport, EngineError> {
    let mut outputs = Vec::new();
    for record in &step.outputs {
        let (sha256, bytes) = run.dir.digest(&record.path)?;
        if sha256 != record.sha256 {
            return Err(corrupt(
                run,
                &format!("{} changed since it was written", record.path),
            ));
        }
        let content_type =
            ContentType::sniff(&run.dir.read(&record.path, 64)?).unwrap_or(ContentType::Text);
        outputs.push(StoredFile {
            name: record.path.clone(),
            path: run.dir.path().join(&record.path),
            content_type,
            bytes,
            sha256,
        });
    }
    Ok(RunReport {
        run_id: run.run_id(),
        folder: run.dir.path().to_owned(),
        model: step.model.clone(),
        outputs,
        estimate: step.estimate.unwrap_or(Usd::ZERO),
        actual: step.actual.unwrap_or(Usd::ZERO),
        request_id: None,
        warnings: vec!["the run was already complete; its files are unchanged".into()],
    })
}

fn corrupt(run: &RunState, reason: &str) -> EngineError {
    StorageError::Corrupt {
        path: run.dir.path().join(acgs_storage::manifest::MANIFEST_FILE),
        reason: reason.to_owned(),
    }
    .into()
}
