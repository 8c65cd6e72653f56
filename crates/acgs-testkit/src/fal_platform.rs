//! A fake of fal's platform API (reference section E): `GET /v1/models` in its find mode
//! (repeated `endpoint_id`, `expand=openapi-3.0`, unknown ids left out) and its search mode
//! (`q`, `limit` up to [`PAGE_MAX`], an opaque base64 page `cursor`, `has_more`, `next_cursor`; `is_favorited` is
//! `null` without a key); `GET /v1/models/pricing` (400 `validation_error` without
//! `endpoint_id`, 401 `authorization_error` without a key); `GET /v1/models/billing-events`
//! (403 unless the key is the admin key). Errors use the platform's `{"error": {type, message}}`
//! body, not the queue's `{"detail": …}`.
//!
//! [`openapi`] wraps an input schema into the per-endpoint queue document fal serves, and the
//! `*_schema` functions are the endpoints the tests add: one that maps cleanly and the hostile
//! ones (huge, deeply nested, a prompt named like a URL).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The most models one search page holds.
pub const PAGE_MAX: usize = 2;

/// The key the fake accepts for the admin-only endpoints.
pub const ADMIN_KEY: &str = "fal-admin-0000:fake-admin-key-for-tests";

/// One endpoint the fake lists.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `owner/app/...`.
    pub id: String,
    /// fal's category (`image-to-video`, …).
    pub category: String,
    /// Display name.
    pub name: String,
    /// The OpenAPI document, or an `{"error": …}` expansion failure.
    pub openapi: Value,
    /// `(unit, unit_price)` from the pricing API, if priced.
    pub price: Option<(String, f64)>,
}

/// The fake platform API.
#[derive(Debug)]
pub struct FakeFalPlatform {
    server: MockServer,
    events: Arc<Mutex<Vec<Value>>>,
}

impl FakeFalPlatform {
    /// Serve `endpoints`.
    pub async fn start(endpoints: Vec<Endpoint>) -> Self {
        let server = MockServer::start().await;
        let endpoints = Arc::new(endpoints);
        let listed = Arc::clone(&endpoints);
        Mock::given(method("GET"))
            .and(path("/v1/models"))
            .respond_with(move |req: &Request| models(&listed, req))
            .mount(&server)
            .await;
        let priced = Arc::clone(&endpoints);
        Mock::given(method("GET"))
            .and(path("/v1/models/pricing"))
            .respond_with(move |req: &Request| pricing(&priced, req))
            .mount(&server)
            .await;
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let billed = Arc::clone(&events);
        Mock::given(method("GET"))
            .and(path("/v1/models/billing-events"))
            .respond_with(move |req: &Request| billing_events(&billed, req))
            .mount(&server)
            .await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(599))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        Self { server, events }
    }

    /// The base URL (`providers.fal.api_url`).
    #[must_use]
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Record a billing event (E.6 shape) for `request_id`: `units` at `unit_price`, costing
    /// `total_micros` micro-dollars in all.
    pub fn bill(
        &self,
        request_id: &str,
        endpoint: &str,
        units: f64,
        unit_price: f64,
        total_micros: i64,
    ) {
        let total: Value = serde_json::from_str(&format!(
            "{}.{:06}",
            total_micros / 1_000_000,
            total_micros % 1_000_000
        ))
        .expect("a decimal");
        self.events.lock().expect("events").push(json!({
            "request_id": request_id, "endpoint_id": endpoint,
            "timestamp": "2026-12-06T10:30:45Z", "output_units": units, "unit_price": unit_price,
            "percent_discount": null, "cost_subtotal": total, "cost_discount": 0.0,
            "cost_total": total, "cost_estimate_nano_usd": total_micros * 1000,
        }));
    }

    /// Every request the fake received, as `path?query`.
    pub async fn requests(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or_default()))
            .collect()
    }
}

fn error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"type": kind, "message": message}}))
}

fn keyed(req: &Request) -> Option<String> {
    req.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Key "))
        .map(str::to_owned)
}

