//! [`OpenedInputs`]: a step's local input files, opened and checked, with the facts its price
//! depends on.

use acgs_core::pricing::media_token_bound;
use acgs_core::request::LocalInput;
use acgs_core::task::MediaKind;

/// Local inputs, opened and checked, with the facts prices depend on.
#[derive(Debug, Clone, Default)]
pub struct OpenedInputs {
    /// The files, by field.
    pub files: Vec<LocalInput>,
    /// Width and height of the first input image.
    pub pixels: Option<(u64, u64)>,
    /// Duration of the first input audio or video, in seconds.
    pub seconds: Option<u64>,
    /// An upper bound on the input tokens of all files for token-priced models; `None` when a
    /// file's size or duration is unknown.
    pub media_tokens: Option<u64>,
    /// Fields filled by stand-ins (estimates of pipelines), not files.
    pub assumed: Vec<String>,
}

impl OpenedInputs {
    /// Count one input's facts: the first image's size, the first recording's length, tokens.
    pub(crate) fn add_facts(&mut self, kind: MediaKind, facts: &acgs_media::probe::MediaFacts) {
        let tokens = media_token_bound(kind, facts.dimensions, facts.seconds);
        self.media_tokens = self
            .media_tokens
            .zip(tokens)
            .map(|(a, b)| a.saturating_add(b));
        match kind {
            MediaKind::Image => self.pixels = self.pixels.or(facts.dimensions),
            MediaKind::Audio | MediaKind::Video => self.seconds = self.seconds.or(facts.seconds),
            MediaKind::Text => {}
        }
    }
}
