//! The tools, one function each: arguments in, the engine's one guarded path, a result out.
//! Nothing here decides about money or text — the engine does, for the session's caller — but
//! each spending call carries its own ceiling (`max_cost_usd`) into the engine.

use std::collections::BTreeMap;
use std::path::Path;

use acgs_core::{ProviderId, TaskKind};
use acgs_engine::pipeline::InputType;
use acgs_engine::{Caller, GenerationRequest, Pipeline, Resumed, Suite};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::args::{self, RequestFields};
use crate::error::McpError;
use crate::progress::CallWatch;
use crate::results::{self, ToolError, structured};
use crate::session::Session;

/// What a tool call returns before it becomes a result.
pub(crate) type CallResult = Result<CallToolResult, ToolError>;

/// `list_models`.
pub(crate) fn list_models(session: &Session, args: args::ListModels) -> CallResult {
    let task = args
        .task
        .as_deref()
        .map(|t| task_named("list_models", t))
        .transpose()?;
    let provider = args.provider.as_deref().map(provider_named).transpose()?;
    let models: Vec<Value> = session
        .suite()
        .catalog()
        .models()
        .filter(|m| task.is_none_or(|t| m.task == t))
        .filter(|m| provider.is_none_or(|p| m.provider == p))
        .map(|m| {
            json!({
                "model": m.key, "provider": m.provider, "task": m.task, "name": m.name,
                "price": m.pricing.as_ref().map(|p| json!({
                    "rate_usd": p.rate, "per": p.unit.label(), "verified": p.verified,
                })),
            })
        })
        .collect();
    Ok(structured(json!({ "models": models }), Vec::new()))
}

/// `show_model`.
pub(crate) fn show_model(session: &Session, args: args::ShowModel) -> CallResult {
    let model = session.suite().catalog().resolve(&args.model)?;
    Ok(structured(json!({ "model": model.as_ref() }), Vec::new()))
}

/// `estimate`: one request, or a pipeline with its inputs. Nothing is reserved or sent.
pub(crate) fn estimate(session: &Session, mut args: args::Estimate) -> CallResult {
    let fields = args.take_request();
    let Some(file) = args.pipeline else {
        if !args.inputs.is_empty() {
            return Err(
                invalid("estimate", "`inputs` are a pipeline's: give `pipeline` too").into(),
            );
        }
        let request = request(session.suite(), fields, "estimate")?;
        let plan = session.suite().plan(&request)?;
        let q = &plan.quote;
        let doc = json!({
            "model": plan.model.key, "provider": plan.model.provider,
            "worst_case_usd": q.amount, "rate_usd": q.rate, "per": q.unit.label(),
            "quantity": q.quantity, "price_verified": plan.model.pricing.as_ref().map(|p| p.verified),
            "warnings": plan.verdict.warnings,
        });
        return Ok(structured(doc, Vec::new()));
    };
    if !fields.is_empty() {
        return Err(invalid("estimate", "give a pipeline or a request, not both").into());
    }
    let (pipeline, inputs) = load_pipeline(session, "estimate", &file, args.inputs)?;
    let estimate = session.suite().estimate_pipeline(&pipeline, &inputs)?;
    let steps: Vec<Value> = estimate
        .steps
        .iter()
        .map(|p| json!({"step": p.step, "model": p.model.key, "worst_case_usd": p.quote.amount}))
        .collect();
    Ok(structured(
        json!({"worst_case_usd": estimate.total, "steps": steps}),
        Vec::new(),
    ))
}

/// `generate`: one generation through the guarded path, within `max_cost_usd`.
pub(crate) async fn generate(
    session: &Session,
    mut args: args::Generate,
    watch: &CallWatch,
) -> CallResult {
    let request = request(session.suite(), args.take_request(), "generate")?;
    let suite = capped(session, args.max_cost_usd);
    let report = suite
        .generate_with(&request, &watch.events, &watch.interrupt)
        .await?;
    let spend = session.suite().spend_now().await.ok();
    Ok(results::generation(
        &report,
        writes_text(session, &report.model),
        spend.as_ref(),
    ))
}

/// `run_pipeline`: a pipeline from the allowed folders, within `max_cost_usd`.
pub(crate) async fn run_pipeline(
    session: &Session,
    args: args::RunPipeline,
    watch: &CallWatch,
) -> CallResult {
    let (pipeline, inputs) = load_pipeline(session, "run_pipeline", &args.pipeline, args.inputs)?;
    let suite = capped(session, args.max_cost_usd);
    let report = suite
        .run_pipeline(&pipeline, &inputs, false, &watch.events, &watch.interrupt)
        .await?;
    let spend = session.suite().spend_now().await.ok();
    Ok(results::pipeline(&report, spend.as_ref()))
}

/// `run_status`.
pub(crate) async fn run_status(session: &Session, args: args::RunStatus) -> CallResult {
    let run_id = session.own_run(&args.run_id)?;
    let status = session.suite().run_status(run_id).await?;
    let resumable = status.resumable();
    let mut doc = serde_json::to_value(&status).unwrap_or(Value::Null);
    doc["resumable"] = json!(resumable);
    // The run folder may have been edited: its words reach the agent made printable.
    results::printable_value(&mut doc);
    Ok(structured(doc, Vec::new()))
}

