//! The fal queue protocol's shapes (shared/reference/providers.md §A.2–A.9).

use acgs_core::provider::{FailureClass, HttpFailure};
use acgs_core::request::{Artifact, Output, SafetyReport, Usage, is_plain_token};
use serde::Deserialize;
use serde_json::Value;

/// `[namespace/]owner/app` of an endpoint id: status, result and cancel drop the sub-path.
#[must_use]
pub fn endpoint_root(endpoint: &str) -> Option<String> {
    let segments: Vec<&str> = endpoint.split('/').filter(|s| !s.is_empty()).collect();
    let keep = if matches!(segments.first(), Some(&"workflows" | &"comfy")) {
        3
    } else {
        2
    };
    (segments.len() >= keep && segments.iter().all(|s| is_plain_token(s)))
        .then(|| segments[..keep].join("/"))
}

/// The submit answer (only the request id is used; URLs are rebuilt from the configured base).
#[derive(Debug, Deserialize)]
pub struct SubmitResponse {
    /// The request id.
    pub request_id: String,
}

/// One log line of a running job.
#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    /// The message (untrusted text).
    #[serde(default)]
    pub message: String,
}

/// A status answer: 202 while queued or running, 200 when completed.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Waiting in the queue.
    InQueue {
        /// 0-based position.
        #[serde(default)]
        queue_position: Option<u64>,
    },
    /// Running.
    InProgress {
        /// Log lines so far (null when logs are off).
        #[serde(default)]
        logs: Option<Vec<LogLine>>,
    },
    /// Finished, successfully or not.
    Completed {
        /// Present only when the request failed.
        #[serde(default)]
        error: Option<String>,
        /// e.g. `request_timeout`, `runner_disconnected`.
        #[serde(default)]
        error_type: Option<String>,
        /// Log lines.
        #[serde(default)]
        logs: Option<Vec<LogLine>>,
    },
}

#[derive(Debug, Deserialize)]
struct FileRef {
    url: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    width: Option<u64>,
    #[serde(default)]
    height: Option<u64>,
}

/// Parse a model result into artifacts, usage and safety flags. Media comes from `images[]`,
/// `image`, `video`, `audio` or `audio_file`; text from `text`.
#[must_use]
pub fn parse_output(result: &Value, request_id: Option<String>) -> Output {
    let mut artifacts = Vec::new();
    let mut dims = Vec::new();
    let mut push = |value: &Value| {
        if let Ok(file) = serde_json::from_value::<FileRef>(value.clone()) {
            if let (Some(w), Some(h)) = (file.width, file.height) {
                dims.push((w, h));
            }
            artifacts.push(Artifact::Url {
                url: file.url,
                claimed_type: file.content_type,
            });
        }
    };
    if let Some(images) = result.get("images").and_then(Value::as_array) {
        images.iter().for_each(&mut push);
    }
    for key in ["image", "video", "audio", "audio_file"] {
        if let Some(file) = result.get(key).filter(|v| v.is_object()) {
            push(file);
        }
    }
    let flagged = result
        .get("has_nsfw_concepts")
        .and_then(Value::as_array)
        .map(|flags| {
            flags
                .iter()
                .enumerate()
                .filter(|(_, f)| f.as_bool() == Some(true))
                .map(|(i, _)| i)
                .collect()
        })
        .unwrap_or_default();
    let transcript = acgs_media::transcript::scribe_artifacts(result);
    let seconds = transcript.as_ref().map(|(_, secs)| *secs).or_else(|| {
        result
            .get("duration")
            .and_then(Value::as_f64)
            .map(|d| acgs_media::transcript::seconds_to_ms(d).div_ceil(1000))
    });
    if let Some((texts, _)) = transcript {
        artifacts.extend(texts);
    }
    let usage = Usage {
        images: (!dims.is_empty()).then_some(dims),
        seconds,
        ..Usage::default()
    };
    Output {
        artifacts,
        usage,
        safety: SafetyReport {
            flagged,
            blocked: None,
        },
        request_id,
        saturated: false,
    }
}

