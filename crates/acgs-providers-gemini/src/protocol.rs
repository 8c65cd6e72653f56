//! The Gemini API's shapes (shared/reference/providers.md §C): request bodies built from acgs's
//! parameter names, responses (including safety blocks answered with HTTP 200), long-running
//! Veo operations, and the meaning of error bodies.

use std::collections::HashMap;

use acgs_core::catalog::{FieldKind, ModelSpec, Params};
use acgs_core::provider::{Charge, FailureClass, HttpFailure, ProviderError};
use acgs_core::request::{Artifact, Output, SafetyReport, Usage};
use acgs_core::task::{ContentType, TaskKind};
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The harm categories a `safety_threshold` applies to.
const HARM_CATEGORIES: [&str; 4] = [
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
];

/// `finishReason` values that mean the output was withheld.
const BLOCKING_FINISH: [&str; 8] = [
    "SAFETY",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// What the provider knows about files it uploaded: the MIME type of each file URI.
pub type FileTypes = HashMap<String, String>;

fn rejected(message: impl Into<String>) -> ProviderError {
    ProviderError::new(
        FailureClass::Rejected,
        "provider.bad_request",
        message,
        Charge::Release,
    )
}

/// A media value (`data:` URI or an uploaded file's URI) as a request part.
fn media_part(value: &str, files: &FileTypes) -> Result<Value, ProviderError> {
    if let Some((mime, data)) = split_data_uri(value) {
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let mime = files
        .get(value)
        .ok_or_else(|| rejected("a media input was not uploaded through the Files API"))?;
    Ok(json!({"fileData": {"mimeType": mime, "fileUri": value}}))
}

/// `data:<mime>;base64,<data>` → `(mime, data)`.
#[must_use]
pub fn split_data_uri(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix("data:")?;
    let (mime, data) = rest.split_once(";base64,")?;
    Some((mime, data))
}

/// The media values of a request, in catalogue order.
fn media_values<'a>(model: &ModelSpec, params: &'a Params) -> Vec<&'a str> {
    model
        .params
        .iter()
        .filter(|(_, spec)| spec.kind == FieldKind::Media)
        .filter_map(|(name, _)| params.get(name))
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect::<Vec<_>>(),
        })
        .collect()
}

/// The `generateContent` body: media parts then the prompt, the system instruction, the
/// generation config (the output-token bound and thinking budget always sent), safety settings.
pub fn generate_content_body(
    model: &ModelSpec,
    params: &Params,
    system: Option<&str>,
    files: &FileTypes,
) -> Result<Value, ProviderError> {
    let mut parts = media_values(model, params)
        .into_iter()
        .map(|v| media_part(v, files))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(prompt) = params.get("prompt").and_then(Value::as_str) {
        parts.push(json!({ "text": prompt }));
    }
    let mut config = Map::new();
    let mut set = |key: &str, value: Option<&Value>| {
        if let Some(v) = value {
            config.insert(key.to_owned(), v.clone());
        }
    };
    set("maxOutputTokens", params.get("max_output_tokens"));
    set("temperature", params.get("temperature"));
    set("topP", params.get("top_p"));
    set("seed", params.get("seed"));
    set("responseMimeType", params.get("response_mime_type"));
    if let Some(max) = params.get("max_items") {
        // A list of strings the model cannot make longer than asked: the bound the estimate
        // priced every step that runs once per item at.
        config.insert("responseMimeType".into(), json!("application/json"));
        config.insert(
            "responseJsonSchema".into(),
            json!({ "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": max }),
        );
    }
    if let Some(budget) = params.get("thinking_budget") {
        config.insert("thinkingConfig".into(), json!({ "thinkingBudget": budget }));
    }
    if matches!(model.task, TaskKind::TextToImage | TaskKind::ImageToImage) {
        config.insert("responseModalities".into(), json!(["TEXT", "IMAGE"]));
        if let Some(ratio) = params.get("aspect_ratio") {
            config.insert("imageConfig".into(), json!({ "aspectRatio": ratio }));
        }
    }
    let mut body = json!({
        "contents": [{ "role": "user", "parts": parts }],
        "generationConfig": config,
    });
    if let Some(text) = system.or_else(|| params.get("system_instruction").and_then(Value::as_str))
    {
        body["systemInstruction"] = json!({ "parts": [{ "text": text }] });
    }
    if let Some(threshold) = params.get("safety_threshold") {
        body["safetySettings"] = HARM_CATEGORIES
            .iter()
            .map(|c| json!({ "category": c, "threshold": threshold }))
            .collect();
    }
    Ok(body)
}

