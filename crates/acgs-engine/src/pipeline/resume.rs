//! `acgs resume` for a pipeline run: finished steps are reused after their files' sha256 is
//! checked, submitted jobs are re-attached, and only the steps that never finished are paid for
//! again (one reservation each, all or nothing). A step left `submitting` needs `--resubmit`.

use std::collections::BTreeMap;

use acgs_core::Usd;
use acgs_core::provider::EventSink;
use acgs_storage::manifest::StepStatus;
use sha2::Digest as _;

use super::plan::{Finished, Known};
use super::run::{PIPELINE_COPY, PipelineEstimate, PipelineReport, Start, Work, outcome_of};
use super::schema::MAX_FILE_BYTES;
use crate::error::EngineError;
use crate::run::RunState;
use crate::suite::resume::corrupt;
use crate::suite::{Interrupt, Suite};

impl Suite {
    /// Finish a pipeline run (see the module documentation).
    pub(crate) async fn resume_pipeline(
        self: &std::sync::Arc<Self>,
        run: RunState,
        resubmit: bool,
        events: &EventSink,
        interrupt: &Interrupt,
    ) -> Result<PipelineReport, EngineError> {
        let manifest = run.manifest();
        let source = String::from_utf8(run.dir.read(PIPELINE_COPY, MAX_FILE_BYTES as u64)?)
            .map_err(|_| corrupt(&run, "the pipeline copy is not UTF-8"))?;
        let sha256: String = sha2::Sha256::digest(source.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if manifest.pipeline_sha256.as_deref() != Some(sha256.as_str()) {
            return Err(corrupt(
                &run,
                "the pipeline copy changed since the run started",
            ));
        }
        let folder = manifest
            .pipeline_dir
            .clone()
            .unwrap_or_else(|| run.dir.path().to_owned());
        let shown = run.dir.path().join(PIPELINE_COPY).display().to_string();
        let pipeline =
            super::validate::check(&shown, &source, &folder, &self.catalog, &self.config)
                .map_err(EngineError::Pipeline)?;
        if !resubmit
            && manifest
                .steps
                .iter()
                .any(|s| s.status == StepStatus::Submitting)
        {
            return Err(EngineError::OutcomeUnknown {
                run_id: manifest.run_id.clone(),
            });
        }
        let mut known = Known {
            inputs: manifest
                .inputs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect(),
            finished: BTreeMap::new(),
        };
        let mut starts = BTreeMap::new();
        let mut prior = Vec::new();
        let mut rerun = Vec::new();
        for record in &manifest.steps {
            let Some(step) = pipeline.step(&record.id) else {
                return Err(corrupt(
                    &run,
                    "a step of the manifest is not in the pipeline",
                ));
            };
            match record.status {
                StepStatus::Done => {
                    let report = self.verified_report(run.clone(), record)?;
                    known
                        .finished
                        .insert(step.id.clone(), Finished::from_files(&report.outputs));
                    prior.push(outcome_of(step, &report));
                }
                StepStatus::Submitted => {
                    starts.insert(step.id.clone(), Start::Reattach);
                }
                StepStatus::Cancelled
                    if record.job.is_some() && self.still_counting(record).await =>
                {
                    starts.insert(step.id.clone(), Start::Reattach);
                }
                StepStatus::Submitting => {
                    self.write_off_unknown(&manifest.run_id, record).await?;
                    rerun.push(step);
                }
                StepStatus::Pending => {
                    self.release_unsent(record).await;
                    rerun.push(step);
                }
                StepStatus::Failed | StepStatus::Cancelled => rerun.push(step),
            }
        }
        let mut plans = Vec::new();
        for step in &rerun {
            let mut plan = self.plan_step(&pipeline, step, &known, true)?;
            plan.run_id.clone_from(&manifest.run_id);
            plans.push(plan);
        }
        if !plans.is_empty() {
            let total = plans
                .iter()
                .fold(Usd::ZERO, |sum, p| sum.saturating_add(p.quote.amount));
            let estimate = PipelineEstimate {
                spend: acgs_guard::budget::check_run(total, &pipeline.cost)?,
                steps: plans,
                total,
            };
            let ledger = self
                .ledger
                .clone()
                .ok_or_else(|| EngineError::Unsupported("no spend ledger is configured".into()))?;
            let what = format!("the unfinished steps of {}", manifest.run_id);
            let reserved = self
                .authorize_pipeline(
                    &pipeline,
                    &estimate,
                    &manifest.run_id,
                    &what,
                    &ledger,
                    events,
                )
                .await?;
            for plan in &estimate.steps {
                let r = &reserved[&plan.step];
                run.update_step(&plan.step, |s| {
                    s.status = StepStatus::Pending;
                    s.estimate = Some(plan.quote.amount);
                    s.reservation_id = Some(r.id.clone());
                    s.actual = None;
                    s.job = None;
                    s.outputs.clear();
                    s.error_code = None;
                })
                .await?;
            }
            starts.extend(reserved.into_iter().map(|(id, r)| (id, Start::Run(r))));
        }
        Ok(self
            .schedule(
                &std::sync::Arc::new(pipeline),
                run,
                Work {
                    starts,
                    known,
                    prior,
                    detach: false,
                },
                events,
                interrupt,
            )
            .await)
    }
}
