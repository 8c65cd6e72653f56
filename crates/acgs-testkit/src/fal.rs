//! A fake fal server following the reference protocol: submit → `202 IN_QUEUE` → `202 IN_PROGRESS`
//! → `200 COMPLETED` → result, with media served by the same server; optionally the SSE status
//! stream; the storage REST API (CDN token, upload, multipart) on the same server.
//!
//! A cancel of a running job answers `202 CANCELLATION_REQUESTED`; from then on, until the next
//! submit, the job's status is `COMPLETED` with an error and its result answers 400 — what users
//! of fal meet when they ask for a cancelled job's result (fal emits no CANCELED status).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wiremock::matchers::{any, method, path, path_regex};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::media::{PNG_1X1, mp4};
use crate::render;

/// The fake's request id.
pub const REQUEST_ID: &str = "80e732af-1f2e-4c3d-9e8f-0123456789ab";

/// How the job ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Images, served by the same server.
    Images,
    /// Images flagged by the NSFW checker.
    Nsfw,
    /// A video (`{"video": File}`).
    Video,
    /// An avatar video with its `duration`.
    Avatar,
    /// A transcript (`text` and `words` with timings).
    Transcript,
    /// `COMPLETED` with an error; the result answers 422 with a validation `detail` array.
    CompletedWithError,
    /// Never finishes (until [`FakeFal::complete_now`]): stays `IN_PROGRESS`.
    KeepRunning,
}

impl Outcome {
    fn fixture(self) -> &'static str {
        match self {
            Self::Nsfw => "fal_result_nsfw.json",
            Self::Video | Self::KeepRunning => "fal_result_video.json",
            Self::Avatar => "fal_result_avatar.json",
            Self::Transcript => "fal_result_transcript.json",
            Self::CompletedWithError => "fal_result_422.json",
            Self::Images => "fal_result_images.json",
        }
    }
}

/// How submit answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitFailure {
    /// `401 {"detail": "No user found for Key ID and Secret"}`.
    BadKey,
    /// `403` exhausted balance.
    ExhaustedBalance,
    /// One `429` with `Retry-After`, then success.
    RateLimitedOnce {
        /// Seconds advised.
        retry_after: u64,
    },
}

/// Builder for [`FakeFal`].
#[derive(Debug, Clone)]
pub struct FakeFalBuilder {
    endpoint: String,
    queued: u64,
    in_progress: u64,
    outcome: Outcome,
    submit_failure: Option<SubmitFailure>,
    submit_delay: Duration,
    token_delay: Duration,
    echo_keys: bool,
    media_redirect: Option<String>,
    sse: bool,
    billable_units: Option<String>,
}

/// A running fake fal server.
#[derive(Debug)]
pub struct FakeFal {
    server: MockServer,
    endpoint: String,
    outcome: Outcome,
    uploads: Arc<Mutex<Vec<Upload>>>,
    cancelled: Cancelled,
}

/// Whether the job was cancelled since it was submitted (a matcher for the cancelled answers).
#[derive(Debug, Clone, Default)]
struct Cancelled(Arc<AtomicBool>);

impl Cancelled {
    fn set(&self, value: bool) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Match for Cancelled {
    fn matches(&self, _: &Request) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One upload the fake CDN received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Bytes received.
    pub bytes: usize,
    /// `X-Fal-Object-Lifecycle`.
    pub lifecycle: Option<String>,
    /// `Authorization` (the CDN token, never the fal key).
    pub authorization: Option<String>,
    /// Path (`/files/upload`, `/files/upload/multipart`, a part, `…/complete`).
    pub path: String,
}

impl FakeFal {
    /// A builder for a fake serving `endpoint` (e.g. `fal-ai/flux/dev`).
    #[must_use]
    pub fn builder(endpoint: &str) -> FakeFalBuilder {
        FakeFalBuilder {
            endpoint: endpoint.to_owned(),
            queued: 1,
            in_progress: 1,
            outcome: Outcome::Images,
            submit_failure: None,
            submit_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            echo_keys: false,
            media_redirect: None,
            sse: false,
            billable_units: None,
        }
    }

