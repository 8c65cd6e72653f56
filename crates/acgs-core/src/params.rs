//! The parameter schema of a model: each field's kind on the guarded path, its value type and
//! bounds, and how `-n` is honoured.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::task::MediaKind;

/// Request parameters as sent to a provider (JSON object).
pub type Params = serde_json::Map<String, Value>;

/// How a field is treated on the guarded path (DESIGN.md §2, stage 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// User text: sanitized, scanned for credentials, moderated.
    Text,
    /// A media input, set by the engine from local or earlier-step inputs only.
    Media,
    /// Enters the cost estimate.
    Priced,
    /// A safety switch: changing it needs `allow_safety_overrides` and is audited.
    Safety,
    /// Anything else.
    Plain,
}

/// The value type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Any string.
    String,
    /// Whole number, optionally bounded by `min`/`max`.
    Integer,
    /// Number, optionally bounded by `min`/`max`.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of `values` (strings or numbers).
    Enum,
    /// A size preset from `values`, or an object `{width, height}` within `max_pixels`.
    ImageSize,
    /// A media reference (URL after upload); see [`ParamSpec::media`].
    Media,
    /// A list of media references.
    MediaList,
}

/// One parameter of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// How the guarded path treats the field.
    pub kind: FieldKind,
    /// The value type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Allowed values for `enum` and `image_size`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// Inclusive lower bound for numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Inclusive upper bound for numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Largest `width × height` for a custom `image_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<u64>,
    /// Value sent when the user gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Whether the request is invalid without it.
    #[serde(default)]
    pub required: bool,
    /// The flag or pipeline step key that sets this field (`prompt`, `image`, `text`, …);
    /// `--param` and pipeline `params` may not set such a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// For media fields: the media kind expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaKind>,
    /// For media fields: the longest input (seconds) the model accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<u64>,
    /// For list media fields: the most items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// One line for `acgs models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How `-n N` is honoured for a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountMode {
    /// One request with this integer parameter set to N.
    Param(String),
    /// N separate requests.
    Requests,
    /// One request making the product of these integer parameters (a grid's rows × cols);
    /// `-n` is not offered.
    Product(Vec<String>),
}
