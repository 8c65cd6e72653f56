//! A fake ElevenLabs API following the reference (shared/reference/providers.md §B): speech as
//! `audio/mpeg` bytes with `request-id`, `character-cost` and `x-character-count`; voices, models
//! and the subscription; Scribe transcripts from a multipart upload; errors as
//! `{"detail": {"status", "message"}}` (both 401s) or a 422 `detail` array. Any other request is
//! answered `599`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::render;

/// The voice id the fake knows as "Rachel".
pub const RACHEL: &str = "21m00Tcm4TlvDq8ikWAM";

/// How text-to-speech answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechFailure {
    /// `401 invalid_api_key` on every request.
    InvalidKey,
    /// `401 quota_exceeded` on speech.
    QuotaExceeded,
    /// `422` with a validation `detail` array.
    Validation,
    /// One `429 too_many_concurrent_requests`, then success.
    ConcurrentOnce,
    /// One `429 system_busy`, then success.
    BusyOnce,
}

/// What `GET /v1/user/subscription` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Characters left this period.
    Remaining(u64),
    /// `401 missing_permissions` (a key scoped without `user_read`).
    NoPermission,
}

/// Builder for [`FakeElevenLabs`].
#[derive(Debug, Clone)]
pub struct FakeElevenLabsBuilder {
    failure: Option<SpeechFailure>,
    echo_keys: bool,
    quota: Quota,
    limit: u64,
}

/// A running fake ElevenLabs API.
#[derive(Debug)]
pub struct FakeElevenLabs {
    server: MockServer,
}

/// An MPEG audio frame header followed by silence: what the fake speaks per character.
fn mp3_for(chars: usize) -> Vec<u8> {
    let mut out = vec![0xff, 0xfb, 0x90, 0x64];
    out.resize(4 + chars.max(1) * 8, 0);
    out
}

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .set_body_string(body)
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    json(
        status,
        render(
            "elevenlabs_error.json",
            &[("status", code), ("message", message)],
        ),
    )
}

/// Requests carrying `xi-api-key`.
struct HasKey;

impl Match for HasKey {
    fn matches(&self, request: &Request) -> bool {
        request.headers.get("xi-api-key").is_some()
    }
}

impl FakeElevenLabs {
    /// A builder: speech succeeds, 100,000 characters left, a 10,000-character model limit.
    #[must_use]
    pub fn builder() -> FakeElevenLabsBuilder {
        FakeElevenLabsBuilder {
            failure: None,
            echo_keys: false,
            quota: Quota::Remaining(100_000),
            limit: 10_000,
        }
    }

    /// The base URL (use as `providers.elevenlabs.base_url`).
    #[must_use]
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Every request received.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// The JSON bodies of speech requests, in order.
    pub async fn speech_bodies(&self) -> Vec<Value> {
        self.requests()
            .await
            .iter()
            .filter(|r| r.url.path().starts_with("/v1/text-to-speech/"))
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }

    /// Requests nothing in the protocol asked for (answered `599`).
    pub async fn unexpected(&self) -> Vec<String> {
        self.requests()
            .await
            .iter()
            .filter(|r| {
                let p = r.url.path();
                !(p.starts_with("/v1/text-to-speech/")
                    || p == "/v1/voices"
                    || p == "/v1/models"
                    || p == "/v1/user/subscription"
                    || p == "/v1/speech-to-text"
                    || p == "/v1/sound-generation"
                    || p == "/v1/music"
                    || p == "/v1/text-to-dialogue")
            })
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }
}

impl FakeElevenLabsBuilder {
    /// Make requests fail.
    #[must_use]
    pub fn failure(mut self, failure: SpeechFailure) -> Self {
        self.failure = Some(failure);
        self
    }

    /// Echo the received key in `invalid_api_key` answers (leak tests).
    #[must_use]
    pub fn echo_keys(mut self) -> Self {
        self.echo_keys = true;
        self
    }

