//! A fake Gemini API following the reference (shared/reference/providers.md §C):
//! `generateContent` answered at once (text, inline images, safety blocks with HTTP 200, a 400
//! `API_KEY_INVALID`, a 429 with `RetryInfo`); Veo's `predictLongRunning` and operation polling,
//! with the video's download URI redirecting to a second server (another origin); the Files API's
//! resumable upload. Any other request is answered `599`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::Value;
use wiremock::matchers::{any, header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::media::{PNG_1X1, mp4};
use crate::render;

/// The fake operation id.
pub const OPERATION: &str = "vz341u0pmdlc";
/// The generated video's file id.
pub const VIDEO_FILE: &str = "gen-video-1";
/// The uploaded file's id.
pub const UPLOADED_FILE: &str = "upl-file-1";

/// How `generateContent` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Text (with a thought part and usage metadata).
    Text(String),
    /// An inline PNG.
    Image,
    /// `promptFeedback.blockReason: PROHIBITED_CONTENT`, HTTP 200.
    PromptBlocked,
    /// A candidate with `finishReason: SAFETY` and no parts, HTTP 200.
    OutputBlocked,
}

/// How a Veo operation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoEnd {
    /// A sample with a download URI (redirecting to the media server).
    Uri,
    /// A sample carrying `encodedVideo`.
    Encoded,
    /// Every sample filtered (`raiMediaFilteredCount: 1`).
    Filtered,
    /// `done` with an `error`.
    Error,
    /// Never done until [`FakeGemini::complete_now`].
    KeepRunning,
}

/// Builder for [`FakeGemini`].
#[derive(Debug, Clone)]
pub struct FakeGeminiBuilder {
    model: String,
    answer: Answer,
    video_end: VideoEnd,
    running_polls: u64,
    bad_key: bool,
    echo_keys: bool,
    rate_limited_once: Option<u64>,
    usage: (u64, u64, u64),
    items: Vec<String>,
}

/// A running fake Gemini API and its media host.
#[derive(Debug)]
pub struct FakeGemini {
    server: MockServer,
    media: MockServer,
    model: String,
    chunks: Arc<Mutex<Vec<(String, usize)>>>,
}

impl FakeGemini {
    /// A builder for a fake serving `model` (e.g. `gemini-2.5-flash`).
    #[must_use]
    pub fn builder(model: &str) -> FakeGeminiBuilder {
        FakeGeminiBuilder {
            model: model.to_owned(),
            answer: Answer::Text("A lighthouse stands on a rocky shore at dusk.".into()),
            video_end: VideoEnd::Uri,
            running_polls: 1,
            bad_key: false,
            echo_keys: false,
            rate_limited_once: None,
            usage: (12, 34, 100),
            items: (1..=3)
                .map(|n| format!("Scene {n}: a lighthouse keeper climbs the stairs at dusk."))
                .collect(),
        }
    }

    /// The API base URL (use as `providers.gemini.base_url`).
    #[must_use]
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Every request the API server received.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// Every request the media host received (it must never see the key).
    pub async fn media_requests(&self) -> Vec<Request> {
        self.media.received_requests().await.unwrap_or_default()
    }

    /// The JSON bodies sent to `generateContent` or `predictLongRunning`.
    pub async fn submitted_bodies(&self) -> Vec<Value> {
        self.requests()
            .await
            .iter()
            .filter(|r| {
                let p = r.url.path();
                p.ends_with(":generateContent")
                    || p.ends_with(":streamGenerateContent")
                    || p.ends_with(":predictLongRunning")
            })
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }

    /// Upload chunks received: (`x-goog-upload-command`, bytes).
    #[must_use]
    pub fn chunks(&self) -> Vec<(String, usize)> {
        self.chunks.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The files deleted through the Files API (`files/<id>`), in order.
    pub async fn deleted_files(&self) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .filter(|r| r.method.as_str() == "DELETE")
            .map(|r| r.url.path().trim_start_matches("/v1beta/").to_owned())
            .collect()
    }

    /// Requests nothing in the protocol asked for (answered `599`).
    pub async fn unexpected(&self) -> Vec<String> {
        let model = &self.model;
        self.requests()
            .await
            .iter()
            .filter(|r| {
                let p = r.url.path();
                !(p.starts_with(&format!("/v1beta/models/{model}"))
                    || p.starts_with("/v1beta/files/")
                    || p == "/upload/v1beta/files")
            })
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }

