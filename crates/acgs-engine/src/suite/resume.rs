//! `acgs resume RUN_ID`: finish a run where it stopped.
//!
//! - a `done` step is reused after its files' sha256 is checked;
//! - a `submitted` step is re-attached by its job handle (never submitted again), waited for,
//!   settled once and stored;
//! - a `submitting` step has an unknown outcome: it is refused unless `--resubmit`, which writes
//!   the first attempt's reservation off at its estimate (audited) and sends the request again;
//! - any other step goes through the whole guarded path again (priced, confirmed, paid for).

use std::sync::Arc;

use acgs_core::audit::{AuditEvent, AuditOutcome};
use acgs_core::ledger::{OwnerToken, Reservation, ReservationId, ReservationState};
use acgs_core::pricing::{PriceUnit, Quote};
use acgs_core::provider::EventSink;
use acgs_core::{Usd, UserFacing as _};
use acgs_guard::budget::SpendDecision;
use acgs_storage::StorageError;
use acgs_storage::manifest::{Manifest, RunKind, StepRecord, StepStatus};
use acgs_storage::output::{OutputRoot, StoredFile};

use super::{GenerationRequest, Interrupt, Live, Plan, RunReport, Suite, default_stem};
use crate::error::EngineError;
use crate::run::RunState;
use crate::stages::audit;
use crate::stages::validate::OpenedInputs;

/// What `acgs resume` finished.
#[derive(Debug, Clone)]
pub enum Resumed {
    /// A single generation.
    Single(RunReport),
    /// A pipeline run.
    Pipeline(crate::pipeline::run::PipelineReport),
}

