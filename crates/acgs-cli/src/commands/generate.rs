//! The generating commands — `image`, `video`, `avatar`, `upscale`, `transcribe` — and `resume`:
//! each builds a request, then `--dry-run` shows the plan or the engine runs the guarded path.

use std::collections::BTreeMap;
use std::path::Path;

use acgs_core::config::Config;
use acgs_core::pricing::duration_seconds;
use acgs_core::{ContentType, MediaKind, ModelSpec, TaskKind};
use acgs_engine::{GenerationRequest, Interrupt, Plan, RunReport};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::{AvatarArgs, ImageArgs, RunOptions, TranscribeArgs, UpscaleArgs, VideoArgs};
use crate::failure::{CliError, CmdResult, Failure};
use crate::ui::Ui;

pub(crate) fn base(model: String, tasks: Vec<TaskKind>, run: &RunOptions) -> GenerationRequest {
    GenerationRequest {
        model,
        tasks,
        params: run.params.clone(),
        out_stem: run.out.clone(),
        timeout_secs: run.timeout,
        detach: run.detach,
        ..GenerationRequest::default()
    }
}

/// The model the user chose, or the catalogue's default for `purpose` (`text_to_image`,
/// `avatar:audio`, …; see `ModelSpec::default_for`).
pub(crate) fn model_for(
    app: &App,
    chosen: Option<&String>,
    purpose: &str,
) -> Result<String, Failure> {
    match chosen {
        Some(model) => Ok(model.clone()),
        None => Ok(app.catalog.default_for(purpose)?.qualified_key()),
    }
}

pub(crate) fn texts(pairs: &[(&str, Option<&String>)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|(flag, text)| text.map(|t| ((*flag).to_owned(), t.clone())))
        .collect()
}

/// The flag a model takes images under: `image` for one, `images` for a list.
fn image_flag(model: &ModelSpec) -> &'static str {
    if model.field_for_flag("image").is_some() {
        "image"
    } else {
        "images"
    }
}

/// What the file at `path` is, by its magic bytes (to pick a default model).
pub(crate) fn media_kind_of(path: &Path) -> Result<MediaKind, Failure> {
    use std::io::Read as _;
    let mut head = [0u8; 64];
    let n = fs_err::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| CliError::Usage(format!("cannot read {}: {}", path.display(), e.kind())))?;
    ContentType::sniff(&head[..n])
        .map(ContentType::media_kind)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{} is not an image, video or audio file acgs knows",
                path.display()
            ))
            .into()
        })
}

