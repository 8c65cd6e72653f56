//! # acgs-providers-elevenlabs
//!
//! The ElevenLabs provider for acgs, with the key in `xi-api-key` bound to the configured base
//! origin:
//!
//! - text-to-speech by voice name or id, model, voice settings, output format, seed and language;
//!   texts longer than the model's per-request limit split at sentence boundaries, each request
//!   carrying its neighbours (`previous_text`, `next_text`), stitched into one file; the cost from
//!   the `character-cost` (or `x-character-count`) header;
//! - the subscription's remaining characters checked before anything is reserved (a key without
//!   the permission to read it skips the check with a warning);
//! - Scribe speech-to-text with a streamed multipart upload: text, word timings and SRT;
//! - errors read from `{"detail": {"status", "message"}}`: `invalid_api_key` and
//!   `quota_exceeded` told apart though both are 401, `too_many_concurrent_requests` lowering the
//!   local concurrency, `system_busy` backed off, 422 validation details summarised;
//! - `GET /v1/voices` and `GET /v1/models` for `acgs voices`.
//!
//! The catalogue ([`catalog`]) is data: `catalog.toml`, compiled in.

pub mod protocol;
mod provider;

use acgs_core::catalog::Catalog;
use acgs_core::{Error, ProviderId};

pub use provider::ElevenLabsProvider;

/// The catalogue source shipped with this crate.
pub const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// ElevenLabs' built-in catalogue.
pub fn catalog() -> Result<Catalog, Error> {
    Catalog::from_toml(
        ProviderId::ElevenLabs,
        "acgs-providers-elevenlabs/catalog.toml",
        CATALOG_TOML,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_catalogue_parses_and_speech_models_have_limits() {
        let catalog = super::catalog().expect("valid catalogue");
        for model in catalog.models() {
            assert!(model.pricing.is_some(), "{} is priced", model.key);
            if model.task == acgs_core::TaskKind::TextToSpeech {
                assert!(model.max_text_chars.is_some(), "{}", model.key);
                // A dialogue names its voices in the script; speech takes one voice.
                let dialogue = model.endpoint.starts_with("text-to-dialogue:");
                assert!(
                    dialogue || model.params.contains_key("voice"),
                    "{}",
                    model.key
                );
            }
        }
    }
}
