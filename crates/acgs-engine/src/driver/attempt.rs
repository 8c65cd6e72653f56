//! The attempt: the part of the guarded path that spends (stages 7–14) — rate limit, upload,
//! submit, wait, check output, settle, store, audit — and the one place a failure is booked:
//! the charge table applied, the step's record updated, the outcome audited.
//!
//! Settling and storing run at the same time. What makes that safe: settling depends only on
//! the provider's answer (its usage), never on the files; the step is `done` only once both
//! ended; and a failure to store never skips, delays or undoes the settlement (the provider
//! billed the job whether or not its files could be kept). The tests hold it to that.

use std::sync::Arc;
use std::time::Duration;

use acgs_core::audit::AuditOutcome;
use acgs_core::ledger::{Ledger, Reservation, ReservationId};
use acgs_core::provider::{Charge, EventSink, FailureClass, ProviderError, Stage};
use acgs_core::request::{Authorized, CancelOutcome, JobHandle, Output, RemoteRef, Submitted};
use acgs_core::{Provider, UserFacing as _};
use acgs_storage::manifest::{OutputRecord, StepStatus};
use acgs_storage::output::StoredFile;

use super::StepObserver;
use super::admit::wire_request;
use crate::error::{EngineError, Signal};
use crate::interrupt::Interrupt;
use crate::plan::Plan;
use crate::report::RunReport;
use crate::run_state::RunState;
use crate::services::Services;
use crate::stages::authorize::LeaseKeeper;
use crate::stages::wait::Waited;
use crate::stages::{audit, check_output, rate_limit, settle, store, submit, upload, wait};

/// Where a step's attempt starts.
#[derive(Debug)]
pub(crate) enum Entry {
    /// Reserved and held, nothing sent: the whole attempt.
    Send(Reservation),
    /// Sent before (`acgs resume`): wait for `job`, paid by `reservation`.
    Wait {
        /// The reservation, `submitted`.
        reservation: ReservationId,
        /// The provider's job.
        job: JobHandle,
    },
}

/// What an attempt works with.
pub(crate) struct Attempt<'a> {
    pub(crate) services: &'a Services,
    pub(crate) plan: &'a Plan,
    pub(crate) run: RunState,
    /// The step's progress events.
    pub(crate) events: EventSink,
    pub(crate) observer: &'a dyn StepObserver,
    /// Warnings so far (the preflight's).
    pub(crate) warnings: Vec<String>,
}

/// The attempt with its provider, ledger and reservation.
struct Live<'a> {
    attempt: Attempt<'a>,
    provider: Arc<dyn Provider>,
    ledger: Arc<dyn Ledger>,
    reservation: ReservationId,
}

impl Attempt<'_> {
    /// Run the attempt from `entry` to its end; a failure is booked (see the module
    /// documentation) before it is returned.
    pub(crate) async fn run(
        self,
        entry: Entry,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let services = self.services;
        let provider = services.provider(self.plan.model.provider)?;
        let ledger = services.ledger()?;
        let reservation = match &entry {
            Entry::Send(r) => r.id.clone(),
            Entry::Wait { reservation, .. } => reservation.clone(),
        };
        let mut live = Live {
            attempt: self,
            provider,
            ledger,
            reservation,
        };
        let result = match entry {
            Entry::Send(reservation) => live.send(&reservation, interrupt).await,
            Entry::Wait { job, .. } => live.wait_and_finish(&job, &[], interrupt).await,
        };
        match result {
            Ok(report) => Ok(report),
            Err(e) => {
                live.book_failure(&e).await;
                Err(e)
            }
        }
    }
}