fn query_all(req: &Request, name: &str) -> Vec<String> {
    req.url
        .query_pairs()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn listing(e: &Endpoint, expand: bool, favorited: Value) -> Value {
    let mut entry = json!({
        "endpoint_id": e.id,
        "metadata": {"display_name": e.name, "category": e.category, "description": format!("{} on fal", e.name),
                     "status": "active", "tags": [], "updated_at": "2026-11-01T12:00:00Z", "is_favorited": favorited,
                     "thumbnail_url": "https://fal.media/thumb.png", "model_url": format!("https://fal.run/{}", e.id),
                     "date": "2026-10-01T00:00:00Z", "highlighted": false, "pinned": false, "kind": "inference"},
    });
    if expand {
        entry["openapi"] = e.openapi.clone();
    }
    entry
}

fn models(endpoints: &[Endpoint], req: &Request) -> ResponseTemplate {
    let favorited = if keyed(req).is_some() {
        json!(false)
    } else {
        Value::Null
    };
    let expand = query_all(req, "expand").iter().any(|e| e == "openapi-3.0");
    let ids = query_all(req, "endpoint_id");
    if !ids.is_empty() {
        let found: Vec<Value> = endpoints
            .iter()
            .filter(|e| ids.contains(&e.id))
            .map(|e| listing(e, expand, favorited.clone()))
            .collect();
        return ResponseTemplate::new(200)
            .set_body_json(json!({"models": found, "next_cursor": null, "has_more": false}));
    }
    let q = query_all(req, "q").join(" ").to_lowercase();
    let words: Vec<&str> = q.split_whitespace().collect();
    let hits: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| {
            let text = format!("{} {} {}", e.id, e.name, e.category)
                .to_lowercase()
                .replace('-', " ");
            words.iter().all(|w| text.contains(w))
        })
        .collect();
    let limit: usize = query_all(req, "limit")
        .first()
        .and_then(|l| l.parse().ok())
        .unwrap_or(10)
        .max(1);
    let page: usize = query_all(req, "cursor")
        .first()
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let start = (page - 1) * limit;
    let shown: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(limit)
        .map(|e| listing(e, expand, favorited.clone()))
        .collect();
    let has_more = start + limit < hits.len();
    let next =
        has_more.then(|| base64::engine::general_purpose::STANDARD.encode((page + 1).to_string()));
    ResponseTemplate::new(200)
        .set_body_json(json!({"models": shown, "next_cursor": next, "has_more": has_more}))
}

fn pricing(endpoints: &[Endpoint], req: &Request) -> ResponseTemplate {
    let ids = query_all(req, "endpoint_id");
    if ids.is_empty() {
        return error(400, "validation_error", "Invalid request parameters");
    }
    if keyed(req).is_none() {
        return error(401, "authorization_error", "Authentication required");
    }
    let prices: Vec<Value> = endpoints
        .iter()
        .filter(|e| ids.contains(&e.id))
        .filter_map(|e| {
            let (unit, price) = e.price.clone()?;
            Some(json!({"endpoint_id": e.id, "unit_price": price, "unit": unit, "currency": "USD"}))
        })
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"prices": prices, "next_cursor": null, "has_more": false}))
}

fn billing_events(events: &Mutex<Vec<Value>>, req: &Request) -> ResponseTemplate {
    match keyed(req) {
        None => return error(401, "authorization_error", "Authentication required"),
        Some(key) if key != ADMIN_KEY => return error(403, "authorization_error", "Access denied"),
        Some(_) => {}
    }
    let wanted = query_all(req, "request_id");
    let found: Vec<Value> = events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| wanted.is_empty() || wanted.iter().any(|w| e["request_id"] == w.as_str()))
        .cloned()
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"billing_events": found, "next_cursor": null, "has_more": false}))
}