/// The `predictLongRunning` body for Veo: the prompt and an inline first frame in the instance,
/// the rest in `parameters`.
pub fn veo_body(params: &Params) -> Result<Value, ProviderError> {
    let mut instance = json!({ "prompt": params.get("prompt").cloned().unwrap_or(Value::Null) });
    if let Some(image) = params.get("image").and_then(Value::as_str) {
        let (mime, data) = split_data_uri(image).ok_or_else(|| {
            rejected("Veo takes its first frame inline: use an image of at most 14 MiB")
        })?;
        instance["image"] = json!({ "bytesBase64Encoded": data, "mimeType": mime });
    }
    let mut parameters = Map::new();
    if let Some(seconds) = params
        .get("duration")
        .and_then(acgs_core::pricing::duration_seconds)
    {
        parameters.insert("durationSeconds".into(), json!(seconds));
    }
    for (ours, theirs) in [
        ("aspect_ratio", "aspectRatio"),
        ("resolution", "resolution"),
        ("negative_prompt", "negativePrompt"),
    ] {
        if let Some(v) = params.get(ours) {
            parameters.insert(theirs.into(), v.clone());
        }
    }
    Ok(json!({ "instances": [instance], "parameters": parameters }))
}

/// Token usage from `usageMetadata` (thinking counted as output).
fn usage_of(body: &Value) -> Usage {
    let meta = body.get("usageMetadata");
    let count = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_u64);
    let output =
        count("candidatesTokenCount").unwrap_or(0) + count("thoughtsTokenCount").unwrap_or(0);
    Usage {
        input_tokens: count("promptTokenCount"),
        output_tokens: meta.map(|_| output),
        ..Usage::default()
    }
}

/// A `generateContent` answer as an [`Output`]: text parts joined into one text artifact (thought
/// parts left out), inline images as bytes; a blocked prompt or a withheld candidate as a safety
/// block (HTTP 200 is not success).
#[must_use]
pub fn parse_generate(body: &Value, json_text: bool) -> Output {
    let mut output = Output {
        usage: usage_of(body),
        request_id: body
            .get("responseId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Output::default()
    };
    if let Some(reason) = body
        .pointer("/promptFeedback/blockReason")
        .and_then(Value::as_str)
    {
        output.safety = SafetyReport {
            flagged: Vec::new(),
            blocked: Some(reason.to_owned()),
        };
        return output;
    }
    let candidate = body.pointer("/candidates/0");
    let finish = candidate
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str);
    if let Some(reason) = finish.filter(|r| BLOCKING_FINISH.contains(r)) {
        output.safety.blocked = Some(reason.to_owned());
        return output;
    }
    let parts = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut text = String::new();
    let mut images = Vec::new();
    for part in parts {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(inline) = part.get("inlineData").or_else(|| part.get("inline_data")) {
            let mime = inline
                .get("mimeType")
                .or_else(|| inline.get("mime_type"))
                .and_then(Value::as_str);
            let data = inline
                .get("data")
                .and_then(Value::as_str)
                .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
            if let Some(data) = data {
                let facts = ContentType::sniff(&data).map(|t| acgs_media::probe::probe(t, &data));
                images.push(facts.and_then(|f| f.dimensions).unwrap_or((1024, 1024)));
                output.artifacts.push(Artifact::Bytes {
                    data,
                    claimed_type: mime.map(str::to_owned),
                });
            }
        }
    }
    if !images.is_empty() {
        output.usage.images = Some(images);
    }
    if !text.is_empty() && output.artifacts.is_empty() {
        output.artifacts.push(Artifact::Text {
            text,
            content_type: if json_text {
                ContentType::Json
            } else {
                ContentType::Text
            },
        });
    }
    output
}

