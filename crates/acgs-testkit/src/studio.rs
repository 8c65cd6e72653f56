//! One fake server speaking all three protocols at once, for pipelines: fal's queue (any
//! endpoint; a fresh request id per submit; the SSE status stream answers `COMPLETED` after the
//! latency), Gemini's `generateContent` and ElevenLabs' text-to-speech (each answered after the
//! latency). Point every provider's base URL at [`FakeStudio::uri`].
//!
//! The fake records when each request started and finished, so tests can check how many ran at
//! once, and counts submits per endpoint, so resume tests can check nothing was paid for twice.
//! [`FakeStudio::hold`] keeps every fal job running until [`FakeStudio::release`].
//!
//! [`FakeStudio::films`] serves real, decodable media made by ffmpeg (2 s clips, a PNG, a 3 s
//! MP3 narration) for pipelines that join, mux and cut what the providers made. Either way
//! Gemini answers a request for a JSON list (`responseJsonSchema` of type `array`) with
//! [`FakeStudio::set_items`] scene strings, cut to its `maxItems`, and ElevenLabs' Scribe
//! transcribes any upload to the fixture's words.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{any, method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::media::{PNG_1X1, mp4, real};

/// How long each clip of [`FakeStudio::films`] lasts, in seconds.
pub const FILM_CLIP_SECONDS: u32 = 2;
/// How long the narration of [`FakeStudio::films`] lasts, in seconds.
pub const FILM_NARRATION_SECONDS: u32 = 3;

/// What a fal endpoint returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FalResult {
    /// `images[]` (one per `num_images`).
    Images,
    /// `video`.
    Video,
}

/// One request the fake served: what, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `fal:<endpoint>`, `gemini:<model>` or `elevenlabs:<voice>`.
    pub what: String,
    /// When it was accepted.
    pub started: Instant,
    /// When its result was ready.
    pub finished: Instant,
}

#[derive(Debug)]
struct State {
    served: Mutex<Vec<Served>>,
    fal_jobs: Mutex<Vec<(String, String, Instant)>>,
    bodies: Mutex<Vec<(String, Value)>>,
    /// Strings written for a JSON list.
    items: AtomicUsize,
}

impl Default for State {
    fn default() -> Self {
        Self {
            served: Mutex::default(),
            fal_jobs: Mutex::default(),
            bodies: Mutex::default(),
            items: AtomicUsize::new(3),
        }
    }
}

/// The running fake.
#[derive(Debug)]
pub struct FakeStudio {
    server: MockServer,
    state: Arc<State>,
    held: Arc<AtomicBool>,
}

/// The text Gemini answers for a prompt: a fixed sentence naming the prompt's length.
#[must_use]
pub fn gemini_text_for(prompt: &str) -> String {
    format!(
        "A cinematic shot, golden light, slow camera move ({} characters in).",
        prompt.chars().count()
    )
}

impl FakeStudio {
    /// Serve fal `endpoints` (with what each returns), Gemini text and ElevenLabs speech, each
    /// finishing `latency` after it was accepted.
    pub async fn start(endpoints: &[(&str, FalResult)], latency: Duration) -> Self {
        Self::serve(endpoints, latency, false).await
    }

    /// As [`FakeStudio::start`], serving real media made by ffmpeg: every clip a
    /// [`FILM_CLIP_SECONDS`] s 160×120 H.264 test pattern without sound, every image a
    /// 128×96 PNG, every narration a [`FILM_NARRATION_SECONDS`] s MP3.
    pub async fn films(endpoints: &[(&str, FalResult)], latency: Duration) -> Self {
        Self::serve(endpoints, latency, true).await
    }

    /// Write `n` strings when a JSON list is asked for (3 unless set).
    pub fn set_items(&self, n: usize) {
        self.state.items.store(n, Ordering::SeqCst);
    }