    /// What the subscription says.
    #[must_use]
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }

    /// `maximum_text_length_per_request` of `eleven_multilingual_v2`.
    #[must_use]
    pub fn text_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Start the server.
    pub async fn start(self) -> FakeElevenLabs {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(599).set_body_string("unexpected request"))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Mock::given(any())
            .and(NoKey)
            .respond_with(error(401, "invalid_api_key", "Invalid API key"))
            .with_priority(1)
            .mount(&server)
            .await;
        self.mount_failures(&server).await;
        self.mount_reads(&server).await;
        mount_speech(&server).await;
        mount_audio_apis(&server).await;
        Mock::given(method("POST"))
            .and(path("/v1/speech-to-text"))
            .and(Multipart)
            .respond_with(
                json(200, render("elevenlabs_transcript.json", &[]))
                    .insert_header("request-id", "req-stt-0001"),
            )
            .with_priority(5)
            .mount(&server)
            .await;
        FakeElevenLabs { server }
    }

    async fn mount_failures(&self, server: &MockServer) {
        let speech =
            || Mock::given(method("POST")).and(path_regex(r"^/v1/text-to-speech/[A-Za-z0-9]{20}$"));
        match self.failure {
            None => {}
            Some(SpeechFailure::InvalidKey) => {
                let echo = self.echo_keys;
                Mock::given(any())
                    .respond_with(move |req: &Request| {
                        let received = req
                            .headers
                            .get("xi-api-key")
                            .and_then(|v| v.to_str().ok())
                            .filter(|_| echo)
                            .map(|k| format!(" (received: {k})"))
                            .unwrap_or_default();
                        error(401, "invalid_api_key", &format!("Invalid API key{received}"))
                    })
                    .with_priority(2)
                    .mount(server)
                    .await;
            }
            Some(SpeechFailure::QuotaExceeded) => speech()
                .respond_with(error(401, "quota_exceeded", "This request exceeds your quota of 10000. You have 0 credits remaining, while 91 credits are required for this request."))
                .with_priority(2)
                .mount(server)
                .await,
            Some(SpeechFailure::Validation) => speech()
                .respond_with(json(422, render("elevenlabs_error_422.json", &[])))
                .with_priority(2)
                .mount(server)
                .await,
            Some(SpeechFailure::ConcurrentOnce) => speech()
                .respond_with(error(429, "too_many_concurrent_requests", "Too many concurrent requests for your plan."))
                .up_to_n_times(1)
                .with_priority(2)
                .mount(server)
                .await,
            Some(SpeechFailure::BusyOnce) => speech()
                .respond_with(error(429, "system_busy", "The system is busy; retry later with exponential backoff."))
                .up_to_n_times(1)
                .with_priority(2)
                .mount(server)
                .await,
        }
    }

    async fn mount_reads(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path("/v1/voices"))
            .respond_with(json(200, render("elevenlabs_voices.json", &[])))
            .with_priority(5)
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(json(
                200,
                render(
                    "elevenlabs_models.json",
                    &[("limit", &self.limit.to_string())],
                ),
            ))
            .with_priority(5)
            .mount(server)
            .await;
        let subscription = match self.quota {
            Quota::Remaining(left) => json(
                200,
                render(
                    "elevenlabs_subscription.json",
                    &[("used", "1000"), ("limit", &(1000 + left).to_string())],
                ),
            ),
            Quota::NoPermission => error(
                401,
                "missing_permissions",
                "The API key you used is missing the permission user_read to execute this operation.",
            ),
        };
        Mock::given(method("GET"))
            .and(path("/v1/user/subscription"))
            .respond_with(subscription)
            .with_priority(5)
            .mount(server)
            .await;
    }
}