    /// The base URL (use as `providers.fal.queue_url` and `rest_url`).
    #[must_use]
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The wiremock server, for extra mocks and request inspection.
    #[must_use]
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// Every request received.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// How many submits reached the server.
    pub async fn submits(&self) -> usize {
        let submit_path = format!("/{}", self.endpoint);
        self.requests()
            .await
            .iter()
            .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == submit_path)
            .count()
    }

    /// Requests to the queue API (submit, status, stream, result, cancel), in order.
    pub async fn queue_requests(&self) -> Vec<String> {
        let root = root_of(&self.endpoint);
        self.requests()
            .await
            .iter()
            .filter(|r| {
                r.url.path() == format!("/{}", self.endpoint)
                    || r.url.path().starts_with(&format!("/{root}/requests/"))
            })
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }

    /// Uploads the fake CDN received.
    #[must_use]
    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Requests nothing in the protocol asked for (answered `599`).
    pub async fn unexpected(&self) -> Vec<String> {
        let root = root_of(&self.endpoint);
        self.requests()
            .await
            .iter()
            .filter(|r| {
                let p = r.url.path();
                !(p == format!("/{}", self.endpoint)
                    || p.starts_with(&format!("/{root}/requests/"))
                    || p.starts_with("/files/")
                    || p.starts_with("/redirect/")
                    || p == "/storage/auth/token")
            })
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect()
    }

    /// Let a job that kept running complete now (status `COMPLETED`, a video result).
    pub async fn complete_now(&self) {
        self.cancelled.set(false);
        let root = root_of(&self.endpoint);
        let completed = render(
            "fal_status_completed.json",
            &[
                ("base", &self.uri()),
                ("root", &root),
                ("request_id", REQUEST_ID),
            ],
        );
        Mock::given(method("GET"))
            .and(path(
                format!("/{root}/requests/{REQUEST_ID}/status").as_str(),
            ))
            .respond_with(json(200, completed))
            .with_priority(1)
            .mount(&self.server)
            .await;
        let result = render(
            self.outcome.fixture(),
            &[
                ("media_base", &self.uri()),
                ("request_id", REQUEST_ID),
                ("prompt", "a prompt"),
            ],
        );
        Mock::given(method("GET"))
            .and(path(format!("/{root}/requests/{REQUEST_ID}").as_str()))
            .respond_with(json(200, result))
            .with_priority(1)
            .mount(&self.server)
            .await;
    }
}

/// `PUT …/cancel`, and what a cancelled job's status and result answer afterwards.
async fn mount_cancel(
    server: &MockServer,
    root: &str,
    fill: &(dyn Fn(&str) -> String + Sync),
    cancelled: &Cancelled,
) {
    let requests = format!("/{root}/requests/{REQUEST_ID}");
    let flag = cancelled.clone();
    let body = render("fal_cancel.json", &[]);
    Mock::given(method("PUT"))
        .and(path(format!("{requests}/cancel").as_str()))
        .respond_with(move |_: &Request| {
            flag.set(true);
            json(202, body.clone())
        })
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{requests}/status").as_str()))
        .and(cancelled.clone())
        .respond_with(json(200, fill("fal_status_completed_cancelled.json")))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(requests.as_str()))
        .and(cancelled.clone())
        .respond_with(json(
            400,
            r#"{"detail":"Request was cancelled"}"#.to_owned(),
        ))
        .with_priority(1)
        .mount(server)
        .await;
}

fn root_of(endpoint: &str) -> String {
    endpoint.split('/').take(2).collect::<Vec<_>>().join("/")
}

