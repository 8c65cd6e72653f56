//! `acgs text` and `acgs analyze`: language models that write, and that look at images, video
//! and recordings.

use acgs_core::{MediaKind, TaskKind};
use acgs_engine::Interrupt;
use acgs_providers_gemini::PRESETS;

use super::generate::{base, execute, media_kind_of, texts};
use crate::app::App;
use crate::cli::{AnalyzeArgs, TextArgs};
use crate::failure::{CliError, CmdResult};

/// `acgs text`.
pub async fn text(app: &App, args: &TextArgs, interrupt: &Interrupt) -> CmdResult {
    let prompt = super::text_argument(args.prompt.as_ref(), args.file.as_deref())?;
    let mut request = base(
        args.model
            .clone()
            .unwrap_or_else(|| "gemini_2_5_flash".to_owned()),
        vec![TaskKind::TextGeneration],
        &args.run,
    );
    request.texts = texts(&[("prompt", Some(&prompt)), ("system", args.system.as_ref())]);
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs analyze`.
pub async fn analyze(app: &App, args: &AnalyzeArgs, interrupt: &Interrupt) -> CmdResult {
    let (default, task, flag) = match media_kind_of(&args.input)? {
        MediaKind::Image => (
            "gemini_2_5_flash_vision",
            TaskKind::ImageUnderstanding,
            "image",
        ),
        MediaKind::Video => (
            "gemini_2_5_flash_video",
            TaskKind::VideoUnderstanding,
            "video",
        ),
        MediaKind::Audio => (
            "gemini_2_5_flash_audio",
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
                CliError::Usage(format!(
                    "no preset `{}`; choose {} or ask with --question",
                    args.preset,
                    names.join(", ")
                ))
            })?,
    };
    let mut request = base(
        args.model.clone().unwrap_or_else(|| default.to_owned()),
        vec![task],
        &args.run,
    );
    request.texts = texts(&[("prompt", Some(&prompt))]);
    request.inputs.push((flag.to_owned(), args.input.clone()));
    execute(app, request, args.run.dry_run, interrupt).await
}
