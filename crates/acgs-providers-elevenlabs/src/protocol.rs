//! ElevenLabs' shapes (shared/reference/providers.md §B): text-to-speech bodies, long texts split
//! at sentence boundaries, voices, models, the subscription, and `{"detail": …}` errors.

use acgs_core::catalog::Params;
use acgs_core::provider::{FailureClass, HttpFailure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A voice from `GET /v1/voices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voice {
    /// The id used in URLs.
    pub voice_id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// `premade`, `cloned`, `generated` or `professional`.
    #[serde(default)]
    pub category: Option<String>,
    /// Free-form labels (accent, age, gender, use case …).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `{"voices": [...]}`.
#[derive(Debug, Deserialize)]
pub struct VoiceList {
    /// The voices.
    pub voices: Vec<Voice>,
}

/// A model from `GET /v1/models` (a bare JSON array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model id (`eleven_multilingual_v2`).
    pub model_id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Whether it speaks.
    #[serde(default)]
    pub can_do_text_to_speech: bool,
    /// Characters per request.
    #[serde(default)]
    pub maximum_text_length_per_request: Option<u64>,
    /// Cost multipliers.
    #[serde(default)]
    pub model_rates: Option<ModelRates>,
}

/// `model_rates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRates {
    /// Characters billed per character sent.
    pub character_cost_multiplier: f64,
}

/// The fields of `GET /v1/user/subscription` the quota check reads.
#[derive(Debug, Deserialize)]
pub struct Subscription {
    /// Characters used this period.
    pub character_count: u64,
    /// Characters allowed this period.
    pub character_limit: u64,
}

impl Subscription {
    /// Characters left this period.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.character_limit.saturating_sub(self.character_count)
    }
}

/// Whether `voice` is an id rather than a name (ids are 20 letters and digits).
#[must_use]
pub fn is_voice_id(voice: &str) -> bool {
    voice.len() == 20 && voice.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The text-to-speech body for one piece of a text, with its neighbours for continuity.
#[must_use]
pub fn speech_body(
    model_id: &str,
    params: &Params,
    text: &str,
    previous: Option<&str>,
    next: Option<&str>,
) -> Value {
    let mut body = json!({ "text": text, "model_id": model_id });
    let mut settings = Map::new();
    for name in [
        "stability",
        "similarity_boost",
        "style",
        "use_speaker_boost",
        "speed",
    ] {
        if let Some(v) = params.get(name) {
            settings.insert(name.to_owned(), v.clone());
        }
    }
    if !settings.is_empty() {
        body["voice_settings"] = Value::Object(settings);
    }
    for name in ["seed", "language_code"] {
        if let Some(v) = params.get(name) {
            body[name] = v.clone();
        }
    }
    if let Some(p) = previous {
        body["previous_text"] = json!(p);
    }
    if let Some(n) = next {
        body["next_text"] = json!(n);
    }
    body
}

/// Split `text` into pieces of at most `limit` characters, at sentence ends where possible, then
/// at whitespace, and only as a last resort inside a word. Joining the pieces gives the text back.
#[must_use]
pub fn split_text(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.chars().count() > limit {
        let window: String = rest.chars().take(limit).collect();
        let cut = last_boundary(&window, |c| matches!(c, '.' | '!' | '?' | '…' | '\n'))
            .or_else(|| last_boundary(&window, char::is_whitespace))
            .unwrap_or(window.len());
        pieces.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        pieces.push(rest.to_owned());
    }
    pieces
}

/// The byte index just after the last `boundary` character (and any whitespace after it) in
/// `window`, when that is past its first quarter.
fn last_boundary(window: &str, boundary: impl Fn(char) -> bool) -> Option<usize> {
    let (index, c) = window.char_indices().rev().find(|(_, c)| boundary(*c))?;
    let mut end = index + c.len_utf8();
    end += window[end..]
        .char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .map_or(window.len() - end, |(i, _)| i);
    (end > window.len() / 4).then_some(end)
}

/// `detail.status` of an error body, or `validation_error` for a 422 detail array.
#[must_use]
pub fn detail_status(body: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).ok()?;
    match json.get("detail")? {
        Value::Object(d) => d.get("status")?.as_str().map(str::to_owned),
        Value::Array(_) => Some("validation_error".into()),
        _ => None,
    }
}

