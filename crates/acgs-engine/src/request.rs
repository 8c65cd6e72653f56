//! What a user asks for: [`GenerationRequest`], and its record in the manifest.

use std::collections::BTreeMap;
use std::path::PathBuf;

use acgs_core::task::{MediaKind, TaskKind};
use acgs_storage::manifest::{InputRecord, REQUEST_RECORD_VERSION, RequestRecord};

/// What the user asks for: one generation.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GenerationRequest {
    /// Model key (`key` or `provider:key`).
    pub model: String,
    /// Tasks the command accepts (empty: any).
    pub tasks: Vec<TaskKind>,
    /// Text by flag: `prompt`, `negative_prompt`, `text`, `system`, `question`.
    pub texts: BTreeMap<String, String>,
    /// `--param` pairs.
    pub params: Vec<(String, String)>,
    /// `-n`.
    pub count: Option<u32>,
    /// `--out STEM`.
    pub out_stem: Option<String>,
    /// `--timeout` in seconds: overrides the catalogue deadline.
    pub timeout_secs: Option<u64>,
    /// `--detach`: on interrupt leave the job running instead of cancelling it.
    pub detach: bool,
    /// Local input files by flag (`image`, `images`, `audio`, `video`, `end_image`, `audio2`).
    #[serde(default)]
    pub inputs: Vec<(String, PathBuf)>,
    /// Stand-ins for media an earlier pipeline step has not made yet, by flag: enough to price
    /// the request, never sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assumed_inputs: Vec<(String, AssumedMedia)>,
    /// Show a text model's words as they are written (progress events with status `text`),
    /// where the provider can stream them; the result is the same whole text.
    #[serde(default, skip_serializing)]
    pub stream_text: bool,
}

/// What an estimate assumes about media that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AssumedMedia {
    /// Image, video or audio.
    pub kind: MediaKind,
    /// Width and height (images).
    pub pixels: Option<(u64, u64)>,
    /// Duration (audio, video).
    pub seconds: Option<u64>,
}

impl GenerationRequest {
    /// The manifest's record of this request (stand-ins are never recorded: a request that is
    /// sent has real files).
    pub(crate) fn record(&self) -> RequestRecord {
        RequestRecord {
            version: REQUEST_RECORD_VERSION,
            model: self.model.clone(),
            tasks: self.tasks.clone(),
            texts: self.texts.clone(),
            params: self.params.clone(),
            count: self.count,
            out_stem: self.out_stem.clone(),
            timeout_secs: self.timeout_secs,
            detach: self.detach,
            inputs: self
                .inputs
                .iter()
                .map(|(field, path)| InputRecord {
                    field: field.clone(),
                    path: path.clone(),
                })
                .collect(),
        }
    }

    /// The request a manifest recorded.
    pub(crate) fn from_record(record: &RequestRecord) -> Self {
        Self {
            model: record.model.clone(),
            tasks: record.tasks.clone(),
            texts: record.texts.clone(),
            params: record.params.clone(),
            count: record.count,
            out_stem: record.out_stem.clone(),
            timeout_secs: record.timeout_secs,
            detach: record.detach,
            inputs: record
                .inputs
                .iter()
                .map(|i| (i.field.clone(), i.path.clone()))
                .collect(),
            assumed_inputs: Vec::new(),
            stream_text: false,
        }
    }
}
