//! The version-1 pipeline file (DESIGN.md §3.7), read with serde-saphyr: includes and unknown
//! tags refused, alias, depth and size budgets on, unknown keys rejected, duplicate keys an error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The largest pipeline file acgs reads.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// A pipeline file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineFile {
    /// Always 1.
    pub version: Spanned<u32>,
    /// A name for people.
    #[serde(default)]
    pub name: Option<String>,
    /// Declared inputs, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Run settings (may tighten the configured limits, never loosen them).
    #[serde(default)]
    pub settings: Settings,
    /// The steps, in any order.
    pub steps: Vec<StepSpec>,
}

/// What an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// Text.
    Text,
    /// A path to an image.
    Image,
    /// A path to a video.
    Video,
    /// A path to an audio file.
    Audio,
}

/// A declared input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: InputType,
    /// Used when the run gives none.
    #[serde(default)]
    pub default: Option<String>,
    /// For people.
    #[serde(default)]
    pub description: Option<String>,
}

/// What a failed step does to the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Start nothing new; the run fails.
    #[default]
    Stop,
    /// Run every step that does not depend on the failed one; the run still fails.
    Continue,
}

/// `settings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// Steps running at once (1–32; default 4).
    #[serde(default)]
    pub max_parallel: Option<Spanned<u32>>,
    /// After a failed step.
    #[serde(default)]
    pub on_error: OnError,
    /// Limits for this run: tighter than the configuration, or refused.
    #[serde(default)]
    pub cost_management: Option<Spanned<CostSettings>>,
}

/// `settings.cost_management`: decimal strings or numbers in dollars.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostSettings {
    /// Worst case of the whole run.
    #[serde(default)]
    pub max_cost_per_run: Option<Scalar>,
    /// Spend per day.
    #[serde(default)]
    pub daily_limit: Option<Scalar>,
    /// Warn at or above this estimate.
    #[serde(default)]
    pub warn_threshold: Option<Scalar>,
    /// Ask before spending.
    #[serde(default)]
    pub require_confirmation: Option<bool>,
}

/// A scalar as written (`5`, `"5"`, `3.00`, `true`), kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub(crate) struct Scalar(pub String);

impl TryFrom<serde_json::Value> for Scalar {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        match value {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Self(b.to_string())),
            _ => Err("expected a single value (text, number or true/false)".into()),
        }
    }
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    /// Unique id: `[a-z0-9_-]`, at most 64 characters.
    pub id: Spanned<String>,
    /// Catalogue key.
    pub model: Spanned<String>,
    /// Text fields by step key.
    #[serde(default)]
    pub prompt: Option<Spanned<String>>,
    /// What to avoid.
    #[serde(default)]
    pub negative_prompt: Option<Spanned<String>>,
    /// Text to speak or use.
    #[serde(default)]
    pub text: Option<Spanned<String>>,
    /// A system instruction (text models).
    #[serde(default)]
    pub system: Option<Spanned<String>>,
    /// A question (understanding models; the model's prompt).
    #[serde(default)]
    pub question: Option<Spanned<String>>,
    /// One image.
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// Several images.
    #[serde(default)]
    pub images: Option<Vec<Spanned<String>>>,
    /// A video.
    #[serde(default)]
    pub video: Option<Spanned<String>>,
    /// An audio file.
    #[serde(default)]
    pub audio: Option<Spanned<String>>,
    /// Model parameters: literals, or `{{ inputs.name }}`.
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<Scalar>>,
    /// Outputs per request or requests (what `-n` means for the model).
    #[serde(default)]
    pub n: Option<u32>,
    /// Extra ordering: steps that must finish first.
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
}

/// The text step keys, in the order they are read.
pub(crate) const TEXT_KEYS: [&str; 5] = ["prompt", "negative_prompt", "text", "system", "question"];
/// The single-file media step keys.
pub(crate) const MEDIA_KEYS: [&str; 3] = ["image", "video", "audio"];

impl StepSpec {
    /// The text fields that are set, by step key.
    #[must_use]
    pub(crate) fn texts(&self) -> Vec<(&'static str, &Spanned<String>)> {
        let fields = [
            &self.prompt,
            &self.negative_prompt,
            &self.text,
            &self.system,
            &self.question,
        ];
        TEXT_KEYS
            .into_iter()
            .zip(fields)
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect()
    }

    /// The media fields that are set, by step key (`images` once per item).
    #[must_use]
    pub(crate) fn media(&self) -> Vec<(&'static str, &Spanned<String>)> {
        let mut out: Vec<(&'static str, &Spanned<String>)> = MEDIA_KEYS
            .into_iter()
            .zip([&self.image, &self.video, &self.audio])
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect();
        for item in self.images.iter().flatten() {
            out.push(("images", item));
        }
        out
    }
}

/// Parse `source` with the hardened options; the error is one line with its line and column.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(source: &str) -> Result<T, String> {
    if source.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the file is larger than {} KiB",
            MAX_FILE_BYTES / 1024
        ));
    }
    serde_saphyr::from_str_with_options(source, options()).map_err(|e| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("unreadable YAML")
            .trim_start_matches("error: ")
            .to_owned()
    })
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 64;
    budget.max_anchors = 64;
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = 2 * MAX_FILE_BYTES;
    let mut aliases = serde_saphyr::options::AliasLimits::default();
    aliases.max_total_replayed_events = 10_000;
    aliases.max_alias_expansions_per_anchor = 64;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits = aliases;
    options.reject_unsupported_tags = true;
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options
}
