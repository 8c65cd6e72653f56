//! [`GeminiProvider`]: `generateContent` (answered at once) and Veo's long-running operations
//! behind the [`Provider`] trait.

use std::sync::Mutex;
use std::time::Duration;

use acgs_core::ProviderId;
use acgs_core::config::ProviderUrls;
use acgs_core::provider::{
    CancellationToken, Charge, EventSink, FailureClass, HttpFailure, Provider, ProviderError,
    ProviderResult, Stage,
};
use acgs_core::request::{
    Authorized, CancelOutcome, JOB_HANDLE_SCHEMA, JobHandle, JobRef, LocalInput, Output, RemoteRef,
    Request, Submitted, is_plain_token,
};
use acgs_core::task::{MediaKind, TaskKind};
use acgs_http::{
    Credential, HttpClient, HttpError, HttpRequest, Method, RetryPolicy, provider_error,
};
use base64::Engine as _;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::files::Files;
use crate::protocol::{
    FileTypes, Operation, chunk_text, classify, generate_content_body, merge_chunks,
    parse_generate, parse_operation, refine, veo_body,
};

const NAME: &str = "Gemini";
/// The most a streamed answer may hold in all (the cap of an answer given at once).
const STREAM_CAP: usize = 64 * 1024 * 1024;
/// Images up to this size go inline; larger ones, and all video and audio, use the Files API.
pub const INLINE_MAX: u64 = 14 * 1024 * 1024;
const FIRST_POLL: Duration = Duration::from_secs(2);
const MAX_POLL: Duration = Duration::from_secs(10);

/// The Gemini API provider (key in `x-goog-api-key`, bound to the base origin).
#[derive(Debug)]
pub struct GeminiProvider {
    http: HttpClient,
    base: Url,
    credential: Credential,
    retry: RetryPolicy,
    inline_max: u64,
    first_poll: Duration,
    files: Mutex<FileTypes>,
}

impl GeminiProvider {
    /// A provider talking to the configured base URL with `key`.
    pub fn new(
        http: HttpClient,
        urls: &ProviderUrls,
        key: &SecretString,
    ) -> Result<Self, HttpError> {
        let base = urls
            .url("base_url")
            .and_then(|u| Url::parse(u.trim_end_matches('/')).ok())
            .ok_or_else(|| HttpError::Setup("providers.gemini.base_url is not a URL".into()))?;
        http.check_url(&base)?;
        let credential = Credential::new(&base, "x-goog-api-key", "", key)?;
        Ok(Self {
            http,
            base,
            credential,
            retry: RetryPolicy::default(),
            inline_max: INLINE_MAX,
            first_poll: FIRST_POLL,
            files: Mutex::new(FileTypes::new()),
        })
    }

    /// Use another retry policy (tests use short delays).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Send images above `bytes` through the Files API (tests use a small limit).
    #[must_use]
    pub fn with_inline_max(mut self, bytes: u64) -> Self {
        self.inline_max = bytes;
        self
    }

    /// Poll operations first after `delay` (tests use a short one).
    #[must_use]
    pub fn with_first_poll(mut self, delay: Duration) -> Self {
        self.first_poll = delay;
        self
    }

