//! `acgs speech`, `acgs sound`, `acgs music` and `acgs voices`: speech and dialogue, sound
//! effects and sound tracks, music, and the voices and models to choose from.

use acgs_core::TaskKind;
use acgs_engine::Interrupt;
use serde_json::json;

use super::generate::{base, execute, model_for, texts};
use super::models::aligned;
use crate::app::App;
use crate::cli::{MusicArgs, SoundArgs, SpeechArgs, VoicesArgs};
use crate::failure::{CliError, CmdResult};
use crate::ui::printable;

/// `acgs speech`.
pub(crate) async fn speech(app: &App, args: &SpeechArgs, interrupt: &Interrupt) -> CmdResult {
    let text = super::text_argument(args.text.as_ref(), args.file.as_deref())?;
    let purpose = if args.dialogue {
        "text_to_speech:dialogue"
    } else {
        TaskKind::TextToSpeech.as_str()
    };
    let model = model_for(app, args.model.as_ref(), purpose)?;
    let mut request = base(model, vec![TaskKind::TextToSpeech], &args.run);
    request.texts = texts(&[("text", Some(&text))]);
    if let Some(voice) = &args.voice {
        request.params.push(("voice".into(), voice.clone()));
    }
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs sound`: a sound effect, or with `--video` the sound track of a video.
pub(crate) async fn sound(app: &App, args: &SoundArgs, interrupt: &Interrupt) -> CmdResult {
    let (purpose, task, length) = match args.video {
        Some(_) => ("add_sound", TaskKind::AddSound, "duration"),
        None => (
            "text_to_audio:sound",
            TaskKind::TextToAudio,
            "duration_seconds",
        ),
    };
    let model = model_for(app, args.model.as_ref(), purpose)?;
    let mut request = base(model, vec![task], &args.run);
    request.texts = texts(&[("prompt", Some(&args.prompt))]);
    if let Some(video) = &args.video {
        request.inputs.push(("video".into(), video.clone()));
    }
    if let Some(seconds) = &args.duration {
        request.params.push((length.into(), seconds.clone()));
    }
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs music`.
pub(crate) async fn music(app: &App, args: &MusicArgs, interrupt: &Interrupt) -> CmdResult {
    let model = model_for(app, args.model.as_ref(), "text_to_audio:music")?;
    let mut request = base(model, vec![TaskKind::TextToAudio], &args.run);
    request.texts = texts(&[("prompt", Some(&args.prompt))]);
    if let Some(seconds) = args.duration {
        request
            .params
            .push(("duration".into(), seconds.to_string()));
    }
    if args.instrumental {
        request
            .params
            .push(("force_instrumental".into(), "true".into()));
    }
    execute(app, request, args.run.dry_run, interrupt).await
}

/// `acgs voices [--models]`: read-only, nothing is spent.
pub(crate) async fn voices(app: &App, args: &VoicesArgs) -> CmdResult {
    let provider = app.elevenlabs()?;
    if args.models {
        let models = provider.models().await?;
        // What --model takes: the catalogue key whose endpoint is the ElevenLabs model id.
        let key_of = |id: &str| {
            app.catalog
                .models()
                .find(|m| m.provider == acgs_core::ProviderId::ElevenLabs && m.endpoint == id)
                .map(|m| m.key.clone())
        };
        if app.ui.json {
            let listed: Vec<_> = models
                .iter()
                .map(|m| json!({"model": key_of(&m.model_id), "provider_model": m}))
                .collect();
            return app
                .ui
                .result_json(&json!({ "models": listed }))
                .map_err(|e| CliError::from(e).into());
        }
        let mut rows = vec![
            [
                "--model",
                "ELEVENLABS ID",
                "MAX CHARACTERS",
                "COST MULTIPLIER",
                "NAME",
            ]
            .map(str::to_owned),
        ];
        for m in models.iter().filter(|m| m.can_do_text_to_speech) {
            rows.push([
                key_of(&m.model_id).unwrap_or_else(|| "(not in the catalogue)".into()),
                printable(&m.model_id),
                m.maximum_text_length_per_request
                    .map_or_else(|| "?".into(), |n| n.to_string()),
                m.model_rates
                    .as_ref()
                    .map_or_else(|| "?".into(), |r| r.character_cost_multiplier.to_string()),
                printable(&m.name),
            ]);
        }
        let text = aligned(&rows);
        return app
            .ui
            .result_text(&text)
            .map_err(|e| CliError::from(e).into());
    }
    let voices = provider.voices().await?;
    if app.ui.json {
        return app
            .ui
            .result_json(&json!({ "voices": voices }))
            .map_err(|e| CliError::from(e).into());
    }
    let mut rows = vec![["VOICE ID", "NAME", "CATEGORY", "LABELS"].map(str::to_owned)];
    for v in &voices {
        let labels: Vec<String> = v.labels.iter().map(|(k, l)| format!("{k}={l}")).collect();
        rows.push([
            printable(&v.voice_id),
            printable(&v.name),
            printable(v.category.as_deref().unwrap_or("-")),
            printable(&labels.join(", ")),
        ]);
    }
    let text = aligned(&rows);
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}