/// The `Authorization` header of a request, echoed back when configured (for leak tests).
fn echoed(req: &Request, echo: bool) -> String {
    if !echo {
        return String::new();
    }
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    format!(" (received: {auth})")
}

fn json(status: u16, body: String) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .insert_header("x-fal-request-id", REQUEST_ID)
        .set_body_string(body)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl FakeFalBuilder {
    /// Statuses answered `IN_QUEUE` before `IN_PROGRESS`.
    #[must_use]
    pub fn queued(mut self, n: u64) -> Self {
        self.queued = n;
        self
    }

    /// Statuses answered `IN_PROGRESS` before `COMPLETED`.
    #[must_use]
    pub fn in_progress(mut self, n: u64) -> Self {
        self.in_progress = n;
        self
    }

    /// How the job ends.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Make submit fail.
    #[must_use]
    pub fn submit_failure(mut self, failure: SubmitFailure) -> Self {
        self.submit_failure = Some(failure);
        self
    }

    /// Answer the submit only after `delay` (to catch a process while it sends).
    #[must_use]
    pub fn submit_delay(mut self, delay: Duration) -> Self {
        self.submit_delay = delay;
        self
    }

    /// Answer the CDN token request only after `delay` (to catch a process while it uploads).
    #[must_use]
    pub fn token_delay(mut self, delay: Duration) -> Self {
        self.token_delay = delay;
        self
    }

    /// Echo the received `Authorization` header in every error body (leak tests).
    #[must_use]
    pub fn echo_keys(mut self) -> Self {
        self.echo_keys = true;
        self
    }

    /// Serve result media as a redirect to `base` (another origin) instead of directly.
    #[must_use]
    pub fn media_redirect_to(mut self, base: &str) -> Self {
        self.media_redirect = Some(base.to_owned());
        self
    }

    /// Answer the successful result with `x-fal-billable-units: UNITS` (what the app billed, in
    /// the endpoint's unit, as real fal sets it beside `x-fal-request-id`).
    #[must_use]
    pub fn billable_units(mut self, units: &str) -> Self {
        self.billable_units = Some(units.to_owned());
        self
    }

    /// Serve the SSE status stream (otherwise it answers 599 and clients poll).
    #[must_use]
    pub fn sse(mut self) -> Self {
        self.sse = true;
        self
    }

    /// Start the server.
    pub async fn start(self) -> FakeFal {
        let server = MockServer::start().await;
        let base = server.uri();
        let root = root_of(&self.endpoint);
        let fill = |name: &str| {
            render(
                name,
                &[
                    ("base", &base),
                    ("media_base", &base),
                    ("root", &root),
                    ("request_id", REQUEST_ID),
                    ("prompt", "a prompt"),
                ],
            )
        };
        let cancelled = Cancelled::default();
        self.mount_submit(&server, &fill, &cancelled).await;
        self.mount_status(&server, &root, &fill).await;
        self.mount_result(&server, &root, &fill).await;
        mount_cancel(&server, &root, &fill, &cancelled).await;
        self.mount_media(&server).await;
        let uploads = Arc::new(Mutex::new(Vec::new()));
        self.mount_storage(&server, &fill, &uploads).await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(599)
                    .set_body_string("unexpected request to the fake fal server"),
            )
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        FakeFal {
            server,
            endpoint: self.endpoint,
            outcome: self.outcome,
            uploads,
            cancelled,
        }
    }

    async fn mount_submit(
        &self,
        server: &MockServer,
        fill: &(dyn Fn(&str) -> String + Sync),
        cancelled: &Cancelled,
    ) {
        let submit_path = format!("/{}", self.endpoint);
        let echo = self.echo_keys;
        match self.submit_failure {
            Some(SubmitFailure::BadKey) => {
                let body = render("fal_error_401.json", &[]);
                Mock::given(method("POST"))
                    .and(path(submit_path.as_str()))
                    .respond_with(move |req: &Request| {
                        json(
                            401,
                            body.replace("Secret\"", &format!("Secret{}\"", echoed(req, echo))),
                        )
                    })
                    .mount(server)
                    .await;
                return;
            }
            Some(SubmitFailure::ExhaustedBalance) => {
                let body = render("fal_error_403_balance.json", &[]);
                Mock::given(method("POST"))
                    .and(path(submit_path.as_str()))
                    .respond_with(move |req: &Request| {
                        json(
                            403,
                            body.replace("billing.\"", &format!("billing.{}\"", echoed(req, echo))),
                        )
                    })
                    .mount(server)
                    .await;
                return;
            }
            Some(SubmitFailure::RateLimitedOnce { retry_after }) => {
                Mock::given(method("POST"))
                    .and(path(submit_path.as_str()))
                    .respond_with(move |req: &Request| {
                        json(
                            429,
                            format!("{{\"detail\":\"Too many requests{}\"}}", echoed(req, echo)),
                        )
                        .insert_header("retry-after", retry_after.to_string().as_str())
                    })
                    .up_to_n_times(1)
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
            None => {}
        }
        let accepted = json(200, fill("fal_submit.json")).set_delay(self.submit_delay);
        let fresh = cancelled.clone();
        Mock::given(method("POST"))
            .and(path(submit_path.as_str()))
            .respond_with(move |_: &Request| {
                // A new job: what was cancelled before is not this one.
                fresh.set(false);
                accepted.clone()
            })
            .with_priority(2)
            .mount(server)
            .await;
    }

    async fn mount_status(
        &self,
        server: &MockServer,
        root: &str,
        fill: &(dyn Fn(&str) -> String + Sync),
    ) {
        let status_path = format!("/{root}/requests/{REQUEST_ID}/status");
        let steps = [
            (self.queued, fill("fal_status_in_queue.json")),
            (self.in_progress, fill("fal_status_in_progress.json")),
        ];
        for (priority, (times, body)) in (2u8..).zip(steps) {
            if times > 0 {
                Mock::given(method("GET"))
                    .and(path(status_path.as_str()))
                    .respond_with(json(202, body))
                    .up_to_n_times(times)
                    .with_priority(priority)
                    .mount(server)
                    .await;
            }
        }
        let (code, last) = match self.outcome {
            Outcome::KeepRunning => (202, fill("fal_status_in_progress.json")),
            Outcome::CompletedWithError => (200, fill("fal_status_completed_error.json")),
            _ => (200, fill("fal_status_completed.json")),
        };
        Mock::given(method("GET"))
            .and(path(status_path.as_str()))
            .respond_with(json(code, last.clone()))
            .with_priority(4)
            .mount(server)
            .await;
        if self.sse {
            let mut events = String::new();
            if self.queued > 0 {
                events.push_str(&format!("data: {}\n\n", fill("fal_status_in_queue.json")));
            }
            events.push_str(&format!(
                "data: {}\n\n",
                fill("fal_status_in_progress.json")
            ));
            if self.outcome != Outcome::KeepRunning {
                events.push_str(&format!("data: {last}\n\n"));
            }
            Mock::given(method("GET"))
                .and(path(format!("{status_path}/stream").as_str()))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("content-type", "text/event-stream")
                        .set_body_string(events),
                )
                .with_priority(1)
                .mount(server)
                .await;
        }
    }

    async fn mount_result(
        &self,
        server: &MockServer,
        root: &str,
        fill: &(dyn Fn(&str) -> String + Sync),
    ) {
        let result_path = format!("/{root}/requests/{REQUEST_ID}");
        let echo = self.echo_keys;
        let media_base = self
            .media_redirect
            .as_ref()
            .map(|_| format!("{}/redirect", server.uri()));
        match self.outcome {
            Outcome::CompletedWithError => {
                let body = fill("fal_result_422.json");
                Mock::given(method("GET"))
                    .and(path(result_path.as_str()))
                    .respond_with(move |req: &Request| {
                        json(
                            422,
                            body.replace(
                                "\"input\":\"huge\"",
                                &format!("\"input\":\"huge{}\"", echoed(req, echo)),
                            ),
                        )
                    })
                    .mount(server)
                    .await;
            }
            Outcome::KeepRunning => {}
            outcome => {
                let mut body = fill(outcome.fixture());
                if let Some(redirect_base) = media_base {
                    body = body.replace(
                        &format!("{}/files", server.uri()),
                        &format!("{redirect_base}/files"),
                    );
                }
                let mut answer = json(200, body);
                if let Some(units) = &self.billable_units {
                    answer = answer.insert_header("x-fal-billable-units", units.as_str());
                }
                Mock::given(method("GET"))
                    .and(path(result_path.as_str()))
                    .respond_with(answer)
                    .with_priority(3)
                    .mount(server)
                    .await;
            }
        }
    }

    async fn mount_media(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path_regex(r"^/files/.+\.png$"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "image/png")
                    .set_body_bytes(PNG_1X1),
            )
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/files/.+\.mp4$"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "video/mp4")
                    .set_body_bytes(mp4(5, 4096)),
            )
            .mount(server)
            .await;
        if let Some(target) = &self.media_redirect {
            let target = target.clone();
            Mock::given(method("GET"))
                .and(path_regex(r"^/redirect/files/.+$"))
                .respond_with(move |req: &Request| {
                    let rest = req.url.path().trim_start_matches("/redirect");
                    ResponseTemplate::new(302)
                        .insert_header("location", format!("{target}{rest}").as_str())
                })
                .mount(server)
                .await;
        }
    }

    /// The storage REST API: a CDN token pointing back at this server, single and multipart
    /// uploads, every upload recorded.
    async fn mount_storage(
        &self,
        server: &MockServer,
        fill: &(dyn Fn(&str) -> String + Sync),
        uploads: &Arc<Mutex<Vec<Upload>>>,
    ) {
        Mock::given(method("POST"))
            .and(path("/storage/auth/token"))
            .respond_with(json(200, fill("fal_storage_token.json")).set_delay(self.token_delay))
            .mount(server)
            .await;
        let base = server.uri();
        let record = Arc::clone(uploads);
        Mock::given(path_regex(r"^/files/upload(/multipart)?$"))
            .respond_with(move |req: &Request| {
                let p = req.url.path().to_owned();
                if let Ok(mut list) = record.lock() {
                    list.push(Upload {
                        bytes: req.body.len(),
                        lifecycle: header(req, "x-fal-object-lifecycle"),
                        authorization: header(req, "authorization"),
                        path: p.clone(),
                    });
                }
                let n = record.lock().map(|l| l.len()).unwrap_or(0);
                if p == "/files/upload/multipart" {
                    let body = format!("{{\"access_url\":\"{base}/files/uploaded/big-{n}\",\"uploadId\":\"up-{n}\"}}");
                    return ResponseTemplate::new(200).set_body_string(body);
                }
                ResponseTemplate::new(200).set_body_string(format!("{{\"access_url\":\"{base}/files/uploaded/{n}\"}}"))
            })
            .mount(server)
            .await;
        let record = Arc::clone(uploads);
        Mock::given(path_regex(r"^/files/uploaded/big-[0-9]+/multipart/.+$"))
            .respond_with(move |req: &Request| {
                if let Ok(mut list) = record.lock() {
                    list.push(Upload {
                        bytes: req.body.len(),
                        lifecycle: header(req, "x-fal-object-lifecycle"),
                        authorization: header(req, "authorization"),
                        path: req.url.path().to_owned(),
                    });
                }
                let part = req
                    .url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                ResponseTemplate::new(200)
                    .insert_header("etag", format!("\"etag-{part}\"").as_str())
            })
            .mount(server)
            .await;
    }
}