    async fn serve(endpoints: &[(&str, FalResult)], latency: Duration, films: bool) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(State::default());
        let held = Arc::new(AtomicBool::new(false));
        let base = server.uri();
        let counter = Arc::new(AtomicU64::new(1));
        for (endpoint, result) in endpoints {
            mount_fal(
                &server, &base, endpoint, *result, latency, &state, &held, &counter,
            )
            .await;
        }
        mount_gemini(&server, latency, &state).await;
        let narration = films.then(|| real::mp3(FILM_NARRATION_SECONDS));
        mount_speech(&server, latency, &state, narration).await;
        mount_scribe(&server, &state).await;
        let (png, clip) = if films {
            (
                real::png(128, 96),
                real::clip(FILM_CLIP_SECONDS, 160, 120, false),
            )
        } else {
            (PNG_1X1.to_vec(), mp4(5, 4096))
        };
        Mock::given(method("GET"))
            .and(path_regex(r"^/files/.+\.png$"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "image/png")
                    .set_body_bytes(png),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/files/.+\.mp4$"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "video/mp4")
                    .set_body_bytes(clip),
            )
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(599).set_body_string("unexpected request"))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Self {
            server,
            state,
            held,
        }
    }

    /// The base URL for every provider.
    #[must_use]
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Keep every fal job running (status `IN_PROGRESS`) until [`FakeStudio::release`].
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// Let held fal jobs finish.
    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }

    /// Every finished request, in the order they finished.
    #[must_use]
    pub fn served(&self) -> Vec<Served> {
        self.state
            .served
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The most requests that were running at the same moment.
    #[must_use]
    pub fn max_overlap(&self) -> usize {
        let served = self.served();
        served
            .iter()
            .map(|a| {
                served
                    .iter()
                    .filter(|b| b.started <= a.started && a.started < b.finished)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// How many submits reached `what` (`fal:<endpoint>`, `gemini:<model>`, `elevenlabs:<voice>`).
    #[must_use]
    pub fn submits(&self, what: &str) -> usize {
        self.state
            .bodies
            .lock()
            .map(|b| b.iter().filter(|(w, _)| w == what).count())
            .unwrap_or(0)
    }

    /// The JSON bodies sent to `what`, in order.
    #[must_use]
    pub fn bodies(&self, what: &str) -> Vec<Value> {
        self.state
            .bodies
            .lock()
            .map(|b| {
                b.iter()
                    .filter(|(w, _)| w == what)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn record(state: &State, what: &str, started: Instant, finished: Instant) {
    if let Ok(mut served) = state.served.lock() {
        served.push(Served {
            what: what.to_owned(),
            started,
            finished,
        });
    }
}

fn remember(state: &State, what: &str, body: &[u8]) {
    let value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Ok(mut bodies) = state.bodies.lock() {
        bodies.push((what.to_owned(), value));
    }
}

#[allow(clippy::too_many_arguments)]
async fn mount_fal(
    server: &MockServer,
    base: &str,
    endpoint: &str,
    result: FalResult,
    latency: Duration,
    state: &Arc<State>,
    held: &Arc<AtomicBool>,
    counter: &Arc<AtomicU64>,
) {
    let root: String = endpoint.split('/').take(2).collect::<Vec<_>>().join("/");
    let what = format!("fal:{endpoint}");
    let (submit_state, submit_counter, submit_base, submit_root) = (
        Arc::clone(state),
        Arc::clone(counter),
        base.to_owned(),
        root.clone(),
    );
    let submit_what = what.clone();
    Mock::given(method("POST"))
        .and(wiremock::matchers::path(format!("/{endpoint}").as_str()))
        .respond_with(move |req: &Request| {
            let n = submit_counter.fetch_add(1, Ordering::SeqCst);
            let id = format!("{n:08x}-0000-4000-8000-{n:012x}");
            remember(&submit_state, &submit_what, &req.body);
            if let Ok(mut jobs) = submit_state.fal_jobs.lock() {
                jobs.push((id.clone(), submit_what.clone(), Instant::now()));
            }
            ResponseTemplate::new(200).set_body_json(json!({
                "status": "IN_QUEUE", "queue_position": 0, "request_id": id,
                "response_url": format!("{submit_base}/{submit_root}/requests/{id}"),
                "status_url": format!("{submit_base}/{submit_root}/requests/{id}/status"),
                "cancel_url": format!("{submit_base}/{submit_root}/requests/{id}/cancel"),
            }))
        })
        .mount(server)
        .await;
    let (stream_state, stream_held) = (Arc::clone(state), Arc::clone(held));
    Mock::given(method("GET"))
        .and(path_regex(
            format!(r"^/{root}/requests/[0-9a-f-]+/status(/stream)?$").as_str(),
        ))
        .respond_with(move |req: &Request| {
            let id = req
                .url
                .path()
                .split('/')
                .nth(4)
                .unwrap_or_default()
                .to_owned();
            let stream = req.url.path().ends_with("/stream");
            let started = stream_state.fal_jobs.lock().ok().and_then(|jobs| {
                jobs.iter()
                    .find(|(j, _, _)| *j == id)
                    .map(|(_, w, t)| (w.clone(), *t))
            });
            let Some((what, started)) = started else {
                return ResponseTemplate::new(404)
                    .set_body_string("{\"detail\":\"Request not found\"}");
            };
            if stream_held.load(Ordering::SeqCst) {
                let running = json!({"status": "IN_PROGRESS", "logs": []});
                return if stream {
                    ResponseTemplate::new(200)
                        .insert_header("content-type", "text/event-stream")
                        .set_body_string(format!("data: {running}\n\n"))
                        .set_delay(Duration::from_secs(30))
                } else {
                    ResponseTemplate::new(202).set_body_json(running)
                };
            }
            let ready = started + latency;
            let wait = ready.saturating_duration_since(Instant::now());
            if !stream && !wait.is_zero() {
                return ResponseTemplate::new(202)
                    .set_body_json(json!({"status": "IN_PROGRESS", "logs": []}));
            }
            record(&stream_state, &what, started, ready.max(Instant::now()));
            let done =
                json!({"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 0.2}});
            if stream {
                ResponseTemplate::new(200)
                    .insert_header("content-type", "text/event-stream")
                    .set_body_string(format!("data: {done}\n\n"))
                    .set_delay(wait)
            } else {
                ResponseTemplate::new(200).set_body_json(done)
            }
        })
        .with_priority(2)
        .mount(server)
        .await;
    let media_base = base.to_owned();
    Mock::given(method("GET"))
        .and(path_regex(format!(r"^/{root}/requests/[0-9a-f-]+$").as_str()))
        .respond_with(move |req: &Request| {
            let id = req.url.path().rsplit('/').next().unwrap_or_default().to_owned();
            let body = match result {
                FalResult::Images => json!({"images": [{"url": format!("{media_base}/files/{id}.png"), "width": 1024, "height": 768, "content_type": "image/png"}], "has_nsfw_concepts": [false], "seed": 1}),
                FalResult::Video => json!({"video": {"url": format!("{media_base}/files/{id}.mp4"), "content_type": "video/mp4", "file_size": 4096}}),
            };
            ResponseTemplate::new(200)
                .insert_header("x-fal-request-id", id.as_str())
                .set_body_json(body)
        })
        .with_priority(3)
        .mount(server)
        .await;
}

async fn mount_gemini(server: &MockServer, latency: Duration, state: &Arc<State>) {
    let state = Arc::clone(state);
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1beta/models/[a-z0-9.-]+:generateContent$"))
        .respond_with(move |req: &Request| {
            let model = req
                .url
                .path()
                .trim_start_matches("/v1beta/models/")
                .trim_end_matches(":generateContent")
                .to_owned();
            let what = format!("gemini:{model}");
            remember(&state, &what, &req.body);
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let prompt = body
                .pointer("/contents/0/parts")
                .and_then(Value::as_array)
                .and_then(|parts| parts.iter().rev().find_map(|p| p.get("text")?.as_str()))
                .unwrap_or_default()
                .to_owned();
            let now = Instant::now();
            record(&state, &what, now, now + latency);
            let text = match list_asked(&body) {
                Some(max) => {
                    let n = state.items.load(Ordering::SeqCst).min(max);
                    let items: Vec<String> = (1..=n)
                        .map(|i| format!("Scene {i}: {}", gemini_text_for(&prompt)))
                        .collect();
                    serde_json::to_string(&items).unwrap_or_default()
                }
                None => gemini_text_for(&prompt),
            };
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 30, "totalTokenCount": 50},
                    "modelVersion": model, "responseId": "studio"
                }))
                .set_delay(latency)
        })
        .mount(server)
        .await;
}

/// The `maxItems` of a `generateContent` body asking for a JSON list of strings.
fn list_asked(body: &Value) -> Option<usize> {
    let schema = body.pointer("/generationConfig/responseJsonSchema")?;
    (schema.get("type")?.as_str()? == "array").then_some(())?;
    let max = schema.get("maxItems").and_then(Value::as_u64).unwrap_or(64);
    usize::try_from(max).ok()
}

/// Scribe: any upload transcribed to the fixture's words.
async fn mount_scribe(server: &MockServer, state: &Arc<State>) {
    let state = Arc::clone(state);
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/speech-to-text"))
        .respond_with(move |_: &Request| {
            let now = Instant::now();
            record(&state, "elevenlabs:scribe_v1", now, now);
            remember(&state, "elevenlabs:scribe_v1", b"{}");
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .insert_header("request-id", "studio-stt")
                .set_body_string(crate::render("elevenlabs_transcript.json", &[]))
        })
        .mount(server)
        .await;
}

async fn mount_speech(
    server: &MockServer,
    latency: Duration,
    state: &Arc<State>,
    narration: Option<Vec<u8>>,
) {
    let state = Arc::clone(state);
    Mock::given(method("POST"))
        .and(path_regex(r"^/v1/text-to-speech/[A-Za-z0-9]{20}$"))
        .respond_with(move |req: &Request| {
            let voice = req
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let what = format!("elevenlabs:{voice}");
            remember(&state, &what, &req.body);
            let chars = serde_json::from_slice::<Value>(&req.body)
                .ok()
                .and_then(|b| b["text"].as_str().map(|t| t.chars().count()))
                .unwrap_or(0);
            let now = Instant::now();
            record(&state, &what, now, now + latency);
            let audio = narration.clone().unwrap_or_else(|| {
                let mut audio = vec![0xff, 0xfb, 0x90, 0x64];
                audio.resize(4 + chars.max(1) * 8, 0);
                audio
            });
            ResponseTemplate::new(200)
                .insert_header("content-type", "audio/mpeg")
                .insert_header("request-id", "studio-tts")
                .insert_header("character-cost", chars.to_string().as_str())
                .set_body_bytes(audio)
                .set_delay(latency)
        })
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/v1/user/subscription"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"tier": "creator", "character_count": 0, "character_limit": 1_000_000, "status": "active"}),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"model_id": "eleven_multilingual_v2", "can_do_text_to_speech": true, "maximum_text_length_per_request": 10000, "model_rates": {"character_cost_multiplier": 1.0}}
        ])))
        .mount(server)
        .await;
}