/// `acgs image`.
pub(crate) async fn image(app: &App, args: &ImageArgs, interrupt: &Interrupt) -> CmdResult {
    let editing = !args.edit.is_empty();
    let purpose = match args.edit.len() {
        0 => "text_to_image",
        1 => "image_to_image",
        _ => "image_to_image:multi",
    };
    let model_key = model_for(app, args.model.as_ref(), purpose)?;
    let tasks = if editing {
        vec![TaskKind::ImageToImage]
    } else {
        vec![TaskKind::TextToImage]
    };
    let mut request = base(model_key, tasks, &args.run);
    request.texts = texts(&[
        ("prompt", Some(&args.prompt)),
        ("negative_prompt", args.negative_prompt.as_ref()),
    ]);
    request.count = args.count;
    if editing {
        let model = app.catalog.resolve(&request.model)?;
        let flag = image_flag(&model);
        request.inputs = args
            .edit
            .iter()
            .map(|p| (flag.to_owned(), p.clone()))
            .collect();
    }
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs video`: from text, an image, two frames, references, or a video (edit, or motion
/// transfer with an image).
pub(crate) async fn video(app: &App, args: &VideoArgs, interrupt: &Interrupt) -> CmdResult {
    let (task, purpose) = match (
        &args.video,
        &args.image,
        &args.end_image,
        args.refs.is_empty(),
    ) {
        (Some(_), Some(_), _, _) => (TaskKind::VideoToVideo, "video_to_video:image"),
        (Some(_), None, _, _) => (TaskKind::VideoToVideo, "video_to_video"),
        (None, Some(_), Some(_), _) => (TaskKind::ImageToVideo, "image_to_video:end_image"),
        (None, Some(_), None, _) => (TaskKind::ImageToVideo, "image_to_video"),
        (None, None, _, false) => (TaskKind::ImageToVideo, "image_to_video:reference"),
        (None, None, _, true) => (TaskKind::TextToVideo, "text_to_video"),
    };
    let model = model_for(app, args.model.as_ref(), purpose)?;
    let mut request = base(model, vec![task], &args.run);
    request.texts = texts(&[
        ("prompt", Some(&args.prompt)),
        ("negative_prompt", args.negative_prompt.as_ref()),
    ]);
    let model = app.catalog.resolve(&request.model)?;
    let files = [("video", &args.video), ("end_image", &args.end_image)];
    for (flag, path) in files {
        if let Some(path) = path {
            request.inputs.push((flag.to_owned(), path.clone()));
        }
    }
    if let Some(image) = &args.image {
        request
            .inputs
            .push((image_flag(&model).to_owned(), image.clone()));
    }
    for reference in &args.refs {
        request
            .inputs
            .push(("images".to_owned(), reference.clone()));
    }
    if let Some(seconds) = args.duration {
        request
            .params
            .push(("duration".into(), duration_value(&model, seconds)?));
    }
    execute(app, request, args.run.dry_run, interrupt).await
}

/// The model's own spelling of a duration (`"5"`, `"8s"`, `8`).
fn duration_value(model: &ModelSpec, seconds: u64) -> Result<String, Failure> {
    let spec = model
        .params
        .get("duration")
        .ok_or_else(|| CliError::Usage(format!("`{}` has no duration to choose", model.key)))?;
    spec.values
        .iter()
        .find(|v| duration_seconds(v) == Some(seconds))
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .ok_or_else(|| {
            let allowed: Vec<String> = spec
                .values
                .iter()
                .filter_map(duration_seconds)
                .map(|s| s.to_string())
                .collect();
            CliError::Usage(format!(
                "`{}` makes videos of {} seconds",
                model.key,
                allowed.join(", ")
            ))
            .into()
        })
}

/// `acgs avatar`.
pub(crate) async fn avatar(app: &App, args: &AvatarArgs, interrupt: &Interrupt) -> CmdResult {
    let purpose = if args.audio.is_some() {
        "avatar:audio"
    } else {
        "avatar:text"
    };
    let model = model_for(app, args.model.as_ref(), purpose)?;
    let mut request = base(model, vec![TaskKind::Avatar], &args.run);
    request.texts = texts(&[
        ("prompt", args.prompt.as_ref()),
        ("text", args.text.as_ref()),
    ]);
    request.inputs.push(("image".into(), args.image.clone()));
    if let Some(audio) = &args.audio {
        request.inputs.push(("audio".into(), audio.clone()));
    }
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs upscale`.
pub(crate) async fn upscale(app: &App, args: &UpscaleArgs, interrupt: &Interrupt) -> CmdResult {
    let (purpose, tasks, flag) = match media_kind_of(&args.input)? {
        MediaKind::Video => ("upscale_video", vec![TaskKind::UpscaleVideo], "video"),
        MediaKind::Image => (
            "upscale_image",
            vec![TaskKind::UpscaleImage, TaskKind::ImageToImage],
            "image",
        ),
        _ => return Err(CliError::Usage("upscale takes an image or a video".into()).into()),
    };
    let model = model_for(app, args.model.as_ref(), purpose)?;
    let mut request = base(model, tasks, &args.run);
    request.inputs.push((flag.to_owned(), args.input.clone()));
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs transcribe`.
pub(crate) async fn transcribe(
    app: &App,
    args: &TranscribeArgs,
    interrupt: &Interrupt,
) -> CmdResult {
    let model = model_for(app, args.model.as_ref(), TaskKind::SpeechToText.as_str())?;
    let mut request = base(model, vec![TaskKind::SpeechToText], &args.run);
    request.inputs.push(("audio".into(), args.audio.clone()));
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `--dry-run` shows the plan; otherwise the guarded path runs.
pub(crate) async fn execute(
    app: &App,
    request: GenerationRequest,
    dry_run: bool,
    interrupt: &Interrupt,
) -> CmdResult {
    if dry_run {
        let plan = app.planning_suite()?.plan(&request)?;
        return render_plan(&app.ui, &plan, app.config());
    }
    let model = app.catalog.resolve(&request.model)?;
    let suite = app.spending_suite(model.provider).await?;
    let report = suite
        .generate_with(&request, &super::progress_sink(&app.ui), interrupt)
        .await?;
    render_report(app, &report)
}

fn render_plan(ui: &Ui, plan: &Plan, config: &Config) -> CmdResult {
    let pricing = plan.model.pricing.as_ref();
    let q = &plan.quote;
    let inputs: Vec<Value> = plan
        .inputs
        .files
        .iter()
        .map(|f| json!({"field": f.field, "file": f.file_name, "content_type": f.content_type.mime(), "bytes": f.size}))
        .collect();
    let doc = json!({
        "dry_run": true,
        "model": plan.model.key, "provider": plan.model.provider, "endpoint": plan.model.endpoint, "task": plan.model.task,
        "params": plan.params, "system": plan.system, "requests": plan.requests, "inputs": inputs,
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
            "warn": plan.spend.is_some_and(|s| s.warn), "confirmation_required": plan.spend.is_some_and(|s| s.confirm),
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
    for f in &plan.inputs.files {
        text.push_str(&format!(
            "input     {} = {} ({}, {} bytes; uploaded when run)\n",
            f.field,
            f.file_name,
            f.content_type.mime(),
            f.size
        ));
    }
    text.push_str("guard     pass");
    for change in plan
        .sanitizer_changes
        .iter()
        .chain(&plan.verdict.warnings)
        .chain(&plan.verdict.overrides)
    {
        text.push_str(&format!("; {change}"));
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
        if plan.spend.is_some_and(|s| s.confirm) {
            "; a real run asks for confirmation (or --yes)"
        } else {
            ""
        }
    ));
    ui.result_text(&text).map_err(|e| CliError::from(e).into())
}

/// The text a text-producing model wrote or a transcription heard (its first text output), for
/// printing.
fn written_text(app: &App, report: &RunReport) -> Option<String> {
    let task = app.catalog.resolve(&report.model).ok()?.task;
    if !task.writes_text() {
        return None;
    }
    fs_err::read_to_string(&report.text_output()?.path).ok()
}

/// The result: for text models the text itself on stdout (made safe for a terminal) and the run
/// on stderr; otherwise the run and its files. `--json` carries both.
pub(crate) fn render_report(app: &App, report: &RunReport) -> CmdResult {
    let ui = &app.ui;
    let written = written_text(app, report);
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
            "text": written,
        });
        return ui.result_json(&doc).map_err(|e| CliError::from(e).into());
    }
    let summary = format!(
        "run {}  model {}  cost ${} (reserved ${})",
        report.run_id, report.model, report.actual, report.estimate
    );
    if let Some(written) = written {
        ui.note(&summary);
        // Streamed, the words are on stdout already (made safe as they came).
        let shown = if ui.streamed_text() {
            String::new()
        } else {
            acgs_guard::sanitize(&written).text
        };
        return ui.result_text(&shown).map_err(|e| CliError::from(e).into());
    }
    let mut text = format!("{summary}\n");
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
