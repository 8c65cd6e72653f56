//! Stage 3: inspect every text field — sanitize, refuse credentials, block lists, injection
//! heuristics — and have every configured external moderator judge it.

use std::sync::Arc;

use acgs_core::config::Config;
use acgs_core::moderation::{ModerationVerdict, Moderator};
use acgs_core::task::TaskKind;
use acgs_guard::{Guard, GuardError, InspectOptions};

use crate::stages::validate::{TextField, Validated};

/// Texts after inspection.
#[derive(Debug, Clone, Default)]
pub(crate) struct InspectedTexts {
    /// Sanitized text fields.
    pub texts: Vec<TextField>,
    /// Sanitized system instruction.
    pub system: Option<TextField>,
    /// Rules that warned.
    pub warnings: Vec<String>,
    /// What the sanitizer changed, per field (`prompt: 2 invisible characters removed`).
    pub changes: Vec<String>,
}

/// Character limit for `field` of a model doing `task`: image and video prompts follow
/// `max_prompt_chars`, speech follows `max_speech_chars`, text models their own limit.
#[must_use]
pub fn limit_for(task: TaskKind, model_limit: Option<u32>, config: &Config) -> u32 {
    let configured = match task {
        TaskKind::TextToSpeech => config.guard.max_speech_chars,
        _ if task.is_text_model() => u32::MAX,
        _ => config.guard.max_prompt_chars,
    };
    match (task, model_limit) {
        (TaskKind::TextToSpeech, _) => configured,
        (_, Some(model)) => model.min(configured),
        (_, None) if configured == u32::MAX => 1_000_000,
        (_, None) => configured,
    }
}

/// Inspect every text field of `validated`.
pub(crate) fn inspect(
    guard: &Guard,
    validated: &Validated,
    config: &Config,
) -> Result<InspectedTexts, GuardError> {
    let options = InspectOptions {
        limit: limit_for(validated.model.task, validated.model.max_text_chars, config),
        injection: validated
            .model
            .task
            .is_text_model()
            .then_some(config.guard.on_injection),
    };
    let mut out = InspectedTexts::default();
    for field in validated.texts.iter().chain(validated.system.iter()) {
        let inspected = guard.inspect(&field.flag, &field.text, options)?;
        let s = &inspected.sanitized;
        if s.changed() {
            out.changes.push(format!(
                "{}: {} hidden or control characters removed{}",
                field.flag,
                s.removed,
                if s.normalized {
                    ", compatibility forms normalized"
                } else {
                    ""
                }
            ));
        }
        out.warnings.extend(inspected.warnings);
        let clean = TextField {
            text: inspected.text,
            ..field.clone()
        };
        if validated
            .system
            .as_ref()
            .is_some_and(|sys| sys.flag == field.flag)
        {
            out.system = Some(clean);
        } else {
            out.texts.push(clean);
        }
    }
    Ok(out)
}

/// The texts of `validated` sanitized only, no rule judging them: for a request rebuilt from a
/// run's record, which was inspected before it was sent.
pub(crate) fn sanitized(validated: &Validated) -> InspectedTexts {
    let clean = |field: &TextField| TextField {
        text: acgs_guard::sanitize(&field.text).text,
        ..field.clone()
    };
    InspectedTexts {
        texts: validated.texts.iter().map(clean).collect(),
        system: validated.system.as_ref().map(clean),
        ..InspectedTexts::default()
    }
}

/// Inspect text a model produced before it is reused (pipelines): the same rules as user text,
/// injection heuristics always on.
pub(crate) fn inspect_model_text(
    guard: &Guard,
    step: &str,
    text: &str,
    config: &Config,
) -> Result<String, GuardError> {
    let options = InspectOptions {
        limit: 1_000_000,
        injection: Some(config.guard.on_injection),
    };
    guard
        .inspect(&format!("steps.{step}.text"), text, options)
        .map(|i| i.text)
}

/// The external part: every configured moderator judges every inspected text (`(flag, text)`).
/// A moderator that cannot answer refuses (moderation fails closed).
pub(crate) async fn moderate(
    moderators: &[Arc<dyn Moderator>],
    texts: &[(String, String)],
) -> Result<(), GuardError> {
    for moderator in moderators {
        for (field, text) in texts {
            match moderator.moderate(text).await {
                Ok(ModerationVerdict::Allow) => {}
                Ok(ModerationVerdict::Block { category, .. }) => {
                    return Err(GuardError::Moderated {
                        field: field.clone(),
                        moderator: moderator.name().to_owned(),
                        category,
                    });
                }
                Err(e) => {
                    return Err(GuardError::ModerationUnavailable {
                        field: field.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}