/// The text parts of one `streamGenerateContent` chunk, thoughts left out: what is shown as it
/// comes.
#[must_use]
pub fn chunk_text(chunk: &Value) -> String {
    chunk
        .pointer("/candidates/0/content/parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect()
}

/// The chunks of a `streamGenerateContent` answer as one `generateContent` answer: every
/// chunk's parts in order, and the block, finish reason, usage and id of the chunks that carry
/// them (the last one wins), so that [`parse_generate`] reads it like an answer given at once.
#[must_use]
pub fn merge_chunks(chunks: &[Value]) -> Value {
    let mut parts = Vec::new();
    let mut merged = serde_json::Map::new();
    let mut finish = None;
    for chunk in chunks {
        if let Some(more) = chunk
            .pointer("/candidates/0/content/parts")
            .and_then(Value::as_array)
        {
            parts.extend(more.iter().cloned());
        }
        if let Some(reason) = chunk.pointer("/candidates/0/finishReason") {
            finish = Some(reason.clone());
        }
        for key in [
            "promptFeedback",
            "usageMetadata",
            "responseId",
            "modelVersion",
        ] {
            if let Some(value) = chunk.get(key) {
                merged.insert(key.to_owned(), value.clone());
            }
        }
    }
    let mut candidate = serde_json::json!({"content": {"role": "model", "parts": parts}});
    if let Some(reason) = finish {
        candidate["finishReason"] = reason;
    }
    merged.insert("candidates".to_owned(), Value::Array(vec![candidate]));
    Value::Object(merged)
}

/// The state of a Veo operation.
#[derive(Debug)]
pub enum Operation {
    /// Still running.
    Running,
    /// Finished with an output (possibly blocked).
    Done(Output),
    /// Finished with an error.
    Failed(ProviderError),
}

/// `GET /v1beta/{operation}`: running, done with its samples, or failed.
#[must_use]
pub fn parse_operation(body: &Value) -> Operation {
    if body.get("done").and_then(Value::as_bool) != Some(true) {
        return Operation::Running;
    }
    if let Some(error) = body.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Operation::Failed(
            ProviderError::new(
                FailureClass::Rejected,
                "provider.job_failed",
                "the Veo operation failed",
                Charge::Estimate,
            )
            .with_detail(message.to_owned()),
        );
    }
    let response = body
        .pointer("/response/generateVideoResponse")
        .cloned()
        .unwrap_or(Value::Null);
    let mut output = Output::default();
    for sample in response
        .get("generatedSamples")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let video = sample.get("video");
        if let Some(uri) = video.and_then(|v| v.get("uri")).and_then(Value::as_str) {
            output.artifacts.push(Artifact::Url {
                url: uri.to_owned(),
                claimed_type: Some("video/mp4".into()),
            });
        } else if let Some(data) = video
            .and_then(|v| v.get("encodedVideo"))
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        {
            output.artifacts.push(Artifact::Bytes {
                data,
                claimed_type: Some("video/mp4".into()),
            });
        }
    }
    let filtered = response
        .get("raiMediaFilteredCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if output.artifacts.is_empty() && filtered > 0 {
        output.safety.blocked = Some("RAI_FILTERED".into());
    }
    Operation::Done(output)
}

/// What a Gemini HTTP failure means. A bad key is a 400 (`API_KEY_INVALID`), not a 401.
#[must_use]
pub fn classify(failure: &HttpFailure) -> FailureClass {
    let body = failure.body.as_str();
    match failure.status {
        400 if body.contains("API_KEY_INVALID")
            || body.contains("API key not valid")
            || body.contains("API Key not found") =>
        {
            FailureClass::Auth
        }
        401 | 403 => FailureClass::Auth,
        404 => FailureClass::NotFound,
        429 => FailureClass::RateLimited,
        408 | 500 | 502 | 503 | 504 => FailureClass::Transient,
        _ => FailureClass::Rejected,
    }
}

/// A Gemini failure for the user: the class's code, and the reason from the error body. A 4xx
/// answer is never billed, so the reservation is released.
#[must_use]
pub fn refine(mut error: ProviderError, status: Option<u16>) -> ProviderError {
    if status.is_some_and(|s| (400..500).contains(&s)) {
        error.charge = Charge::Release;
    }
    if error.class == FailureClass::Auth && status == Some(400) {
        error.message = "Gemini did not accept the key (API_KEY_INVALID)".into();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_uris_split_into_type_and_payload() {
        assert_eq!(
            split_data_uri("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(split_data_uri("https://x/files/abc"), None);
    }

    #[test]
    fn thought_parts_are_left_out_and_usage_counts_thinking() {
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "planning…", "thought": true},
                {"text": "Hello"}, {"text": " world"}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 34, "thoughtsTokenCount": 100}
        });
        let out = parse_generate(&body, false);
        assert_eq!(
            out.artifacts,
            vec![Artifact::Text {
                text: "Hello world".into(),
                content_type: ContentType::Text
            }]
        );
        assert_eq!(out.usage.input_tokens, Some(12));
        assert_eq!(out.usage.output_tokens, Some(134));
    }

    #[test]
    fn withheld_candidates_and_blocked_prompts_are_blocks() {
        let prompt = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}});
        assert_eq!(
            parse_generate(&prompt, false).safety.blocked.as_deref(),
            Some("PROHIBITED_CONTENT")
        );
        let output = json!({"candidates": [{"finishReason": "SAFETY", "content": {"parts": []}}]});
        assert_eq!(
            parse_generate(&output, false).safety.blocked.as_deref(),
            Some("SAFETY")
        );
    }

    #[test]
    fn a_bad_key_is_an_auth_failure_despite_the_400() {
        let failure = HttpFailure {
            status: 400,
            headers: Vec::new(),
            body: r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#.into(),
        };
        assert_eq!(classify(&failure), FailureClass::Auth);
        let other = HttpFailure {
            body: r#"{"error":{"code":400,"status":"INVALID_ARGUMENT"}}"#.into(),
            ..failure
        };
        assert_eq!(classify(&other), FailureClass::Rejected);
    }
}