/// A one-line summary of an error body: `detail.message`, or each validation item's
/// `loc: msg`.
#[must_use]
pub fn detail_message(body: &str) -> Option<String> {
    let json: Value = serde_json::from_str(body).ok()?;
    match json.get("detail")? {
        Value::Object(d) => d.get("message")?.as_str().map(str::to_owned),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| {
                    let loc: Vec<String> = item
                        .get("loc")
                        .and_then(Value::as_array)
                        .map(|l| l.iter().map(|p| p.to_string().replace('"', "")).collect())
                        .unwrap_or_default();
                    let msg = item.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                    format!("{}: {msg}", loc.join("."))
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// What an ElevenLabs failure means. An exhausted quota and a bad key are both 401; the
/// `detail.status` tells them apart.
#[must_use]
pub fn classify(failure: &HttpFailure) -> FailureClass {
    let status = detail_status(&failure.body).unwrap_or_default();
    match (failure.status, status.as_str()) {
        (_, "quota_exceeded") => FailureClass::Quota,
        (401, _) => FailureClass::Auth,
        (429, "too_many_concurrent_requests") => FailureClass::Saturated,
        (429, _) => FailureClass::RateLimited,
        (403, "only_for_creator+") => FailureClass::Rejected,
        (403, _) => FailureClass::Auth,
        (404, _) | (400, "voice_not_found") => FailureClass::NotFound,
        (408 | 500..=599, _) => FailureClass::Transient,
        _ => FailureClass::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, body: &str) -> HttpFailure {
        HttpFailure {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn the_two_401s_mean_different_things() {
        let key = failure(
            401,
            r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#,
        );
        let quota = failure(
            401,
            r#"{"detail":{"status":"quota_exceeded","message":"This request exceeds your quota of 10000."}}"#,
        );
        assert_eq!(classify(&key), FailureClass::Auth);
        assert_eq!(classify(&quota), FailureClass::Quota);
        let busy = failure(
            429,
            r#"{"detail":{"status":"system_busy","message":"retry later"}}"#,
        );
        let saturated = failure(
            429,
            r#"{"detail":{"status":"too_many_concurrent_requests","message":"x"}}"#,
        );
        assert_eq!(classify(&busy), FailureClass::RateLimited);
        assert_eq!(classify(&saturated), FailureClass::Saturated);
    }

    #[test]
    fn validation_details_are_summarised() {
        let body = r#"{"detail":[{"loc":["body","voice_settings","stability"],"msg":"ensure this value is less than or equal to 1.0","type":"value_error"}]}"#;
        assert_eq!(detail_status(body).as_deref(), Some("validation_error"));
        assert_eq!(
            detail_message(body).as_deref(),
            Some("body.voice_settings.stability: ensure this value is less than or equal to 1.0")
        );
    }

    #[test]
    fn texts_split_at_sentences_and_join_back() {
        let text = "One short sentence. Another one here! A third? And a fourth that runs on.";
        let pieces = split_text(text, 40);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.chars().count() <= 40), "{pieces:?}");
        assert_eq!(pieces[0], "One short sentence. Another one here! ");
        let words = "word ".repeat(30);
        let pieces = split_text(&words, 32);
        assert!(pieces.iter().all(|p| p.ends_with(' ')), "{pieces:?}");
        let unbroken = "x".repeat(100);
        assert_eq!(split_text(&unbroken, 30).len(), 4);
        let accents = "é".repeat(50);
        assert_eq!(
            split_text(&accents, 20).concat(),
            accents,
            "never inside a character"
        );
    }

    #[test]
    fn voice_ids_are_recognised() {
        assert!(is_voice_id("21m00Tcm4TlvDq8ikWAM"));
        assert!(!is_voice_id("Rachel"));
    }
}
