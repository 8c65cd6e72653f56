//! `acgs text` and `acgs analyze`: language models that write, and that look at images, video
//! and recordings.

use acgs_core::{MediaKind, TaskKind};
use acgs_engine::Interrupt;
use acgs_providers_gemini::PRESETS;

use super::generate::{base, execute, media_kind_of, model_for, texts};
use crate::app::App;
use crate::cli::{AnalyzeArgs, TextArgs};
use crate::failure::{CliError, CmdResult};

/// `acgs text`.
pub(crate) async fn text(app: &App, args: &TextArgs, interrupt: &Interrupt) -> CmdResult {
    let prompt = super::text_argument(args.prompt.as_ref(), args.file.as_deref())?;
    let model = model_for(app, args.model.as_ref(), TaskKind::TextGeneration.as_str())?;
    let mut request = base(model, vec![TaskKind::TextGeneration], &args.run);
    request.texts = texts(&[("prompt", Some(&prompt)), ("system", args.system.as_ref())]);
    // People read the words as they come; a script with --json gets the whole text at once.
    request.stream_text = !app.ui.json;
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs analyze`.
pub(crate) async fn analyze(app: &App, args: &AnalyzeArgs, interrupt: &Interrupt) -> CmdResult {
    let (purpose, task, flag) = match media_kind_of(&args.input)? {
        MediaKind::Image => ("image_understanding", TaskKind::ImageUnderstanding, "image"),
        MediaKind::Video => ("video_understanding", TaskKind::VideoUnderstanding, "video"),
        MediaKind::Audio => (
            "video_understanding:audio",
            TaskKind::VideoUnderstanding,
            "audio",
        ),
        MediaKind::Text => {
            return Err(CliError::Usage("analyze takes an image, a video or audio".into()).into());
        }
    };
    let prompt = match &args.question {
        Some(question) => question.clone(),
        None => PRESETS
            .iter()
            .find(|(name, _)| *name == args.preset)
            .map(|(_, instruction)| (*instruction).to_owned())
            .ok_or_else(|| {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                let close = acgs_core::suggest::closest(&args.preset, names.iter().copied(), 2);
                CliError::Usage(format!(
                    "no preset `{}`{}; choose {} or ask with --question",
                    args.preset,
                    acgs_core::suggest::did_you_mean(&close),
                    names.join(", ")
                ))
            })?,
    };
    let model = model_for(app, args.model.as_ref(), purpose)?;
    let mut request = base(model, vec![task], &args.run);
    request.texts = texts(&[("prompt", Some(&prompt))]);
    request.inputs.push((flag.to_owned(), args.input.clone()));
    execute(app, request, args.run.dry_run, interrupt).await
}