impl Live<'_> {
    fn plan(&self) -> &Plan {
        self.attempt.plan
    }

    /// Stages 7–9, then the rest.
    async fn send(
        &mut self,
        reservation: &Reservation,
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let services = self.attempt.services;
        let plan = self.attempt.plan;
        self.attempt.run.note_step(&plan.step, |s| {
            s.params = plan.params.clone();
            s.request = Some(plan.request.record());
            s.timings.started_at = Some(jiff::Timestamp::now());
        });
        let keeper = LeaseKeeper::start(
            Arc::clone(&self.ledger),
            reservation.id.clone(),
            reservation.owner.clone(),
            services.lease(),
        );
        let permit = match rate_limit::acquire(&services.rate, plan.model.provider).await {
            Ok(permit) => permit,
            Err(e) => {
                let _ = self.ledger.release(&self.reservation).await;
                return Err(e.into());
            }
        };
        if let Some(signal) = interrupt.signal() {
            let _ = self.ledger.release(&self.reservation).await;
            return Err(EngineError::Interrupted {
                signal,
                note: "nothing was sent and the reservation was released".into(),
            });
        }
        let mut wire = wire_request(plan);
        if plan.request.stream_text {
            wire.text_events = Some(self.attempt.events.clone());
        }
        let uploads = match upload::upload(
            self.provider.as_ref(),
            &plan.model,
            plan.inputs.files.clone(),
            &mut wire.params,
        )
        .await
        {
            Ok(uploads) => uploads,
            Err(e) => {
                self.charge(&e).await;
                return Err(e.into());
            }
        };
        let authorized =
            Authorized::by_engine(wire, plan.verdict.clone(), self.reservation.clone());
        self.attempt
            .events
            .report(Stage::Submitting, "submitting", None, None);
        let sending = submit::submit(
            self.provider.as_ref(),
            &authorized,
            self.ledger.as_ref(),
            &self.reservation,
            &self.attempt.run,
            &plan.step,
        );
        // A step run on this machine answers only when its work is done; Ctrl-C stops it there
        // (ffmpeg is killed with it). A provider's submit is never cut short: it may have been
        // accepted.
        let submitted = if plan.model.provider == acgs_core::ProviderId::Local {
            tokio::select! {
                submitted = sending => Some(submitted),
                () = interrupt.token().cancelled() => None,
            }
        } else {
            Some(sending.await)
        };
        let Some(submitted) = submitted else {
            return Err(self.stopped_locally(interrupt, &uploads).await);
        };
        drop(keeper);
        let result = match submitted {
            Ok(Submitted::Done(output)) => self.finish(output, &uploads).await,
            Ok(Submitted::Pending(job)) => self.wait_and_finish(&job, &uploads, interrupt).await,
            Err(e) => {
                if let EngineError::Provider(failure) = &e {
                    self.charge(failure).await;
                }
                self.delete_uploads(&uploads).await;
                Err(e)
            }
        };
        drop(permit);
        result
    }

    /// Stage 10, then the rest. A job past its deadline or interrupted may still read its
    /// inputs, so `uploads` are left to expire then.
    async fn wait_and_finish(
        &mut self,
        job: &JobHandle,
        uploads: &[RemoteRef],
        interrupt: &Interrupt,
    ) -> Result<RunReport, EngineError> {
        let plan = self.plan();
        let deadline = Duration::from_secs(
            plan.request
                .timeout_secs
                .unwrap_or(plan.model.deadline_secs),
        );
        let waited = wait::wait(
            self.provider.as_ref(),
            job,
            &self.attempt.events,
            interrupt.token(),
            deadline,
        )
        .await;
        match waited {
            Waited::Output(output) => self.finish(output, uploads).await,
            Waited::Failed(error) => {
                self.charge(&error).await;
                self.delete_uploads(uploads).await;
                Err(error.into())
            }
            Waited::Deadline => Err(EngineError::Deadline {
                seconds: deadline.as_secs(),
                run_id: plan.run_id.clone(),
            }),
            Waited::Interrupted => Err(self.interrupted(job, interrupt).await),
        }
    }

    /// Stages 11–14 for an answered job; the uploads are deleted meanwhile.
    async fn finish(
        &mut self,
        output: Output,
        uploads: &[RemoteRef],
    ) -> Result<RunReport, EngineError> {
        if output.saturated {
            let services = self.attempt.services;
            services.rate.lower_in_flight(self.plan().model.provider);
        }
        let provider = Arc::clone(&self.provider);
        let (finished, deleted) = tokio::join!(
            self.settle_and_store(output),
            super::delete_uploads(provider.as_ref(), uploads)
        );
        let mut report = finished?;
        report.warnings.extend(deleted);
        Ok(report)
    }

    /// Stages 11–14: the output checked, then settled and stored at once (see the module
    /// documentation), the step recorded done and audited.
    async fn settle_and_store(&mut self, output: Output) -> Result<RunReport, EngineError> {
        let services = self.attempt.services;
        let plan = self.attempt.plan;
        let asked = plan
            .model
            .outputs(&plan.params)
            .saturating_mul(u64::from(plan.requests));
        if let Err(failure) = check_output::check_count(&output, asked) {
            self.charge(&failure).await;
            return Err(failure.into());
        }
        let (request_id, usage) = (output.request_id.clone(), output.usage.clone());
        let quantity = acgs_core::Quantity {
            requested: plan.quote.quantity,
            billed: plan.model.pricing.as_ref().and_then(|p| p.billed(&usage)),
        };
        let settling = settle::settle(
            services,
            self.ledger.as_ref(),
            plan,
            &self.reservation,
            (&usage, request_id.as_ref()),
        );
        let ((actual, overrun), stored) = tokio::join!(settling, self.store(output));
        self.attempt.warnings.extend(overrun);
        let (stored, dropped) = stored?;
        self.attempt.warnings.extend(dropped);
        self.attempt
            .run
            .finish_step(&plan.step, |s| {
                s.status = StepStatus::Done;
                s.actual = Some(actual);
                s.quantity = Some(quantity);
                s.outputs = stored.iter().map(output_record).collect();
                s.timings.finished_at = Some(jiff::Timestamp::now());
            })
            .await?;
        self.attempt.events.report(Stage::Done, "done", None, None);
        if let Some(sink) = &services.audit {
            let entries = audit::step_entries(
                services,
                plan,
                AuditOutcome::Success,
                None,
                Some(actual),
                request_id.clone(),
            )
            .into_iter()
            .map(|entry| acgs_core::audit::AuditEvent {
                quantity: Some(quantity),
                ..entry
            })
            .collect();
            self.attempt
                .warnings
                .extend(self.attempt.run.audit(sink, entries));
        }
        Ok(RunReport {
            run_id: plan.run_id.clone(),
            folder: self.attempt.run.dir.path().to_owned(),
            model: plan.model.key.clone(),
            outputs: stored,
            estimate: plan.quote.amount,
            actual,
            request_id,
            warnings: std::mem::take(&mut self.attempt.warnings),
        })
    }

    /// Stages 11 and 13: the output checked (the observer told), then stored; the files and
    /// warnings about what was dropped.
    async fn store(&self, output: Output) -> Result<(Vec<StoredFile>, Vec<String>), EngineError> {
        let plan = self.plan();
        let (mut output, dropped) = check_output::check(output)?;
        store::redact_texts(
            &mut output.artifacts,
            self.attempt.services.guard.redactor(),
        );
        self.attempt
            .observer
            .answered(&plan.step, &output.artifacts);
        self.attempt
            .events
            .report(Stage::Storing, "storing", None, None);
        let stems = store::stems_for(&plan.stem, &output.artifacts, plan.stem_named);
        let stored = store::store(
            self.provider.as_ref(),
            &output.artifacts,
            &self.attempt.run.dir,
            plan.model.task,
            &stems,
        )
        .await?;
        Ok((stored, dropped))
    }

    /// The user interrupted the wait: cancel the job (unless `--detach`) and say what happens to
    /// it and its money.
    async fn interrupted(&self, job: &JobHandle, interrupt: &Interrupt) -> EngineError {
        let signal = interrupt.signal().unwrap_or(Signal::Interrupt);
        let run_id = &self.plan().run_id;
        if self.plan().request.detach {
            return EngineError::Interrupted {
                signal,
                note: format!("the job keeps running; finish it with `acgs resume {run_id}`"),
            };
        }
        let note = match self.provider.cancel(job).await {
            Ok(CancelOutcome::Cancelled) => {
                let _ = self.ledger.release(&self.reservation).await;
                self.mark_cancelled().await;
                format!(
                    "the job was cancelled before it ran and nothing is charged; `acgs resume {run_id}` sends it again"
                )
            }
            Ok(CancelOutcome::Requested) => {
                // The charge table (DESIGN.md §4.5): a job stopped while it ran may be billed for
                // what was asked — its price without the margin for unverified prices, once.
                let asked = self.plan().quote.base;
                settle::charge_failure(
                    self.attempt.services,
                    self.ledger.as_ref(),
                    &self.reservation,
                    Charge::Estimate,
                    asked,
                )
                .await;
                self.mark_cancelled().await;
                format!(
                    "the job was cancelled while it ran; ${asked} is charged for it (the price of what was asked); `acgs resume {run_id}` sends it again"
                )
            }
            Ok(CancelOutcome::AlreadyCompleted) => {
                format!("the job had already finished; `acgs resume {run_id}` stores its result")
            }
            Ok(CancelOutcome::NotFound | CancelOutcome::Unsupported) | Err(_) => format!(
                "the job could not be cancelled and may still run; `acgs resume {run_id}` settles it"
            ),
        };
        EngineError::Interrupted { signal, note }
    }

    /// Record the step as cancelled (its job stays recorded; resume sends a new one).
    async fn mark_cancelled(&self) {
        let _ = self
            .attempt
            .run
            .update_step(&self.plan().step, |s| s.status = StepStatus::Cancelled)
            .await;
    }

    /// Apply the charge table to a provider failure (and lower the in-flight cap when the
    /// provider says it is saturated).
    /// A local step stopped by Ctrl-C or SIGTERM: nothing was made and nothing is charged.
    async fn stopped_locally(
        &mut self,
        interrupt: &Interrupt,
        uploads: &[RemoteRef],
    ) -> EngineError {
        let signal = interrupt.signal().unwrap_or(Signal::Interrupt);
        let _ = self.ledger.release(&self.reservation).await;
        self.delete_uploads(uploads).await;
        let _ = self
            .attempt
            .run
            .update_step(&self.plan().step, |s| s.status = StepStatus::Cancelled)
            .await;
        EngineError::Interrupted {
            signal,
            note:
                "the local step was stopped; nothing was charged, and `acgs resume` runs it again"
                    .into(),
        }
    }

    async fn charge(&self, error: &ProviderError) {
        let services = self.attempt.services;
        if error.class == FailureClass::Saturated {
            services.rate.lower_in_flight(self.plan().model.provider);
        }
        settle::charge_failure(
            services,
            self.ledger.as_ref(),
            &self.reservation,
            error.charge,
            self.plan().quote.amount,
        )
        .await;
    }

    async fn delete_uploads(&mut self, uploads: &[RemoteRef]) {
        let warnings = super::delete_uploads(self.provider.as_ref(), uploads).await;
        self.attempt.warnings.extend(warnings);
    }

    /// Book a failure: the step's record (failed, cancelled, or still `submitted` when the job
    /// may still run) and the audit entry.
    async fn book_failure(&self, error: &EngineError) {
        let plan = self.plan();
        let status = self
            .attempt
            .run
            .step(&plan.step)
            .map_or(StepStatus::Pending, |s| s.status);
        let outcome = audit::outcome_of(error, status != StepStatus::Pending);
        let code = error.code();
        let _ = self
            .attempt
            .run
            .update_step(&plan.step, |s| {
                s.status = status_after(status, error);
                s.error_code = Some(code.to_owned());
                s.timings.finished_at = Some(jiff::Timestamp::now());
            })
            .await;
        let services = self.attempt.services;
        let entries = audit::step_entries(services, plan, outcome, Some(code), None, None);
        audit::record(services, entries);
    }
}

/// A step's status after a failed attempt: a submitted job that may still run stays `submitted`
/// (resumable) after a deadline or an interrupt; otherwise failed or cancelled.
fn status_after(current: StepStatus, error: &EngineError) -> StepStatus {
    match (current, error) {
        (StepStatus::Submitted, EngineError::Deadline { .. } | EngineError::Interrupted { .. }) => {
            StepStatus::Submitted
        }
        (StepStatus::Cancelled, _) | (_, EngineError::Interrupted { .. }) => StepStatus::Cancelled,
        _ => StepStatus::Failed,
    }
}

fn output_record(file: &StoredFile) -> OutputRecord {
    OutputRecord {
        path: file.name.clone(),
        sha256: file.sha256.clone(),
        bytes: file.bytes,
        content_type: file.content_type.mime().to_owned(),
    }
}