    fn url(&self, path: &str) -> ProviderResult<Url> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|_| {
            ProviderError::new(
                FailureClass::Other,
                "provider.bad_request",
                "could not build a Gemini URL",
                Charge::Release,
            )
        })
    }

    /// One cheap authenticated call (`GET /v1beta/models?pageSize=1`): whether the key is
    /// accepted, without spending anything.
    pub async fn check_key(&self) -> ProviderResult<()> {
        let url = self.url("v1beta/models?pageSize=1")?;
        self.call(HttpRequest::get(url).credential(&self.credential))
            .await
            .map(|_| ())
    }

    fn files(&self) -> Files<'_> {
        Files {
            http: &self.http,
            base: &self.base,
            credential: &self.credential,
            retry: &self.retry,
        }
    }

    async fn call(&self, request: HttpRequest<'_>) -> ProviderResult<acgs_http::HttpResponse> {
        self.http
            .execute_retrying(&request, &self.retry, &classify)
            .await
            .map_err(|e| {
                let status = e.failure().map(|f| f.status);
                refine(provider_error(NAME, e, &classify), status)
            })
    }

    fn model_path(endpoint: &str) -> ProviderResult<&str> {
        if is_plain_token(endpoint) && !endpoint.contains('/') {
            Ok(endpoint)
        } else {
            Err(ProviderError::new(
                FailureClass::Other,
                "model.invalid_endpoint",
                format!("`{endpoint}` is not a Gemini model id"),
                Charge::Release,
            ))
        }
    }

    async fn generate(&self, request: &Request) -> ProviderResult<Output> {
        let model = &request.model;
        let body = {
            let files = self.files.lock().map_err(|_| poisoned())?;
            generate_content_body(model, &request.params, request.system.as_deref(), &files)?
        };
        let json_text = request
            .params
            .get("response_mime_type")
            .and_then(Value::as_str)
            == Some("application/json")
            || request.params.contains_key("max_items");
        if let Some(events) = request
            .text_events
            .as_ref()
            .filter(|_| model.task == TaskKind::TextGeneration)
        {
            let merged = self.stream_generate(&model.endpoint, body, events).await?;
            return Ok(parse_generate(&merged, json_text));
        }
        let url = self.url(&format!(
            "v1beta/models/{}:generateContent",
            Self::model_path(&model.endpoint)?
        ))?;
        let response = self
            .call(
                HttpRequest::new(Method::Post, url)
                    .credential(&self.credential)
                    .json(body)
                    .cap(acgs_http::JSON_BODY_CAP.max(64 * 1024 * 1024))
                    .submit(),
            )
            .await?;
        let body: Value = response.json().map_err(|e| bad_response(&e))?;
        Ok(parse_generate(&body, json_text))
    }

    /// `streamGenerateContent?alt=sse`: each chunk's text reported to `events` (status `text`)
    /// as it arrives, then all chunks merged into one answer ([`merge_chunks`]). The events are
    /// capped each, and the whole answer like a `generateContent` body.
    async fn stream_generate(
        &self,
        endpoint: &str,
        body: Value,
        events: &EventSink,
    ) -> ProviderResult<Value> {
        let url = self.url(&format!(
            "v1beta/models/{}:streamGenerateContent?alt=sse",
            Self::model_path(endpoint)?
        ))?;
        let request = HttpRequest::new(Method::Post, url)
            .credential(&self.credential)
            .json(body)
            .submit();
        let stream = self.http.open(&request).await.map_err(|e| {
            let status = e.failure().map(|f| f.status);
            refine(provider_error(NAME, e, &classify), status)
        })?;
        let mut reader = acgs_http::sse::Events::new(stream);
        let mut chunks = Vec::new();
        let mut total = 0usize;
        while let Some(data) = reader.next().await {
            let data = data.map_err(|()| broken_stream())?;
            total += data.len();
            if total > STREAM_CAP {
                return Err(broken_stream());
            }
            let chunk: Value = serde_json::from_str(&data).map_err(|e| bad_response(&e))?;
            if chunk.get("error").is_some() {
                return Err(broken_stream());
            }
            let text = chunk_text(&chunk);
            if !text.is_empty() {
                events.report(Stage::Running, "text", None, Some(text));
            }
            chunks.push(chunk);
        }
        // A stream ends with a finish reason or a block; one without either broke off (Gemini
        // sends a mid-stream error as bare JSON outside any `data:` line).
        let ended = chunks.iter().any(|c| {
            c.pointer("/candidates/0/finishReason").is_some()
                || c.pointer("/promptFeedback/blockReason").is_some()
        });
        if !ended {
            return Err(broken_stream());
        }
        Ok(merge_chunks(&chunks))
    }

    async fn start_video(&self, request: &Request) -> ProviderResult<JobHandle> {
        let model = &request.model;
        let url = self.url(&format!(
            "v1beta/models/{}:predictLongRunning",
            Self::model_path(&model.endpoint)?
        ))?;
        let response = self
            .call(
                HttpRequest::new(Method::Post, url)
                    .credential(&self.credential)
                    .json(veo_body(&request.params)?)
                    .submit(),
            )
            .await?;
        let body: Value = response.json().map_err(|e| bad_response(&e))?;
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| is_plain_token(n) && n.starts_with("models/"))
            .ok_or_else(|| {
                bad_response(&HttpError::Decode {
                    target: acgs_http::target_of(&self.base),
                    detail: "the operation name is not a plain `models/…` token".into(),
                })
            })?;
        Ok(JobHandle {
            schema_version: JOB_HANDLE_SCHEMA,
            provider: ProviderId::Gemini,
            model: model.key.clone(),
            endpoint: model.endpoint.clone(),
            job: JobRef::Operation {
                operation_name: name.to_owned(),
            },
            submitted_at: jiff::Timestamp::now(),
        })
    }

    /// Poll the operation with backoff until it is done.
    async fn follow(&self, job: &JobHandle, events: &EventSink) -> ProviderResult<Output> {
        let name = match (&job.job, job.id()) {
            (JobRef::Operation { .. }, Some(name)) if name.starts_with("models/") => name,
            _ => {
                return Err(ProviderError::new(
                    FailureClass::Other,
                    "run.invalid_job",
                    "the recorded Veo operation is malformed",
                    Charge::Estimate,
                ));
            }
        };
        let url = self.url(&format!("v1beta/{name}"))?;
        let mut delay = self.first_poll;
        loop {
            let response = self
                .call(HttpRequest::get(url.clone()).credential(&self.credential))
                .await?;
            let body: Value = response.json().map_err(|e| bad_response(&e))?;
            match parse_operation(&body) {
                Operation::Running => events.report(Stage::Running, "in_progress", None, None),
                Operation::Done(output) => {
                    events.report(Stage::Running, "completed", None, None);
                    return Ok(output);
                }
                Operation::Failed(error) => return Err(error),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(MAX_POLL);
        }
    }

    fn inline(input: &LocalInput) -> ProviderResult<RemoteRef> {
        let data = input
            .read_at(0, usize::try_from(input.size).unwrap_or(usize::MAX))
            .map_err(|e| upload_failed(&format!("reading the input failed: {}", e.kind())))?;
        if data.len() as u64 != input.size {
            return Err(upload_failed("the input file changed while it was read"));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&data);
        Ok(RemoteRef {
            url: format!("data:{};base64,{encoded}", input.content_type.mime()),
            delete_after_run: None,
        })
    }
}