/// `resume`: finish a run; what it still needs is reserved against the session's allowance.
pub(crate) async fn resume(session: &Session, args: args::Resume, watch: &CallWatch) -> CallResult {
    let run_id = session.own_run(&args.run_id)?;
    let resumed = capped(session, args.max_cost_usd)
        .resume(run_id, args.resubmit, &watch.events, &watch.interrupt)
        .await?;
    let spend = session.suite().spend_now().await.ok();
    Ok(match resumed {
        Resumed::Single(report) => {
            results::generation(&report, writes_text(session, &report.model), spend.as_ref())
        }
        Resumed::Pipeline(report) => results::pipeline(&report, spend.as_ref()),
    })
}

/// `spend_today`.
pub(crate) async fn spend_today(session: &Session) -> CallResult {
    let spend = session.suite().spend_now().await?;
    let mut doc = results::spend_doc(&spend);
    doc["session_id"] = json!(session.id());
    Ok(structured(doc, Vec::new()))
}

/// Whether `model` writes text (a text model, a transcription): its text is returned as model
/// output.
fn writes_text(session: &Session, model: &str) -> bool {
    session
        .suite()
        .catalog()
        .resolve(model)
        .is_ok_and(|m| m.task.writes_text())
}

/// The session's suite with this call's ceiling.
fn capped(session: &Session, max: args::Dollars) -> Suite {
    let caller: Caller = session.suite().caller().clone().cap(max.0);
    session.suite().for_caller(caller)
}

/// The generation request of `fields`: the model given, or the default of the task given.
fn request(
    suite: &Suite,
    fields: RequestFields,
    tool: &str,
) -> Result<GenerationRequest, ToolError> {
    let task = fields
        .task
        .as_deref()
        .map(|t| task_named(tool, t))
        .transpose()?;
    let model = match (fields.model, task) {
        (Some(model), _) => model,
        (None, Some(task)) => suite.catalog().default_for(task.as_str())?.qualified_key(),
        (None, None) => {
            return Err(invalid(tool, "give `model` (see list_models) or `task`").into());
        }
    };
    let mut inputs = Vec::new();
    for (flag, files) in fields.files {
        for path in files.into_paths() {
            if !path.is_absolute() {
                return Err(invalid(tool, &format!("files.{flag}: give an absolute path")).into());
            }
            inputs.push((flag.clone(), path));
        }
    }
    Ok(GenerationRequest {
        model,
        tasks: task.into_iter().collect(),
        texts: fields.texts,
        params: fields
            .params
            .into_iter()
            .map(|(name, value)| (name, value.into_text()))
            .collect(),
        count: fields.count,
        inputs,
        ..GenerationRequest::default()
    })
}

/// A pipeline file from the allowed folders (the engine opens it only there), and its inputs
/// (media inputs: absolute paths). A refusal here is audited: the engine has not seen a request.
fn load_pipeline(
    session: &Session,
    tool: &str,
    file: &Path,
    inputs: BTreeMap<String, String>,
) -> Result<(Pipeline, BTreeMap<String, String>), ToolError> {
    let pipeline = check_pipeline(session, tool, file, &inputs).map_err(|e| {
        let error = ToolError::from_boxed(e.as_ref());
        session.refused(tool, &error);
        error
    })?;
    Ok((pipeline, inputs))
}

fn check_pipeline(
    session: &Session,
    tool: &str,
    file: &Path,
    inputs: &BTreeMap<String, String>,
) -> Result<Pipeline, Box<dyn acgs_core::UserFacing>> {
    if !file.is_absolute() {
        return Err(Box::new(invalid(tool, "pipeline: give an absolute path")));
    }
    let pipeline = session
        .suite()
        .load_pipeline(file)
        .map_err(|e| Box::new(e) as Box<dyn acgs_core::UserFacing>)?;
    for (name, value) in inputs {
        let Some(spec) = pipeline.inputs.get(name) else {
            let name = results::printable_name(name);
            let reason = format!("the pipeline declares no input `{name}`");
            return Err(Box::new(invalid(tool, &reason)));
        };
        if spec.ty != InputType::Text && !Path::new(value).is_absolute() {
            let reason = format!("inputs.{name}: give an absolute path");
            return Err(Box::new(invalid(tool, &reason)));
        }
    }
    Ok(pipeline)
}

fn task_named(tool: &str, name: &str) -> Result<TaskKind, ToolError> {
    TaskKind::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = TaskKind::ALL.iter().map(|t| t.as_str()).collect();
        let name = results::printable_name(name);
        invalid(
            tool,
            &format!("unknown task `{name}`; one of {}", known.join(", ")),
        )
        .into()
    })
}

fn provider_named(name: &str) -> Result<ProviderId, ToolError> {
    ProviderId::from_name(name).ok_or_else(|| {
        let name = results::printable_name(name);
        invalid("list_models", &format!("unknown provider `{name}`")).into()
    })
}

fn invalid(tool: &str, reason: &str) -> McpError {
    McpError::InvalidArguments {
        tool: tool.to_owned(),
        reason: reason.to_owned(),
    }
}