    /// Let a Veo operation that kept running finish now with a downloadable video.
    pub async fn complete_now(&self) {
        Mock::given(method("GET"))
            .and(path(
                format!("/v1beta/models/{}/operations/{OPERATION}", self.model).as_str(),
            ))
            .respond_with(json(200, self.fill("gemini_operation_done.json")))
            .with_priority(1)
            .mount(&self.server)
            .await;
    }

    fn fill(&self, name: &str) -> String {
        fill(name, &self.model, &self.server.uri())
    }
}

fn fill(name: &str, model: &str, base: &str) -> String {
    let png = base64::engine::general_purpose::STANDARD.encode(PNG_1X1);
    let video = base64::engine::general_purpose::STANDARD.encode(mp4(8, 2048));
    render(
        name,
        &[
            ("model", model),
            ("base", base),
            ("operation", OPERATION),
            ("file_id", VIDEO_FILE),
            ("png_base64", &png),
            ("mp4_base64", &video),
        ],
    )
}

/// The `maxItems` of a request asking for a JSON list of strings (`responseMimeType`
/// `application/json` with a `responseJsonSchema` of type `array`), if it asks for one.
fn list_asked(req: &Request) -> Option<usize> {
    let body: Value = serde_json::from_slice(&req.body).ok()?;
    let config = body
        .get("generationConfig")
        .or_else(|| body.get("generation_config"))?;
    let schema = config
        .get("responseJsonSchema")
        .or_else(|| config.get("response_json_schema"))?;
    (schema.get("type")?.as_str()? == "array").then_some(())?;
    Some(
        schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
    )
}

/// A text answer holding `items` (at most `max`) as a JSON list.
fn list_answer(items: &[String], max: usize, usage: (u64, u64, u64), model: &str) -> String {
    let list: Vec<&String> = items.iter().take(max).collect();
    text_answer(
        &serde_json::to_string(&list).unwrap_or_default(),
        usage,
        model,
    )
}

/// A `generateContent` answer of `text`, with usage metadata.
fn text_answer(text: &str, (prompt, output, thoughts): (u64, u64, u64), model: &str) -> String {
    render(
        "gemini_generate_text.json",
        &[
            (
                "text",
                serde_json::to_string(text)
                    .unwrap_or_default()
                    .trim_matches('"'),
            ),
            ("prompt_tokens", &prompt.to_string()),
            ("output_tokens", &output.to_string()),
            ("thought_tokens", &thoughts.to_string()),
            ("total_tokens", &(prompt + output + thoughts).to_string()),
            ("model", model),
        ],
    )
}

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json; charset=UTF-8")
        .set_body_string(body)
}

/// The key a request carried: `x-goog-api-key`, or the `key=` query.
/// `body` (a `generateContent` answer) as the `data:` events of a streamed one: its last text
/// part cut into three, the finish reason, usage and id on the last chunk; an answer without
/// text (a block, an image) is one event.
fn stream_events(body: &str) -> String {
    let event = |v: &serde_json::Value| format!("data: {v}\n\n");
    let Ok(whole) = serde_json::from_str::<serde_json::Value>(body) else {
        return String::new();
    };
    let parts = whole
        .pointer("/candidates/0/content/parts")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some((last, before)) = parts.split_last() else {
        return event(&whole);
    };
    let Some(text) = last.get("text").and_then(serde_json::Value::as_str) else {
        return event(&whole);
    };
    let chars: Vec<char> = text.chars().collect();
    let third = chars.len().div_ceil(3).max(1);
    let pieces: Vec<String> = chars.chunks(third).map(|c| c.iter().collect()).collect();
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let mut chunk_parts: Vec<serde_json::Value> =
            if i == 0 { before.to_vec() } else { Vec::new() };
        chunk_parts.push(serde_json::json!({"text": piece}));
        let mut chunk = serde_json::json!({"candidates": [{"content": {"role": "model", "parts": chunk_parts}, "index": 0}]});
        if i + 1 == pieces.len() {
            chunk["candidates"][0]["finishReason"] = whole["candidates"][0]["finishReason"].clone();
            for key in ["usageMetadata", "modelVersion", "responseId"] {
                chunk[key] = whole[key].clone();
            }
        }
        out.push_str(&event(&chunk));
    }
    out
}