/// Speech: known voices answer MP3 bytes and the character headers; others `404 voice_not_found`.
async fn mount_speech(server: &MockServer) {
    let request_ids = AtomicU64::new(0);
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1/text-to-speech/[A-Za-z0-9]+$"))
        .respond_with(move |req: &Request| {
            let voice = req
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if !matches!(
                voice.as_str(),
                RACHEL | "pNInz6obpgDQGcFmaJgB" | "Zl7nCustomVoice00001"
            ) {
                return error(
                    404,
                    "voice_not_found",
                    &format!("A voice with the voice_id {voice} was not found."),
                );
            }
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return json(422, render("elevenlabs_error_422.json", &[]));
            };
            let chars = body["text"].as_str().map_or(0, |t| t.chars().count());
            let n = request_ids.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/mpeg")
                .insert_header("request-id", format!("req-tts-{n:04}").as_str())
                .insert_header("character-cost", chars.to_string().as_str())
                .insert_header("x-character-count", chars.to_string().as_str())
                .set_body_bytes(mp3_for(chars))
        })
        .with_priority(5)
        .mount(server)
        .await;
}

/// Sound effects (`text`, `duration_seconds` 0.5–30), music (`prompt` or `composition_plan`,
/// never both; `music_length_ms` 3,000–600,000) and dialogue (`inputs` of known voices): MP3
/// bytes, with `character-cost` where ElevenLabs counts characters; a bad body is a 422.
async fn mount_audio_apis(server: &MockServer) {
    let known = |id: &str| matches!(id, RACHEL | "pNInz6obpgDQGcFmaJgB" | "Zl7nCustomVoice00001");
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/v1/(sound-generation|music|text-to-dialogue)$",
        ))
        .respond_with(move |req: &Request| {
            let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
                return json(422, render("elevenlabs_error_422.json", &[]));
            };
            let in_range = |name: &str, low: f64, high: f64| {
                body.get(name)
                    .is_none_or(|v| v.as_f64().is_some_and(|n| (low..=high).contains(&n)))
            };
            let (ok, chars) = match req.url.path() {
                "/v1/sound-generation" => (
                    body["text"].is_string() && in_range("duration_seconds", 0.5, 30.0),
                    body["text"].as_str().map_or(0, |t| t.chars().count()),
                ),
                "/v1/music" => (
                    body["prompt"].is_string() != body["composition_plan"].is_object()
                        && in_range("music_length_ms", 3000.0, 600_000.0),
                    0,
                ),
                _ => {
                    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
                    if let Some(bad) = inputs
                        .iter()
                        .find(|i| !known(i["voice_id"].as_str().unwrap_or_default()))
                    {
                        return error(
                            404,
                            "voice_not_found",
                            &format!(
                                "A voice with the voice_id {} was not found.",
                                bad["voice_id"]
                            ),
                        );
                    }
                    let chars = inputs
                        .iter()
                        .map(|i| i["text"].as_str().map_or(0, |t| t.chars().count()))
                        .sum();
                    (!inputs.is_empty(), chars)
                }
            };
            if !ok {
                return json(422, render("elevenlabs_error_422.json", &[]));
            }
            let mut answer = ResponseTemplate::new(200)
                .insert_header("content-type", "audio/mpeg")
                .insert_header("request-id", "req-audio-0001")
                .set_body_bytes(mp3_for(chars.max(40)));
            if chars > 0 {
                answer = answer.insert_header("character-cost", chars.to_string().as_str());
            }
            answer
        })
        .with_priority(5)
        .mount(server)
        .await;
}

/// Requests without `xi-api-key`.
struct NoKey;

impl Match for NoKey {
    fn matches(&self, request: &Request) -> bool {
        !HasKey.matches(request)
    }
}

/// A `multipart/form-data` body with a `model_id` field and a `file` part.
struct Multipart;

impl Match for Multipart {
    fn matches(&self, request: &Request) -> bool {
        let is_form = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("multipart/form-data; boundary="));
        let body = String::from_utf8_lossy(&request.body);
        is_form && body.contains("name=\"model_id\"") && body.contains("name=\"file\"; filename=")
    }
}