impl Suite {
    /// Finish run `run_id` (see the module documentation).
    pub async fn resume(
        self: &Arc<Self>,
        run_id: &str,
        resubmit: bool,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<Resumed, EngineError> {
        let run = self.open_run(run_id)?;
        if run.manifest().kind == RunKind::Pipeline {
            return Ok(Resumed::Pipeline(
                self.resume_pipeline(run, resubmit, events, interrupt)
                    .await?,
            ));
        }
        self.resume_single(run, resubmit, events, interrupt)
            .await
            .map(Resumed::Single)
    }

    async fn resume_single(
        &self,
        run: RunState,
        resubmit: bool,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let manifest = run.manifest();
        let run_id = manifest.run_id.as_str();
        let step = manifest
            .steps
            .first()
            .cloned()
            .ok_or_else(|| corrupt(&run, "the manifest has no step"))?;
        let request: GenerationRequest = step
            .request
            .clone()
            .and_then(|r| serde_json::from_value(r).ok())
            .ok_or_else(|| corrupt(&run, "the manifest does not record the request"))?;
        match step.status {
            StepStatus::Done => self.verified_report(run, &step),
            StepStatus::Submitted => self.reattach(run, &step, &request, events, interrupt).await,
            StepStatus::Submitting if !resubmit => Err(EngineError::OutcomeUnknown {
                run_id: run_id.to_owned(),
            }),
            StepStatus::Submitting => {
                self.write_off_unknown(run_id, &step).await?;
                self.rerun(run, request, events, interrupt).await
            }
            StepStatus::Cancelled if step.job.is_some() && self.still_counting(&step).await => {
                self.reattach(run, &step, &request, events, interrupt).await
            }
            StepStatus::Pending => {
                self.release_unsent(&step).await;
                self.rerun(run, request, events, interrupt).await
            }
            StepStatus::Failed | StepStatus::Cancelled => {
                self.rerun(run, request, events, interrupt).await
            }
        }
    }

    /// Release the reservation of a step the manifest has `pending`: it was never sent (see
    /// `stages::submit`), though the run may have stopped after marking it `submitted`. One
    /// already released, expired or settled is left as it is.
    pub(crate) async fn release_unsent(&self, record: &acgs_storage::manifest::StepRecord) {
        let (Some(ledger), Some(id)) = (&self.ledger, &record.reservation_id) else {
            return;
        };
        match ledger.release(id).await {
            Ok(()) | Err(acgs_core::ledger::LedgerError::InvalidTransition { .. }) => {}
            Err(e) => tracing::warn!(
                code = acgs_core::UserFacing::code(&e),
                step = %record.id,
                "the reservation of a step that was never sent could not be released; it expires with its lease or stays counted"
            ),
        }
    }

    pub(crate) fn open_run(&self, run_id: &str) -> Result<RunState, EngineError> {
        let runs = self
            .runs
            .as_ref()
            .ok_or_else(|| EngineError::Unsupported("no runs index is configured".into()))?;
        let entry = runs.find(run_id)?;
        let root = entry
            .folder
            .parent()
            .ok_or_else(|| StorageError::RunNotFound(run_id.to_owned()))?;
        let dir = OutputRoot::open(root)?.open_run(run_id)?;
        let manifest = Manifest::load(&dir)?;
        Ok(RunState::new(dir, manifest))
    }

    /// A finished run: every output's sha256 checked.
    pub(crate) fn verified_report(
        &self,
        run: RunState,
        step: &StepRecord,
    ) -> Result<RunReport, EngineError> {
        let mut outputs = Vec::new();
        for record in &step.outputs {
            let (sha256, bytes) = run.dir.digest(&record.path)?;
            if sha256 != record.sha256 {
                return Err(corrupt(
                    &run,
                    &format!("{} changed since it was written", record.path),
                ));
            }
            let content_type = acgs_core::ContentType::sniff(&run.dir.read(&record.path, 64)?)
                .unwrap_or(acgs_core::ContentType::Text);
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

    /// Whether the step's reservation still counts as `submitted` (an unconfirmed cancel).
    pub(crate) async fn still_counting(&self, step: &StepRecord) -> bool {
        let (Some(ledger), Some(id)) = (&self.ledger, &step.reservation_id) else {
            return false;
        };
        ledger.reservations(None).await.is_ok_and(|rows| {
            rows.iter()
                .any(|r| &r.id == id && r.state == ReservationState::Submitted)
        })
    }

    /// Re-attach to the recorded job of step `id` (its request is read from the manifest).
    pub(crate) async fn reattach_step(
        &self,
        run: RunState,
        id: &str,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let step = run
            .step(id)
            .ok_or_else(|| corrupt(&run, "a step of the run is missing"))?;
        let request: GenerationRequest = step
            .request
            .clone()
            .and_then(|r| serde_json::from_value(r).ok())
            .ok_or_else(|| corrupt(&run, "the manifest does not record the request"))?;
        self.reattach(run, &step, &request, events, interrupt).await
    }

    /// Wait for the recorded job again; settle once; store.
    async fn reattach(
        &self,
        run: RunState,
        step: &StepRecord,
        request: &GenerationRequest,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let job = step
            .job
            .clone()
            .ok_or_else(|| corrupt(&run, "a submitted step without its job"))?;
        let model = self.catalog.resolve(&step.model)?;
        let plan = Plan {
            run_id: run.run_id(),
            step: step.id.clone(),
            model: Arc::clone(&model),
            params: step.params.clone(),
            system: None,
            requests: 1,
            quote: Quote {
                amount: step.estimate.unwrap_or(Usd::ZERO),
                base: step.estimate.unwrap_or(Usd::ZERO),
                rate: Usd::ZERO,
                unit: PriceUnit::Request,
                quantity: 1,
                margin_permille: None,
            },
            verdict: acgs_core::request::Verdict::default(),
            sanitizer_changes: Vec::new(),
            spend: SpendDecision {
                warn: false,
                confirm: false,
            },
            stem: request
                .out_stem
                .clone()
                .unwrap_or_else(|| default_stem(model.task)),
            stem_named: request.out_stem.is_some(),
            inputs: OpenedInputs::default(),
            request: request.clone(),
            prompt: request.texts.get("prompt").cloned().unwrap_or_default(),
            texts: Vec::new(),
        };
        let provider =
            self.providers
                .get(&model.provider)
                .cloned()
                .ok_or(acgs_core::Error::MissingKey {
                    provider: model.provider.as_str(),
                    variables: acgs_core::credentials::key_variables(model.provider),
                })?;
        let ledger = self
            .ledger
            .clone()
            .ok_or_else(|| EngineError::Unsupported("no spend ledger is configured".into()))?;
        let reservation = Reservation {
            id: step
                .reservation_id
                .clone()
                .unwrap_or_else(|| ReservationId(String::new())),
            owner: OwnerToken(String::new()),
            day: String::new(),
            spent_before: Usd::ZERO,
        };
        let mut live = Live {
            plan: &plan,
            provider,
            ledger,
            reservation,
            run,
            events: events.for_step(&plan.run_id, &plan.step),
            warnings: Vec::new(),
            answers: None,
        };
        let result = match self.wait_for(&mut live, &job, request, interrupt).await {
            Ok(output) => self.finish(&mut live, output).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            let code = e.code();
            let _ = live
                .run
                .update_step(&plan.step, |s| {
                    s.status = super::status_after(StepStatus::Submitted, e);
                    s.error_code = Some(code.to_owned());
                })
                .await;
            self.audit_event(&plan, audit::outcome_of(e, true), Some(code), None, None);
        }
        result
    }

    /// `--resubmit`: the first attempt may have been accepted, so its reservation is written off
    /// at its estimate (audited) before the request is sent again.
    pub(crate) async fn write_off_unknown(
        &self,
        run_id: &str,
        step: &StepRecord,
    ) -> Result<(), EngineError> {
        let (Some(ledger), Some(id)) = (&self.ledger, &step.reservation_id) else {
            return Ok(());
        };
        let written_off = match ledger.abandon(id).await {
            Ok(settlement) => Some(settlement.actual),
            Err(acgs_core::ledger::LedgerError::InvalidTransition { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(sink) = &self.audit {
            audit::record(
                sink.as_ref(),
                AuditEvent {
                    operation: "spend.abandon".into(),
                    run_id: Some(run_id.to_owned()),
                    step: Some(step.id.clone()),
                    model: Some(step.model.clone()),
                    estimate: step.estimate,
                    actual: written_off,
                    user: self.user.clone(),
                    outcome: Some(AuditOutcome::Override),
                    code: Some("run.resubmit".into()),
                    ..AuditEvent::default()
                },
            );
        }
        Ok(())
    }

    /// Send the step again through the whole guarded path, in the same run folder.
    async fn rerun(
        &self,
        run: RunState,
        request: GenerationRequest,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let mut plan = self.plan(&request)?;
        plan.run_id = run.run_id();
        self.run_plan(&plan, events, interrupt, Some(run)).await
    }
}

pub(crate) fn corrupt(run: &RunState, reason: &str) -> EngineError {
    StorageError::Corrupt {
        path: run.dir.path().join(acgs_storage::manifest::MANIFEST_FILE),
        reason: reason.to_owned(),
    }
    .into()
}