/// The queue OpenAPI document fal serves for `id` (E.3 shape): the submit path's request body
/// refers to `<Prefix>Input`, the result to `<Prefix>Output`.
#[must_use]
pub fn openapi(id: &str, category: &str, input: Value, output: Value) -> Value {
    let prefix: String = id
        .trim_start_matches("fal-ai/")
        .split(['/', '-', '.', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    let mut schemas = BTreeMap::new();
    schemas.insert(format!("{prefix}Input"), input);
    schemas.insert(format!("{prefix}Output"), output);
    schemas.insert("QueueStatus".into(), json!({"type": "object", "required": ["status", "request_id"],
        "properties": {"status": {"type": "string", "enum": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]}, "request_id": {"type": "string"}}}));
    schemas.insert("ImageSize".into(), json!({"type": "object", "properties": {
        "width": {"type": "integer", "maximum": 14142, "default": 512}, "height": {"type": "integer", "maximum": 14142, "default": 512}}}));
    schemas.insert(
        "File".into(),
        json!({"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}),
    );
    json!({
        "openapi": "3.0.4",
        "info": {"title": format!("Queue OpenAPI for {id}"), "version": "1.0.0",
                 "x-fal-metadata": {"endpointId": id, "category": category, "playgroundUrl": format!("https://fal.ai/models/{id}")}},
        "components": {"securitySchemes": {"apiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization"}},
                       "schemas": schemas},
        "paths": {
            format!("/{id}"): {"post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{prefix}Input")}}}},
                                       "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/QueueStatus"}}}}}}},
            format!("/{id}/requests/{{request_id}}"): {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{prefix}Output")}}}}}}},
        },
        "servers": [{"url": "https://queue.fal.run"}],
        "security": [{"apiKeyAuth": []}],
    })
}

/// An image-to-video endpoint that maps cleanly: a prompt, an image URL, a bounded duration,
/// a resolution, a nullable seed, a safety checker and a bounded step count.
#[must_use]
pub fn image_to_video_schema() -> Value {
    json!({
        "type": "object", "title": "ImageToVideoInput",
        "x-fal-order-properties": ["prompt", "image_url", "negative_prompt", "duration", "resolution", "seed", "num_inference_steps", "enable_safety_checker"],
        "required": ["prompt", "image_url"],
        "properties": {
            "prompt": {"type": "string", "title": "Prompt", "description": "The text prompt to guide the video.", "examples": ["a fox runs"]},
            "image_url": {"type": "string", "title": "Image Url", "description": "URL of the image to animate."},
            "negative_prompt": {"type": "string", "title": "Negative Prompt", "default": "worst quality, blurry"},
            "duration": {"type": "integer", "enum": [6, 8, 10], "title": "Duration", "default": 6, "description": "Seconds of video."},
            "resolution": {"type": "string", "enum": ["720p", "1080p"], "default": "720p"},
            "seed": {"anyOf": [{"type": "integer"}, {"type": "null"}], "title": "Seed"},
            "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 30},
            "enable_safety_checker": {"type": "boolean", "default": true, "description": "If set to true, the safety checker will be enabled."},
        }
    })
}

/// A video output (`{"video": File}`).
#[must_use]
pub fn video_output_schema() -> Value {
    json!({"type": "object", "required": ["video"], "properties": {"video": {"$ref": "#/components/schemas/File"}}})
}

/// Hostile: more input fields than anyone needs.
#[must_use]
pub fn huge_schema() -> Value {
    let properties: serde_json::Map<String, Value> = (0..5000)
        .map(|i| {
            (
                format!("field_{i}"),
                json!({"type": "string", "description": "x".repeat(40)}),
            )
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

/// Hostile: a field nested far deeper than any real schema.
#[must_use]
pub fn deeply_nested_schema() -> Value {
    let mut deep = json!({"type": "string"});
    for _ in 0..60 {
        deep = json!({"type": "array", "items": deep});
    }
    json!({"type": "object", "required": ["prompt"], "properties": {"prompt": {"type": "string"}, "layers": deep}})
}

/// Hostile: the prompt is named like a file URL, so acgs would upload it as media or send it
/// unsanitized.
#[must_use]
pub fn prompt_named_like_url_schema() -> Value {
    json!({"type": "object", "required": ["prompt_url"], "properties": {
        "prompt_url": {"type": "string", "title": "Prompt", "description": "The text prompt describing the image."}}})
}
