//! `acgs image`: text-to-image through the guarded path.

use std::collections::BTreeMap;

use acgs_core::TaskKind;
use acgs_core::config::Config;
use acgs_core::provider::EventSink;
use acgs_engine::{GenerationRequest, Interrupt, Plan, RunReport};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::ImageArgs;
use crate::failure::{CliError, CmdResult};
use crate::ui::Ui;

fn request(args: &ImageArgs) -> GenerationRequest {
    let mut texts = BTreeMap::from([("prompt".to_owned(), args.prompt.clone())]);
    if let Some(negative) = &args.negative_prompt {
        texts.insert("negative_prompt".into(), negative.clone());
    }
    GenerationRequest {
        model: args.model.clone(),
        tasks: vec![TaskKind::TextToImage],
        texts,
        params: args.params.clone(),
        count: args.count,
        out_stem: args.out.clone(),
        timeout_secs: args.timeout,
        detach: args.detach,
        inputs: Vec::new(),
    }
}

/// Run `acgs image`.
pub async fn run(app: &App, args: &ImageArgs, interrupt: &Interrupt) -> CmdResult {
    let request = request(args);
    if args.dry_run {
        let plan = app.planning_suite()?.plan(&request)?;
        return render_plan(&app.ui, &plan, app.config());
    }
    let model = app.catalog.resolve(&request.model)?;
    let suite = app.spending_suite(model.provider).await?;
    let ui = app.ui.clone();
    let events = EventSink::new(move |event| ui.progress(&event));
    let report = suite.generate_with(&request, &events, interrupt).await?;
    render_report(&app.ui, &report)
}

fn render_plan(ui: &Ui, plan: &Plan, config: &Config) -> CmdResult {
    let pricing = plan.model.pricing.as_ref();
    let q = &plan.quote;
    let doc = json!({
        "dry_run": true,
        "run_id": Value::Null,
        "model": plan.model.key, "provider": plan.model.provider, "endpoint": plan.model.endpoint,
        "params": plan.params, "system": plan.system, "requests": plan.requests,
        "guard": {
            "verdict": "pass", "sanitizer": plan.sanitizer_changes,
            "warnings": plan.verdict.warnings, "overrides": plan.verdict.overrides,
        },
        "estimate": {
            "amount": q.amount, "base": q.base, "rate": q.rate, "unit": q.unit, "quantity": q.quantity,
            "margin": q.margin_permille.map(|m| format!("{}.{:03}", m / 1000, m % 1000)),
        },
        "price": pricing.map(|p| json!({"verified": p.verified, "priced_on": p.priced_on.to_string(), "source": p.source})),
        "limits": {
            "max_cost_per_run": config.cost_management.max_cost_per_run,
            "daily_limit": config.cost_management.daily_limit,
            "warn": plan.spend.warn, "confirmation_required": plan.spend.confirm,
        },
    });
    if ui.json {
        return ui.result_json(&doc).map_err(|e| CliError::from(e).into());
    }
    let mut text = format!(
        "dry run: nothing was sent and nothing was spent\n\nmodel     {} ({}, {})\nrequest   {}\n",
        plan.model.key,
        plan.model.provider,
        plan.model.endpoint,
        serde_json::to_string_pretty(&plan.params)
            .unwrap_or_default()
            .replace('\n', "\n          ")
    );
    text.push_str("guard     pass");
    for change in &plan.sanitizer_changes {
        text.push_str(&format!("; {change}"));
    }
    for w in plan.verdict.warnings.iter().chain(&plan.verdict.overrides) {
        text.push_str(&format!("; {w}"));
    }
    text.push('\n');
    text.push_str(&format!(
        "estimate  ${} worst case ({} × ${} per {}",
        q.amount,
        q.quantity,
        q.rate,
        q.unit.label()
    ));
    if let Some(m) = q.margin_permille {
        text.push_str(&format!(
            ", ×{}.{:03} margin for an unverified price",
            m / 1000,
            m % 1000
        ));
    }
    text.push(')');
    if let Some(p) = pricing {
        text.push_str(&format!(
            "\nprice     {} on {} ({})",
            if p.verified { "verified" } else { "unverified" },
            p.priced_on,
            p.source
        ));
    }
    text.push_str(&format!(
        "\nlimits    ${} per run, ${} per day{}\n",
        config.cost_management.max_cost_per_run,
        config.cost_management.daily_limit,
        if plan.spend.confirm {
            "; a real run asks for confirmation (or --yes)"
        } else {
            ""
        }
    ));
    ui.result_text(&text).map_err(|e| CliError::from(e).into())
}

fn render_report(ui: &Ui, report: &RunReport) -> CmdResult {
    for warning in &report.warnings {
        ui.warning(warning);
    }
    if ui.json {
        let outputs: Vec<_> = report
            .outputs
            .iter()
            .map(|o| json!({"path": o.path, "sha256": o.sha256, "bytes": o.bytes, "content_type": o.content_type.mime()}))
            .collect();
        let doc = json!({
            "run_id": report.run_id, "folder": report.folder, "model": report.model,
            "outputs": outputs, "estimate": report.estimate, "actual": report.actual,
            "request_id": report.request_id, "warnings": report.warnings,
        });
        return ui.result_json(&doc).map_err(|e| CliError::from(e).into());
    }
    let mut text = format!(
        "run {}  model {}  cost ${} (reserved ${})\n",
        report.run_id, report.model, report.actual, report.estimate
    );
    for o in &report.outputs {
        text.push_str(&format!(
            "{}  {}  {} bytes\n",
            o.path.display(),
            o.content_type.mime(),
            o.bytes
        ));
    }
    ui.result_text(&text).map_err(|e| CliError::from(e).into())
}