fn poisoned() -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.internal",
        "an earlier upload failed mid-way",
        Charge::Release,
    )
}

fn upload_failed(message: &str) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.upload_failed",
        message,
        Charge::Release,
    )
}

/// A streamed answer that broke off, or whose event or whole exceeded its cap: it was sent and
/// may be billed, so it settles at the estimate.
fn broken_stream() -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.bad_response",
        "Gemini's streamed answer broke off or was larger than acgs accepts",
        Charge::Estimate,
    )
}

fn bad_response(e: &impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.bad_response",
        "Gemini answered with something that is not the expected JSON",
        Charge::Estimate,
    )
    .with_detail(e.to_string())
}

#[async_trait::async_trait]
impl Provider for GeminiProvider {
    fn id(&self) -> ProviderId {
        ProviderId::Gemini
    }

    async fn preflight(&self, _request: &Request) -> ProviderResult<Vec<String>> {
        Ok(Vec::new())
    }

    async fn submit(&self, request: &Authorized<Request>) -> ProviderResult<Submitted> {
        let req = request.get();
        if matches!(
            req.model.task,
            TaskKind::TextToVideo | TaskKind::ImageToVideo
        ) {
            Ok(Submitted::Pending(self.start_video(req).await?))
        } else {
            Ok(Submitted::Done(self.generate(req).await?))
        }
    }

    async fn wait(
        &self,
        job: &JobHandle,
        events: &EventSink,
        cancel: CancellationToken,
    ) -> ProviderResult<Output> {
        tokio::select! {
            result = self.follow(job, events) => result,
            () = cancel.cancelled() => Err(ProviderError::new(
                FailureClass::Other,
                "run.interrupted",
                "interrupted",
                Charge::Estimate,
            )),
        }
    }

    async fn cancel(&self, _job: &JobHandle) -> ProviderResult<CancelOutcome> {
        Ok(CancelOutcome::Unsupported)
    }

    async fn upload(&self, input: LocalInput) -> ProviderResult<RemoteRef> {
        let kind = input.content_type.media_kind();
        if kind == MediaKind::Image && input.size <= self.inline_max {
            return Self::inline(&input);
        }
        let file = self.files().upload(&input).await?;
        self.files
            .lock()
            .map_err(|_| poisoned())?
            .insert(file.uri.clone(), file.mime_type.clone());
        Ok(RemoteRef {
            url: file.uri,
            delete_after_run: Some(file.name),
        })
    }

    async fn delete_upload(&self, name: &str) -> ProviderResult<()> {
        self.files().delete(name).await?;
        if let Ok(mut files) = self.files.lock() {
            files.retain(|uri, _| !uri.ends_with(&format!("/{name}")));
        }
        Ok(())
    }

    async fn download(
        &self,
        url: &str,
        sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        cap: u64,
    ) -> ProviderResult<u64> {
        self.http
            .download_result(NAME, url, &self.credential, sink, cap, &classify)
            .await
    }

    fn classify(&self, failure: &HttpFailure) -> FailureClass {
        classify(failure)
    }
}
