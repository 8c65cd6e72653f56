//! What each tool takes: serde types that refuse unknown fields (a misspelt field is an error,
//! never silently ignored), and the JSON schemas agents read, generated from the same types.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use acgs_core::Usd;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

/// A dollar amount: a JSON number (`0.25`, read through its shortest decimal form) or a decimal
/// string (`"0.25"`), never rounded to a float's nearest value.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct Dollars(pub(crate) Usd);

impl JsonSchema for Dollars {
    fn schema_name() -> Cow<'static, str> {
        "Dollars".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["number", "string"],
            "description": "US dollars, e.g. 0.25 or \"0.25\"",
        })
    }
}

/// A model parameter's value: text, a number or true/false.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Scalar {
    /// Text.
    Text(String),
    /// A number.
    Number(serde_json::Number),
    /// A switch.
    Switch(bool),
}

impl Scalar {
    /// The value as `--param NAME=VALUE` would give it.
    pub(crate) fn into_text(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Number(n) => n.to_string(),
            Self::Switch(b) => b.to_string(),
        }
    }
}

/// One input file, or several (for models that take a list of images).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Files {
    /// One absolute path.
    One(PathBuf),
    /// Several absolute paths.
    Many(Vec<PathBuf>),
}

impl Files {
    /// Every path given.
    pub(crate) fn into_paths(self) -> Vec<PathBuf> {
        match self {
            Self::One(path) => vec![path],
            Self::Many(paths) => paths,
        }
    }
}

/// Declares a tool's argument type holding the fields of one generation request, plus `extra`.
macro_rules! request_args {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            /// Model key from `list_models` (e.g. `flux_dev`); omit to use the default model of
            /// `task`.
            #[serde(default)]
            pub(crate) model: Option<String>,
            /// The task (`text_to_image`, `image_to_video`, `text_to_speech`, …): picks the
            /// default model when `model` is omitted, and is checked against the model.
            #[serde(default)]
            pub(crate) task: Option<String>,
            /// What to make (image and video models, text models).
            #[serde(default)]
            pub(crate) prompt: Option<String>,
            /// What to avoid, for models that take it.
            #[serde(default)]
            pub(crate) negative_prompt: Option<String>,
            /// Text to speak (speech models) or use (avatars).
            #[serde(default)]
            pub(crate) text: Option<String>,
            /// A system instruction (text models).
            #[serde(default)]
            pub(crate) system: Option<String>,
            /// A question about the input files (understanding models).
            #[serde(default)]
            pub(crate) question: Option<String>,
            /// Other parameters of the model by name, as `show_model` lists them.
            #[serde(default)]
            pub(crate) params: BTreeMap<String, Scalar>,
            /// Input files by field (`image`, `images`, `video`, `audio`, `end_image`): absolute
            /// paths inside the folders the user allowed.
            #[serde(default)]
            pub(crate) files: BTreeMap<String, Files>,
            /// How many outputs, for models that make several.
            #[serde(default)]
            pub(crate) count: Option<u32>,
            $($extra)*
        }

        impl $name {
            /// The request fields, taken out (the rest stays).
            pub(crate) fn take_request(&mut self) -> RequestFields {
                RequestFields {
                    model: self.model.take(),
                    task: self.task.take(),
                    texts: [
                        ("prompt", self.prompt.take()),
                        ("negative_prompt", self.negative_prompt.take()),
                        ("text", self.text.take()),
                        ("system", self.system.take()),
                        ("question", self.question.take()),
                    ]
                    .into_iter()
                    .filter_map(|(flag, text)| Some((flag.to_owned(), text?)))
                    .collect(),
                    params: std::mem::take(&mut self.params),
                    files: std::mem::take(&mut self.files),
                    count: self.count.take(),
                }
            }
        }
    };
}

/// The fields of one generation request, however a tool received them.
#[derive(Debug, Default)]
pub(crate) struct RequestFields {
    pub(crate) model: Option<String>,
    pub(crate) task: Option<String>,
    pub(crate) texts: BTreeMap<String, String>,
    pub(crate) params: BTreeMap<String, Scalar>,
    pub(crate) files: BTreeMap<String, Files>,
    pub(crate) count: Option<u32>,
}

impl RequestFields {
    /// Whether nothing of a request was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.model.is_none()
            && self.task.is_none()
            && self.texts.is_empty()
            && self.params.is_empty()
            && self.files.is_empty()
            && self.count.is_none()
    }
}

/// `list_models`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListModels {
    /// Only models of this task (`text_to_image`, `image_to_video`, `text_to_speech`, …).
    #[serde(default)]
    pub(crate) task: Option<String>,
    /// Only models of this provider: `fal`, `gemini` or `elevenlabs`.
    #[serde(default)]
    pub(crate) provider: Option<String>,
}

/// `show_model`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowModel {
    /// Model key from `list_models`.
    pub(crate) model: String,
}

request_args! {
    /// `estimate`: one request, or a pipeline file with its inputs.
    Estimate {
        /// A pipeline file (absolute path inside the allowed folders) to price instead of one
        /// request; the request fields must then be left out.
        #[serde(default)]
        pub(crate) pipeline: Option<PathBuf>,
        /// The pipeline's inputs by name (text, or absolute paths for media inputs).
        #[serde(default)]
        pub(crate) inputs: BTreeMap<String, String>,
    }
}

request_args! {
    /// `generate`.
    Generate {
        /// The most this call may cost. If the worst case is higher the call is refused, not
        /// made cheaper: call `estimate` first.
        pub(crate) max_cost_usd: Dollars,
    }
}

/// `run_pipeline`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunPipeline {
    /// The pipeline file: an absolute path inside the allowed folders.
    pub(crate) pipeline: PathBuf,
    /// Its inputs by name (text, or absolute paths for media inputs).
    #[serde(default)]
    pub(crate) inputs: BTreeMap<String, String>,
    /// The most the whole run may cost; a higher worst case is refused.
    pub(crate) max_cost_usd: Dollars,
}

/// `run_status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunStatus {
    /// The run id a generation, a pipeline or a progress notification of this session gave.
    pub(crate) run_id: String,
}

/// `resume`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resume {
    /// The run to finish (one made in this session).
    pub(crate) run_id: String,
    /// The most what is left of the run may cost; a higher worst case is refused.
    pub(crate) max_cost_usd: Dollars,
    /// Send again a step whose sending was interrupted, writing its first reservation off (it
    /// may be paid twice). Off by default.
    #[serde(default)]
    pub(crate) resubmit: bool,
}

/// `spend_today`: no arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpendToday {}
