//! A fake fal server for many concurrent clients: every submit gets its own request id, finishes
//! at once (or after a set running time), and returns as many images, of the size asked for, as the request paid for — so that
//! the provider side knows exactly what every accepted request costs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::media::PNG_1X1;

/// Image sizes of the fal presets.
fn dims(size: &Value) -> (u64, u64) {
    match size {
        Value::String(s) => match s.as_str() {
            "square_hd" => (1024, 1024),
            "square" => (512, 512),
            "portrait_4_3" => (768, 1024),
            "portrait_16_9" => (576, 1024),
            "landscape_16_9" => (1024, 576),
            _ => (1024, 768),
        },
        Value::Object(o) => (
            o.get("width").and_then(Value::as_u64).unwrap_or(1024),
            o.get("height").and_then(Value::as_u64).unwrap_or(768),
        ),
        _ => (1024, 768),
    }
}

/// The fake.
#[derive(Debug)]
pub struct FakeFalFleet {
    server: MockServer,
    accepted: Arc<Mutex<Vec<Value>>>,
}

impl FakeFalFleet {
    /// Start serving `endpoint`; each submit waits `submit_delay` before it is answered.
    pub async fn start(endpoint: &str, submit_delay: Duration) -> Self {
        Self::start_running(endpoint, submit_delay, Duration::ZERO).await
    }

    /// [`FakeFalFleet::start`], with each job `IN_PROGRESS` for `run_time` after its submit.
    pub async fn start_running(endpoint: &str, submit_delay: Duration, run_time: Duration) -> Self {
        let server = MockServer::start().await;
        let base = server.uri();
        let root: String = endpoint.split('/').take(2).collect::<Vec<_>>().join("/");
        let accepted: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(1));
        let store = Arc::clone(&accepted);
        let started: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let submitted = Arc::clone(&started);
        let submit_root = root.clone();
        let submit_base = base.clone();
        Mock::given(method("POST"))
            .and(path(format!("/{endpoint}").as_str()))
            .respond_with(move |req: &Request| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let id = format!("{n:08x}-0000-4000-8000-{n:012x}");
                let mut params: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                params["__request_id"] = json!(id);
                if let Ok(mut list) = store.lock() {
                    list.push(params);
                }
                if let Ok(mut times) = submitted.lock() {
                    times.insert(id.clone(), Instant::now());
                }
                let body = json!({
                    "status": "IN_QUEUE", "queue_position": 0, "request_id": id,
                    "response_url": format!("{submit_base}/{submit_root}/requests/{id}"),
                    "status_url": format!("{submit_base}/{submit_root}/requests/{id}/status"),
                    "cancel_url": format!("{submit_base}/{submit_root}/requests/{id}/cancel"),
                });
                ResponseTemplate::new(200)
                    .set_body_json(body)
                    .set_delay(submit_delay)
            })
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(
                format!(r"^/{root}/requests/[0-9a-f-]+/status$").as_str(),
            ))
            .respond_with(move |req: &Request| {
                let id = req.url.path().rsplit('/').nth(1).unwrap_or_default();
                let since = started
                    .lock()
                    .ok()
                    .and_then(|t| t.get(id).map(Instant::elapsed));
                if since.is_some_and(|s| s < run_time) {
                    return ResponseTemplate::new(200)
                        .set_body_json(json!({"status": "IN_PROGRESS", "logs": []}));
                }
                ResponseTemplate::new(200).set_body_json(
                    json!({"status": "COMPLETED", "logs": [], "metrics": {"inference_time": 0.1}}),
                )
            })
            .mount(&server)
            .await;
        let lookup = Arc::clone(&accepted);
        let media_base = base.clone();
        Mock::given(method("GET"))
            .and(path_regex(format!(r"^/{root}/requests/[0-9a-f-]+$").as_str()))
            .respond_with(move |req: &Request| {
                let id = req.url.path().rsplit('/').next().unwrap_or_default().to_owned();
                let params = lookup
                    .lock()
                    .ok()
                    .and_then(|list| list.iter().find(|p| p["__request_id"] == json!(id)).cloned())
                    .unwrap_or(Value::Null);
                let count = params["num_images"].as_u64().unwrap_or(1);
                let (w, h) = dims(&params["image_size"]);
                let images: Vec<Value> = (0..count)
                    .map(|i| json!({"url": format!("{media_base}/files/{id}-{i}.png"), "width": w, "height": h, "content_type": "image/png"}))
                    .collect();
                let flags: Vec<bool> = vec![false; images.len()];
                ResponseTemplate::new(200)
                    .insert_header("x-fal-request-id", id.as_str())
                    .set_body_json(json!({"images": images, "has_nsfw_concepts": flags, "seed": 1}))
            })
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/files/.+\.png$"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "image/png")
                    .set_body_bytes(PNG_1X1),
            )
            .mount(&server)
            .await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(599)
                    .set_body_string("unexpected request to the fake fal fleet"),
            )
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Self { server, accepted }
    }

    /// The base URL.
    #[must_use]
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The parameters of every accepted submit.
    #[must_use]
    pub fn accepted(&self) -> Vec<Value> {
        self.accepted.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// What the provider would bill for `params` at `rate_micros` per megapixel (rounded up per image).
    #[must_use]
    pub fn cost_micros(params: &Value, rate_micros: i64) -> i64 {
        let count = i64::try_from(params["num_images"].as_u64().unwrap_or(1)).unwrap_or(1);
        let (w, h) = dims(&params["image_size"]);
        let mp = i64::try_from((w * h).div_ceil(1_000_000).max(1)).unwrap_or(1);
        count * mp * rate_micros
    }
}
