//! # acgs-providers-gemini
//!
//! The Google Gemini API provider for acgs (`generativelanguage.googleapis.com`, v1beta), with the
//! key in `x-goog-api-key` bound to the configured base origin:
//!
//! - text generation, image/video/audio understanding and Gemini image generation through
//!   `generateContent`, answered at once; the output-token bound and thinking budget are always
//!   sent, so the estimate is a true worst case, and the cost comes from `usageMetadata`;
//! - safety blocks, which Gemini answers with HTTP 200 (`promptFeedback.blockReason`,
//!   `finishReason: SAFETY` …), reported as blocks naming the reason;
//! - Veo through `predictLongRunning` and operation polling, the video fetched from a URI that
//!   redirects to another host (which never sees the key) or taken from `encodedVideo`;
//! - images inline up to [`INLINE_MAX`], larger ones and all video and audio through the Files
//!   API's resumable upload ([`files`]);
//! - a bad key (`400 API_KEY_INVALID`) as an authentication failure, 429 after `RetryInfo`.
//!
//! The catalogue ([`catalog`]) is data: `catalog.toml`, compiled in.

pub mod files;
pub mod protocol;
mod provider;

use acgs_core::catalog::Catalog;
use acgs_core::{Error, ProviderId};

pub use provider::{GeminiProvider, INLINE_MAX};

/// The catalogue source shipped with this crate.
pub const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// What `acgs analyze --preset NAME` asks: the instruction sent as the prompt.
pub const PRESETS: [(&str, &str); 6] = [
    ("describe", "Describe this in two or three sentences."),
    (
        "detailed",
        "Describe this in detail: subjects, setting, colours, lighting, mood and any text.",
    ),
    (
        "classify",
        "Classify this: give its main category, then up to five tags, as a short list.",
    ),
    (
        "objects",
        "List every distinct object you can see, one per line, with its approximate position.",
    ),
    (
        "ocr",
        "Transcribe all text exactly as it appears, keeping line breaks. Say only the text.",
    ),
    (
        "composition",
        "Analyse the composition: framing, balance, leading lines, depth, colour and light.",
    ),
];

/// Gemini's built-in catalogue.
pub fn catalog() -> Result<Catalog, Error> {
    Catalog::from_toml(
        ProviderId::Gemini,
        "acgs-providers-gemini/catalog.toml",
        CATALOG_TOML,
    )
}

#[cfg(test)]
mod tests {
    use acgs_core::pricing::PriceUnit;

    #[test]
    fn the_catalogue_parses_with_bounded_token_prices() {
        let catalog = super::catalog().expect("valid catalogue");
        assert!(catalog.len() >= 10);
        for model in catalog.models() {
            let pricing = model.pricing.as_ref().expect("every model is priced");
            assert!(
                !pricing.verified || pricing.source.starts_with("ai.google.dev/"),
                "{}: a verified price names Google's pricing page",
                model.key
            );
            if pricing.unit == PriceUnit::MillionTokens {
                assert!(
                    pricing.input_rate.is_some_and(|input| input < pricing.rate),
                    "{}: input tokens have their own, lower rate",
                    model.key
                );
                for bound in ["max_output_tokens", "thinking_budget"] {
                    assert!(
                        model.params.get(bound).is_some_and(|p| p.default.is_some()),
                        "{}: `{bound}` is always sent",
                        model.key
                    );
                }
            }
        }
        let veo = catalog.resolve("gemini_veo_3_1").expect("veo");
        assert!(veo.unsupported.contains_key("seed"));
    }
}