fn key_of(req: &Request) -> Option<String> {
    req.headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            req.url
                .query_pairs()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.into_owned())
        })
}

/// Whether a `generateContent` body is well-formed in either spelling (camelCase or snake_case).
fn well_formed(req: &Request) -> bool {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return false;
    };
    let parts = body.pointer("/contents/0/parts").and_then(Value::as_array);
    parts.is_some_and(|parts| {
        parts.iter().all(|p| {
            p.get("text").is_some()
                || ["inlineData", "inline_data", "fileData", "file_data"]
                    .iter()
                    .any(|k| p.get(*k).is_some())
        })
    })
}

impl FakeGeminiBuilder {
    /// How `generateContent` answers.
    #[must_use]
    pub fn answer(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// The strings written when a request asks for a JSON list (`responseJsonSchema` of type
    /// `array`); cut to its `maxItems`, as the schema binds the real model.
    #[must_use]
    pub fn items(mut self, items: &[&str]) -> Self {
        self.items = items.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Usage reported with text: prompt, candidates and thoughts tokens.
    #[must_use]
    pub fn usage(mut self, prompt: u64, output: u64, thoughts: u64) -> Self {
        self.usage = (prompt, output, thoughts);
        self
    }

    /// How a Veo operation ends.
    #[must_use]
    pub fn video_end(mut self, end: VideoEnd) -> Self {
        self.video_end = end;
        self
    }

    /// Polls answered `done: false` before the end.
    #[must_use]
    pub fn running_polls(mut self, n: u64) -> Self {
        self.running_polls = n;
        self
    }

    /// Answer every request `400 API_KEY_INVALID`.
    #[must_use]
    pub fn bad_key(mut self) -> Self {
        self.bad_key = true;
        self
    }

    /// Echo the received key in the bad-key answer (leak tests).
    #[must_use]
    pub fn echo_keys(mut self) -> Self {
        self.echo_keys = true;
        self
    }

    /// Answer the first submit `429 RESOURCE_EXHAUSTED` with `RetryInfo.retryDelay` of `secs`.
    #[must_use]
    pub fn rate_limited_once(mut self, secs: u64) -> Self {
        self.rate_limited_once = Some(secs);
        self
    }

    /// Start both servers.
    pub async fn start(self) -> FakeGemini {
        let server = MockServer::start().await;
        let media = MockServer::start().await;
        let base = server.uri();
        let model = self.model.clone();
        Mock::given(any())
            .respond_with(ResponseTemplate::new(599).set_body_string("unexpected request"))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        if self.bad_key {
            let echo = self.echo_keys;
            Mock::given(any())
                .respond_with(move |req: &Request| {
                    let received = if echo {
                        format!(" (received: {})", key_of(req).unwrap_or_default())
                    } else {
                        String::new()
                    };
                    json(
                        400,
                        render("gemini_error_400_key.json", &[("echo", &received)]),
                    )
                })
                .with_priority(2)
                .mount(&server)
                .await;
        }
        // The model list: what a key check reads (one page of one model).
        let listed = format!(
            r#"{{"models":[{{"name":"models/{model}","displayName":"{model}","supportedGenerationMethods":["generateContent"]}}],"nextPageToken":"x"}}"#
        );
        Mock::given(method("GET"))
            .and(path("/v1beta/models"))
            .respond_with(move |req: &Request| {
                if key_of(req).is_none() {
                    return json(403, r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#.into());
                }
                json(200, listed.clone())
            })
            .with_priority(5)
            .mount(&server)
            .await;
        if let Some(secs) = self.rate_limited_once {
            let body = render(
                "gemini_error_429.json",
                &[("retry", &secs.to_string()), ("model", &model)],
            );
            Mock::given(method("POST"))
                .and(path_regex(format!("^/v1beta/models/{model}:")))
                .respond_with(json(429, body))
                .up_to_n_times(1)
                .with_priority(3)
                .mount(&server)
                .await;
        }
        self.mount_generate(&server, &base).await;
        self.mount_veo(&server, &media, &base).await;
        let chunks = Arc::new(Mutex::new(Vec::new()));
        mount_files(&server, &base, Arc::clone(&chunks)).await;
        FakeGemini {
            server,
            media,
            model,
            chunks,
        }
    }

    /// `streamGenerateContent?alt=sse`: the same answer as `generateContent`, its answer text cut
    /// into three chunks (the last with the finish reason, usage and id), each a `data:` event.
    async fn mount_stream(server: &MockServer, model: &str, body: &str) {
        let events = stream_events(body);
        Mock::given(method("POST"))
            .and(path(format!("/v1beta/models/{model}:streamGenerateContent").as_str()))
            .respond_with(move |req: &Request| {
                if key_of(req).is_none() {
                    return json(403, r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#.into());
                }
                if !well_formed(req) || req.url.query() != Some("alt=sse") {
                    return json(400, r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#.into());
                }
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/event-stream")
                    .set_body_string(events.clone())
            })
            .with_priority(5)
            .mount(server)
            .await;
    }

    async fn mount_generate(&self, server: &MockServer, base: &str) {
        let model = &self.model;
        let body = match &self.answer {
            Answer::Text(text) => text_answer(text, self.usage, model),
            Answer::Image => fill("gemini_generate_image.json", model, base),
            Answer::PromptBlocked => fill("gemini_prompt_blocked.json", model, base),
            Answer::OutputBlocked => fill("gemini_output_blocked.json", model, base),
        };
        Self::mount_stream(server, model, &body).await;
        let (items, usage, name) = (self.items.clone(), self.usage, model.clone());
        Mock::given(method("POST"))
            .and(path(format!("/v1beta/models/{model}:generateContent").as_str()))
            .respond_with(move |req: &Request| {
                if key_of(req).is_none() {
                    return json(403, r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#.into());
                }
                if !well_formed(req) {
                    return json(400, r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#.into());
                }
                match list_asked(req) {
                    Some(max) => json(200, list_answer(&items, max, usage, &name)),
                    None => json(200, body.clone()),
                }
            })
            .with_priority(5)
            .mount(server)
            .await;
    }

    async fn mount_veo(&self, server: &MockServer, media: &MockServer, base: &str) {
        let model = &self.model;
        Mock::given(method("POST"))
            .and(path(
                format!("/v1beta/models/{model}:predictLongRunning").as_str(),
            ))
            .and(header_exists_key())
            .respond_with(json(200, fill("gemini_operation_submit.json", model, base)))
            .with_priority(5)
            .mount(server)
            .await;
        let op_path = format!("/v1beta/models/{model}/operations/{OPERATION}");
        Mock::given(method("GET"))
            .and(path(op_path.as_str()))
            .respond_with(json(
                200,
                fill("gemini_operation_running.json", model, base),
            ))
            .up_to_n_times(if self.video_end == VideoEnd::KeepRunning {
                u64::MAX
            } else {
                self.running_polls
            })
            .with_priority(4)
            .mount(server)
            .await;
        let end = match self.video_end {
            VideoEnd::Uri | VideoEnd::KeepRunning => "gemini_operation_done.json",
            VideoEnd::Encoded => "gemini_operation_encoded.json",
            VideoEnd::Filtered => "gemini_operation_filtered.json",
            VideoEnd::Error => "gemini_operation_error.json",
        };
        Mock::given(method("GET"))
            .and(path(op_path.as_str()))
            .respond_with(json(200, fill(end, model, base)))
            .with_priority(5)
            .mount(server)
            .await;
        let media_base = media.uri();
        Mock::given(method("GET"))
            .and(path(
                format!("/v1beta/files/{VIDEO_FILE}:download").as_str(),
            ))
            .respond_with(move |_: &Request| {
                ResponseTemplate::new(302).insert_header(
                    "location",
                    format!("{media_base}/generated/{VIDEO_FILE}.mp4?sig=abc").as_str(),
                )
            })
            .with_priority(5)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/generated/{VIDEO_FILE}.mp4").as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "video/mp4")
                    .set_body_bytes(mp4(8, 4096)),
            )
            .mount(media)
            .await;
    }
}

/// Requests that carry a key (header or query).
fn header_exists_key() -> impl wiremock::Match {
    struct HasKey;
    impl wiremock::Match for HasKey {
        fn matches(&self, request: &Request) -> bool {
            key_of(request).is_some()
        }
    }
    HasKey
}

/// The Files API: start (answers the session URL), chunks (`active`, then `final` with the file
/// `PROCESSING`), and the file resource (`PROCESSING` once, then `ACTIVE`).
async fn mount_files(server: &MockServer, base: &str, chunks: Arc<Mutex<Vec<(String, usize)>>>) {
    let session = format!("{base}/upload/v1beta/files?upload_id=sess-1&upload_protocol=resumable");
    let mime = Arc::new(Mutex::new(String::from("application/octet-stream")));
    let declared = Arc::clone(&mime);
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .and(header("x-goog-upload-command", "start"))
        .and(header("x-goog-upload-protocol", "resumable"))
        .and(header_exists_key())
        .respond_with(move |req: &Request| {
            if let (Ok(mut m), Some(v)) = (
                declared.lock(),
                req.headers
                    .get("x-goog-upload-header-content-type")
                    .and_then(|v| v.to_str().ok()),
            ) {
                v.clone_into(&mut m);
            }
            ResponseTemplate::new(200)
                .insert_header("x-goog-upload-url", session.as_str())
                .insert_header("x-goog-upload-status", "active")
        })
        .with_priority(5)
        .mount(server)
        .await;
    let final_base = base.to_owned();
    let received = AtomicU64::new(0);
    let final_mime = Arc::clone(&mime);
    Mock::given(method("POST"))
        .and(path("/upload/v1beta/files"))
        .respond_with(move |req: &Request| {
            let command = req
                .headers
                .get("x-goog-upload-command")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let offset: u64 = req
                .headers
                .get("x-goog-upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            if offset != received.load(Ordering::SeqCst) {
                return ResponseTemplate::new(400).set_body_string("bad offset");
            }
            received.fetch_add(req.body.len() as u64, Ordering::SeqCst);
            if let Ok(mut c) = chunks.lock() {
                c.push((command.clone(), req.body.len()));
            }
            if command.contains("finalize") {
                let mime = final_mime.lock().map(|m| m.clone()).unwrap_or_default();
                let body = file_json(
                    &final_base,
                    &mime,
                    "PROCESSING",
                    received.load(Ordering::SeqCst),
                );
                json(200, body).insert_header("x-goog-upload-status", "final")
            } else {
                ResponseTemplate::new(200).insert_header("x-goog-upload-status", "active")
            }
        })
        .with_priority(6)
        .mount(server)
        .await;
    let file_path = format!("/v1beta/files/{UPLOADED_FILE}");
    let inner = move |base: &str, mime: &Mutex<String>, state: &str| -> String {
        let mime = mime.lock().map(|m| m.clone()).unwrap_or_default();
        let wrapped: Value =
            serde_json::from_str(&file_json(base, &mime, state, 0)).unwrap_or(Value::Null);
        wrapped["file"].to_string()
    };
    let (processing_base, processing_mime) = (base.to_owned(), Arc::clone(&mime));
    Mock::given(method("GET"))
        .and(path(file_path.as_str()))
        .respond_with(move |_: &Request| {
            json(200, inner(&processing_base, &processing_mime, "PROCESSING"))
        })
        .up_to_n_times(1)
        .with_priority(4)
        .mount(server)
        .await;
    let (active_base, active_mime) = (base.to_owned(), Arc::clone(&mime));
    Mock::given(method("GET"))
        .and(path(file_path.as_str()))
        .respond_with(move |_: &Request| json(200, inner(&active_base, &active_mime, "ACTIVE")))
        .with_priority(5)
        .mount(server)
        .await;
    // Deleting (with the key) the uploaded file answers an empty object; any other file is
    // unknown (404).
    Mock::given(method("DELETE"))
        .and(path(file_path.as_str()))
        .and(header_exists_key())
        .respond_with(json(200, "{}".into()))
        .with_priority(4)
        .mount(server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/v1beta/files/[^/]+$"))
        .and(header_exists_key())
        .respond_with(json(
            404,
            r#"{"error":{"code":404,"message":"File not found.","status":"NOT_FOUND"}}"#.into(),
        ))
        .with_priority(6)
        .mount(server)
        .await;
}

fn file_json(base: &str, mime: &str, state: &str, size: u64) -> String {
    render(
        "gemini_file.json",
        &[
            ("file_id", UPLOADED_FILE),
            ("display_name", "input"),
            ("mime", mime),
            ("size", &size.to_string()),
            ("base", base),
            ("state", state),
        ],
    )
}
