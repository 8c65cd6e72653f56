//! # acgs-testkit
//!
//! Fake providers and fixtures shared by the tests of every acgs crate, so that no test writes its
//! own. The fakes speak the real wire protocols of `shared/reference/providers.md`, including
//! their odd parts (fal's `202` while queued, COMPLETED-with-error, Gemini's safety blocks
//! with HTTP 200), from JSON fixtures in
//! `fixtures/`, and mount a catch-all that answers any unexpected request with `599` so that a
//! test sees it fail loudly.

pub mod canary;
pub mod elevenlabs;
pub mod fal;
pub mod fal_platform;
pub mod fal_webhook;
pub mod fleet;
pub mod gemini;
pub mod media;
pub mod studio;

/// A fixture file's text.
#[must_use]
pub fn fixture(name: &str) -> &'static str {
    match name {
        "fal_submit.json" => include_str!("../fixtures/fal_submit.json"),
        "fal_status_in_queue.json" => include_str!("../fixtures/fal_status_in_queue.json"),
        "fal_status_in_progress.json" => include_str!("../fixtures/fal_status_in_progress.json"),
        "fal_status_completed.json" => include_str!("../fixtures/fal_status_completed.json"),
        "fal_status_completed_cancelled.json" => {
            include_str!("../fixtures/fal_status_completed_cancelled.json")
        }
        "fal_status_completed_error.json" => {
            include_str!("../fixtures/fal_status_completed_error.json")
        }
        "fal_result_images.json" => include_str!("../fixtures/fal_result_images.json"),
        "fal_result_nsfw.json" => include_str!("../fixtures/fal_result_nsfw.json"),
        "fal_result_422.json" => include_str!("../fixtures/fal_result_422.json"),
        "fal_error_401.json" => include_str!("../fixtures/fal_error_401.json"),
        "fal_error_403_balance.json" => include_str!("../fixtures/fal_error_403_balance.json"),
        "fal_cancel.json" => include_str!("../fixtures/fal_cancel.json"),
        "fal_result_video.json" => include_str!("../fixtures/fal_result_video.json"),
        "fal_result_avatar.json" => include_str!("../fixtures/fal_result_avatar.json"),
        "fal_result_transcript.json" => include_str!("../fixtures/fal_result_transcript.json"),
        "fal_storage_token.json" => include_str!("../fixtures/fal_storage_token.json"),
        "gemini_generate_text.json" => include_str!("../fixtures/gemini_generate_text.json"),
        "gemini_generate_image.json" => include_str!("../fixtures/gemini_generate_image.json"),
        "gemini_prompt_blocked.json" => include_str!("../fixtures/gemini_prompt_blocked.json"),
        "gemini_output_blocked.json" => include_str!("../fixtures/gemini_output_blocked.json"),
        "gemini_error_400_key.json" => include_str!("../fixtures/gemini_error_400_key.json"),
        "gemini_error_429.json" => include_str!("../fixtures/gemini_error_429.json"),
        "gemini_operation_submit.json" => include_str!("../fixtures/gemini_operation_submit.json"),
        "gemini_operation_running.json" => {
            include_str!("../fixtures/gemini_operation_running.json")
        }
        "gemini_operation_done.json" => include_str!("../fixtures/gemini_operation_done.json"),
        "gemini_operation_encoded.json" => {
            include_str!("../fixtures/gemini_operation_encoded.json")
        }
        "gemini_operation_filtered.json" => {
            include_str!("../fixtures/gemini_operation_filtered.json")
        }
        "gemini_operation_error.json" => include_str!("../fixtures/gemini_operation_error.json"),
        "gemini_file.json" => include_str!("../fixtures/gemini_file.json"),
        "elevenlabs_voices.json" => include_str!("../fixtures/elevenlabs_voices.json"),
        "elevenlabs_models.json" => include_str!("../fixtures/elevenlabs_models.json"),
        "elevenlabs_subscription.json" => include_str!("../fixtures/elevenlabs_subscription.json"),
        "elevenlabs_transcript.json" => include_str!("../fixtures/elevenlabs_transcript.json"),
        "elevenlabs_error.json" => include_str!("../fixtures/elevenlabs_error.json"),
        "elevenlabs_error_422.json" => include_str!("../fixtures/elevenlabs_error_422.json"),
        other => panic!("no fixture named {other}"),
    }
}

/// A fixture with `{{name}}` placeholders replaced.
#[must_use]
pub fn render(name: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(fixture(name).trim().to_owned(), |text, (k, v)| {
            text.replace(&format!("{{{{{k}}}}}"), v)
        })
}
