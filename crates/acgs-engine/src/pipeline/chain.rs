//! The chain file of the Python suite acgs continues, as `acgs import` reads it: its shape, the
//! model names that differ from catalogue keys, and the task of each step type.

use std::collections::BTreeMap;

use acgs_core::task::TaskKind;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

/// A chain file as the Python suite writes it (the parts acgs reads).
#[derive(Debug, Deserialize)]
pub(super) struct Chain {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) description: Option<String>,
    /// The main input (`{{input}}`).
    #[serde(default)]
    pub(super) prompt: Option<String>,
    #[serde(default)]
    pub(super) input_image: Option<String>,
    #[serde(default)]
    pub(super) input_video: Option<String>,
    #[serde(default)]
    pub(super) input_audio: Option<String>,
    #[serde(default)]
    pub(super) steps: Vec<Spanned<ChainStep>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChainStep {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) params: BTreeMap<String, Value>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    /// `parallel_group`'s members (also accepted under `params.steps`).
    #[serde(default)]
    pub(super) steps: Vec<Spanned<ChainStep>>,
    /// Keys acgs does not read (each listed as not converted).
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, Value>,
}

const fn yes() -> bool {
    true
}

/// Chain model names whose catalogue key differs.
pub(super) const MODEL_NAMES: [(&str, &str); 9] = [
    ("elevenlabs", "elevenlabs_multilingual_v2"),
    ("elevenlabs_turbo", "elevenlabs_turbo_v2_5"),
    ("flux_kontext", "kontext"),
    ("flux_kontext_multi", "kontext_multi"),
    ("seededit_v3", "seededit"),
    ("seedream3", "seedream_v3"),
    ("photon_flash", "photon"),
    ("clarity_upscaler", "clarity"),
    ("scribe", "elevenlabs_scribe_v1"),
];

/// The model a chain step of `kind` uses when it names none (or names the suite's `local`).
pub(super) fn default_model(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "split_image" => "split_grid",
        "concat_videos" => "concat",
        "generate_subtitles" => "subtitles",
        "add_audio" => "mux_audio",
        "prompt_generation" => "gemini_2_5_flash",
        "speech_to_text" => "elevenlabs_scribe_v1",
        "image_understanding" => "gemini_2_5_flash_vision",
        _ => return None,
    })
}

/// A chain step type's task.
pub(super) fn task_of(kind: &str) -> Option<TaskKind> {
    Some(match kind {
        "text_to_image" => TaskKind::TextToImage,
        "image_to_image" => TaskKind::ImageToImage,
        "image_to_video" => TaskKind::ImageToVideo,
        "text_to_video" => TaskKind::TextToVideo,
        "text_to_speech" => TaskKind::TextToSpeech,
        "speech_to_text" => TaskKind::SpeechToText,
        "image_understanding" => TaskKind::ImageUnderstanding,
        "prompt_generation" => TaskKind::TextGeneration,
        "upscale_video" => TaskKind::UpscaleVideo,
        "split_image" => TaskKind::SplitImage,
        "concat_videos" | "generate_subtitles" | "add_audio" => TaskKind::EditVideo,
        _ => return None,
    })
}