/// What a fal HTTP failure means.
#[must_use]
pub fn classify(failure: &HttpFailure) -> FailureClass {
    let body = failure.body.as_str();
    match failure.status {
        401 => FailureClass::Auth,
        403 if body.contains("Exhausted balance") || body.contains("User is locked") => {
            FailureClass::Quota
        }
        403 => FailureClass::Auth,
        404 => FailureClass::NotFound,
        408 => FailureClass::Transient,
        422 if body.contains("content_policy_violation") => FailureClass::SafetyBlocked,
        429 => FailureClass::RateLimited,
        504 if failure.header("x-fal-request-timeout-type") == Some("user") => {
            FailureClass::Timeout
        }
        500..=599 => FailureClass::Transient,
        _ => FailureClass::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_results_drop_the_sub_path() {
        assert_eq!(
            endpoint_root("fal-ai/flux/dev").as_deref(),
            Some("fal-ai/flux")
        );
        assert_eq!(
            endpoint_root("fal-ai/kling-video/v2.1/standard/image-to-video").as_deref(),
            Some("fal-ai/kling-video")
        );
        assert_eq!(
            endpoint_root("workflows/me/my-flow/run").as_deref(),
            Some("workflows/me/my-flow")
        );
        assert_eq!(endpoint_root("single"), None);
        assert_eq!(endpoint_root("fal-ai/../etc"), None);
    }

    #[test]
    fn parses_images_with_safety_flags() {
        let result = json!({
            "images": [
                {"url": "https://v3.fal.media/a.png", "width": 1024, "height": 768, "content_type": "image/png"},
                {"url": "https://v3.fal.media/b.png", "width": 1024, "height": 768, "content_type": "image/png"}
            ],
            "has_nsfw_concepts": [false, true], "seed": 1, "timings": {"inference": 1.2}
        });
        let out = parse_output(&result, Some("req".into()));
        assert_eq!(out.artifacts.len(), 2);
        assert_eq!(out.safety.flagged, vec![1]);
        assert_eq!(out.usage.images, Some(vec![(1024, 768), (1024, 768)]));
    }

    #[test]
    fn statuses_parse_with_their_fields() {
        let s: Status = serde_json::from_value(json!({"status": "IN_QUEUE", "queue_position": 3}))
            .expect("queued");
        assert!(matches!(
            s,
            Status::InQueue {
                queue_position: Some(3)
            }
        ));
        let s: Status = serde_json::from_value(json!({"status": "COMPLETED", "logs": null, "error": "Runner disconnected", "error_type": "runner_disconnected"})).expect("done");
        assert!(matches!(s, Status::Completed { error: Some(_), .. }));
        assert!(
            serde_json::from_value::<Status>(json!({"status": "FAILED"})).is_err(),
            "fal never sends FAILED"
        );
    }

    #[test]
    fn classification_follows_the_reference() {
        let f = |status: u16, body: &str, headers: &[(&str, &str)]| HttpFailure {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        };
        assert_eq!(
            classify(&f(
                401,
                r#"{"detail":"No user found for Key ID and Secret"}"#,
                &[]
            )),
            FailureClass::Auth
        );
        assert_eq!(
            classify(&f(
                403,
                r#"{"detail":"User is locked. Reason: Exhausted balance."}"#,
                &[]
            )),
            FailureClass::Quota
        );
        assert_eq!(
            classify(&f(504, "", &[("x-fal-request-timeout-type", "user")])),
            FailureClass::Timeout
        );
        assert_eq!(
            classify(&f(503, r#"{"detail":"Request timed out"}"#, &[])),
            FailureClass::Transient
        );
        assert_eq!(
            classify(&f(
                422,
                r#"{"detail":[{"type":"content_policy_violation"}]}"#,
                &[]
            )),
            FailureClass::SafetyBlocked
        );
        assert_eq!(
            classify(&f(422, r#"{"detail":[{"type":"value_error"}]}"#, &[])),
            FailureClass::Rejected
        );
    }
}
