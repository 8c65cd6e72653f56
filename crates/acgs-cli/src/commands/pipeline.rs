//! `acgs validate`, `acgs estimate` and `acgs run`: YAML pipelines.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;

use acgs_core::ProviderId;
use acgs_engine::pipeline::InputType;
use acgs_engine::{Interrupt, Pipeline, PipelineEstimate, PipelineReport};
use serde_json::json;

use super::models::aligned;
use crate::app::App;
use crate::cli::{PipelineArgs, ValidateArgs};
use crate::failure::{CliError, CmdResult, Failure};

/// `acgs validate FILE`.
pub(crate) fn validate(app: &App, args: &ValidateArgs) -> CmdResult {
    let pipeline = app.planning_suite()?.load_pipeline(&args.file)?;
    let order: Vec<&str> = pipeline.steps.iter().map(|s| s.id.as_str()).collect();
    if app.ui.json {
        let doc = json!({
            "valid": true, "file": pipeline.file, "name": pipeline.name,
            "steps": order, "max_parallel": pipeline.max_parallel,
            "inputs": pipeline.inputs.keys().collect::<Vec<_>>(),
        });
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    let text = format!(
        "{}: valid — {} step(s), in order: {}\n",
        pipeline.file,
        order.len(),
        order.join(" → ")
    );
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// `acgs estimate FILE`.
pub(crate) fn estimate(app: &App, args: &PipelineArgs) -> CmdResult {
    let suite = app.planning_suite()?;
    let pipeline = suite.load_pipeline(&args.file)?;
    let inputs = inputs(app, &pipeline, args)?;
    let estimate = suite.estimate_pipeline(&pipeline, &inputs)?;
    render_estimate(app, &pipeline, &estimate)
}

/// `acgs run FILE`.
pub(crate) async fn run(app: &App, args: &PipelineArgs, interrupt: &Interrupt) -> CmdResult {
    if args.dry_run {
        return estimate(app, args);
    }
    let planning = async {
        let planning = app.planning_suite()?;
        let pipeline = planning.load_pipeline(&args.file)?;
        let inputs = inputs(app, &pipeline, args)?;
        let providers: BTreeSet<ProviderId> =
            pipeline.steps.iter().map(|s| s.model.provider).collect();
        let providers: Vec<ProviderId> = providers.into_iter().collect();
        // The providers are built before the suite waits for the ledger.
        let suite = app.spending_suite_for(&providers).await?;
        Ok::<_, Failure>((pipeline, inputs, suite))
    };
    // The ledger opens on a blocking thread while this one checks and prices the file.
    let (ledger, planned) = tokio::join!(app.ledger(), planning);
    let (pipeline, inputs, suite) = planned?;
    ledger?;
    let report = suite
        .run_pipeline(
            &pipeline,
            &inputs,
            args.detach,
            &super::progress_sink(&app.ui),
            interrupt,
        )
        .await?;
    render_report(app, &report, interrupt)
}

/// `--input` and `--input-file` as declared input values (media inputs as absolute paths).
fn inputs(
    app: &App,
    pipeline: &Pipeline,
    args: &PipelineArgs,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut values = BTreeMap::new();
    if let Some(file) = &args.input_file {
        let text = read_input_file(file)?;
        let map = acgs_engine::pipeline::parse_inputs(&text)
            .map_err(|e| CliError::Usage(format!("--input-file: {e}")))?;
        values.extend(map);
    }
    for raw in &args.inputs {
        let named = raw
            .split_once('=')
            .filter(|(name, _)| pipeline.inputs.contains_key(*name));
        match named {
            Some((name, value)) => {
                values.insert(name.to_owned(), value.to_owned());
            }
            None if pipeline.inputs.len() == 1 => {
                let name = pipeline.inputs.keys().next().cloned().unwrap_or_default();
                values.insert(name, raw.clone());
            }
            None => {
                let names: Vec<&String> = pipeline.inputs.keys().collect();
                return Err(CliError::Usage(format!(
                    "--input {raw:?}: give NAME=VALUE with one of the declared inputs ({})",
                    names
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .into());
            }
        }
    }
    if let Some(unknown) = values.keys().find(|k| !pipeline.inputs.contains_key(*k)) {
        return Err(CliError::Usage(format!("the pipeline declares no input `{unknown}`")).into());
    }
    for (name, spec) in &pipeline.inputs {
        if spec.ty != InputType::Text
            && let Some(path) = values.get_mut(name)
        {
            *path = app.env.cwd.join(&*path).display().to_string();
        }
    }
    Ok(values)
}

fn read_input_file(path: &std::path::Path) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(acgs_engine::pipeline::MAX_FILE_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("--input-file -: {}", e.kind())))?;
        return Ok(text);
    }
    super::text_argument(None, Some(path))
}

fn render_estimate(app: &App, pipeline: &Pipeline, estimate: &PipelineEstimate) -> CmdResult {
    let cost = &pipeline.cost;
    if app.ui.json {
        let steps: Vec<_> = estimate
            .steps
            .iter()
            .map(|p| json!({
                "step": p.step, "model": p.model.key, "provider": p.model.provider,
                "estimate": p.quote.amount, "rate": p.quote.rate, "unit": p.quote.unit,
                "quantity": p.quote.quantity,
                "margin": p.quote.margin_permille.map(|m| format!("{}.{:03}", m / 1000, m % 1000)),
            }))
            .collect();
        let doc = json!({
            "dry_run": true, "file": pipeline.file, "steps": steps, "total": estimate.total,
            "limits": {
                "max_cost_per_run": cost.max_cost_per_run, "daily_limit": cost.daily_limit,
                "warn": estimate.spend.warn, "confirmation_required": estimate.spend.confirm,
            },
        });
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    let mut rows = vec![["STEP", "MODEL", "WORST CASE", "HOW"].map(str::to_owned)];
    for p in &estimate.steps {
        let q = &p.quote;
        let margin = q
            .margin_permille
            .map(|m| format!(" ×{}.{:03} unverified", m / 1000, m % 1000))
            .unwrap_or_default();
        rows.push([
            p.step.clone(),
            p.model.key.clone(),
            format!("${}", q.amount),
            format!(
                "{} × ${} per {}{margin}",
                q.quantity,
                q.rate,
                q.unit.label()
            ),
        ]);
    }
    let text = format!(
        "{}\ntotal ${} worst case; limits ${} per run, ${} per day{}\nnothing was sent and nothing was spent\n",
        aligned(&rows),
        estimate.total,
        cost.max_cost_per_run,
        cost.daily_limit,
        if estimate.spend.confirm {
            "; a real run asks for confirmation (or --yes)"
        } else {
            ""
        }
    );
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// The run's steps; exit 6 when any did not finish (130/143 when interrupted).
pub(crate) fn render_report(
    app: &App,
    report: &PipelineReport,
    interrupt: &Interrupt,
) -> CmdResult {
    if app.ui.json {
        let steps: Vec<_> = report
            .steps
            .iter()
            .map(|s| json!({
                "step": s.step, "model": s.model, "status": s.status,
                "estimate": s.estimate, "actual": s.actual,
                "outputs": s.outputs.iter().map(|o| json!({"path": o.path, "sha256": o.sha256, "bytes": o.bytes, "content_type": o.content_type.mime()})).collect::<Vec<_>>(),
                "error": s.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
            }))
            .collect();
        let doc = json!({
            "run_id": report.run_id, "folder": report.folder, "steps": steps,
            "estimate": report.estimate, "actual": report.actual,
        });
        app.ui.result_json(&doc).map_err(CliError::from)?;
    } else {
        let mut rows =
            vec![["STEP", "STATUS", "MODEL", "COST", "FILES / ERROR"].map(str::to_owned)];
        for s in &report.steps {
            let files = match &s.error {
                Some((code, _)) => format!("error[{code}]"),
                None => s
                    .outputs
                    .iter()
                    .map(|o| o.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            rows.push([
                s.step.clone(),
                format!("{:?}", s.status).to_lowercase(),
                s.model.clone(),
                format!("${}", s.actual),
                files,
            ]);
        }
        let text = format!(
            "run {}  {}\n{}cost ${} (reserved ${})\n",
            report.run_id,
            report.folder.display(),
            aligned(&rows),
            report.actual,
            report.estimate
        );
        app.ui.result_text(&text).map_err(CliError::from)?;
    }
    for (step, (_, message)) in report
        .steps
        .iter()
        .filter_map(|s| Some((&s.step, s.error.as_ref()?)))
    {
        app.ui.warning(&format!("step `{step}`: {message}"));
    }
    if let Some(signal) = interrupt.signal() {
        return Err(Failure::after_result(
            acgs_engine::EngineError::Interrupted {
                signal,
                note: format!("`acgs resume {}` finishes the run", report.run_id),
            },
        ));
    }
    match report.failed() {
        0 => Ok(()),
        failed => Err(Failure::after_result(CliError::PipelineFailed {
            failed,
            run_id: report.run_id.clone(),
        })),
    }
}
