//! [`FalProvider`]: the queue protocol behind the [`Provider`] trait.

use std::time::Duration;

use acgs_core::ProviderId;
use acgs_core::callback::JobWakeups;
use acgs_core::config::ProviderUrls;
use acgs_core::provider::{
    CancellationToken, Charge, EventSink, FailureClass, HttpFailure, Provider, ProviderError,
    ProviderResult, Stage,
};
use acgs_core::request::{
    Authorized, CancelOutcome, JOB_HANDLE_SCHEMA, JobHandle, JobRef, LocalInput, Output, RemoteRef,
    Request, Submitted, is_plain_token,
};
use acgs_http::{
    Credential, HttpClient, HttpError, HttpRequest, Method, RetryPolicy, provider_error,
};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::protocol::{Status, SubmitResponse, classify, endpoint_root, parse_output};
use crate::upload::Uploader;

const NAME: &str = "fal";
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(5);
/// The longest wait between polls when fal calls back: the callback wakes the wait.
const MAX_POLL_CALLED_BACK: Duration = Duration::from_secs(30);

/// Takes a job's wait out of the wake-ups when dropped.
struct Forget(JobWakeups, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.forget(&self.1);
    }
}

/// Where fal announces finished jobs, and who waits for the announcements.
#[derive(Debug, Clone)]
struct Webhook {
    url: Url,
    wakeups: JobWakeups,
}

/// The fal.ai provider (queue API).
#[derive(Debug)]
pub struct FalProvider {
    http: HttpClient,
    queue: Url,
    credential: Credential,
    retry: RetryPolicy,
    uploader: Uploader,
    webhook: Option<Webhook>,
}

impl FalProvider {
    /// A provider talking to the configured queue URL with `key` (`Authorization: Key …`), which is
    /// bound to the queue's origin.
    pub fn new(
        http: HttpClient,
        urls: &ProviderUrls,
        key: &SecretString,
    ) -> Result<Self, HttpError> {
        let queue = crate::base_url(urls, "queue_url")?;
        http.check_url(&queue)?;
        let rest = crate::base_url(urls, "rest_url")?;
        http.check_url(&rest)?;
        let credential = Credential::new(&queue, "authorization", "Key ", key)?;
        let uploader = Uploader::new(http.clone(), rest, key, RetryPolicy::default())?;
        Ok(Self {
            http,
            queue,
            credential,
            retry: RetryPolicy::default(),
            uploader,
            webhook: None,
        })
    }

    /// Submit jobs with `?fal_webhook=url`, and wait for them by polling slowly, woken early
    /// through `wakeups` when a verified callback names them (no status stream per job: a
    /// process can hold many jobs). The result is still fetched and checked as ever.
    #[must_use]
    pub fn with_webhook(mut self, url: Url, wakeups: JobWakeups) -> Self {
        self.webhook = Some(Webhook { url, wakeups });
        self
    }

    /// Use another retry policy (tests use short delays).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// `{queue}/{path}`, built from the configured base; `path` segments are checked tokens.
    fn url(&self, path: &str) -> ProviderResult<Url> {
        let base = self.queue.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|_| {
            ProviderError::new(
                FailureClass::Other,
                "provider.bad_request",
                "could not build a fal URL",
                Charge::Release,
            )
        })
    }

    fn job_path(job: &JobHandle) -> ProviderResult<(String, String)> {
        let invalid = || {
            ProviderError::new(
                FailureClass::Other,
                "run.invalid_job",
                "the recorded fal job is malformed",
                Charge::Estimate,
            )
        };
        let root = endpoint_root(&job.endpoint).ok_or_else(invalid)?;
        let id = job.id().ok_or_else(invalid)?;
        Ok((root, id.to_owned()))
    }

    async fn call(&self, request: HttpRequest<'_>) -> ProviderResult<acgs_http::HttpResponse> {
        self.http
            .execute_retrying(&request, &self.retry, &classify)
            .await
            .map_err(|e| provider_error(NAME, e, &classify))
    }

    async fn status(&self, root: &str, id: &str) -> ProviderResult<Status> {
        let url = self.url(&format!("{root}/requests/{id}/status?logs=1"))?;
        let response = self
            .call(HttpRequest::get(url).credential(&self.credential))
            .await?;
        response.json().map_err(|e| bad_response(&e))
    }

    async fn result(&self, root: &str, id: &str) -> ProviderResult<Output> {
        let url = self.url(&format!("{root}/requests/{id}"))?;
        let response = self
            .call(HttpRequest::get(url).credential(&self.credential))
            .await?;
        let body: Value = response.json().map_err(|e| bad_response(&e))?;
        let request_id = response
            .header("x-fal-request-id")
            .map_or_else(|| id.to_owned(), str::to_owned);
        let mut output = parse_output(&body, Some(request_id));
        // What fal billed, in the endpoint's unit (set by the app; absent for GPU-billed
        // endpoints, which then settle at the estimate — never at zero).
        output.usage.billed_units = response
            .header("x-fal-billable-units")
            .and_then(acgs_core::Units::parse);
        Ok(output)
    }

    /// COMPLETED with an error: the details come from the result endpoint.
    async fn completed_with_error(
        &self,
        root: &str,
        id: &str,
        error_type: Option<String>,
    ) -> ProviderError {
        let error_type = error_type
            .filter(|t| is_plain_token(t))
            .unwrap_or_else(|| "unknown".into());
        let released = error_type == "request_timeout" || error_type.starts_with("runner_");
        let mut error = match self.result(root, id).await {
            Err(e) => e,
            Ok(_) => ProviderError::new(
                FailureClass::Other,
                "provider.job_failed",
                String::new(),
                Charge::Estimate,
            ),
        };
        if !matches!(
            error.class,
            FailureClass::Auth | FailureClass::Quota | FailureClass::SafetyBlocked
        ) {
            error.code = "provider.job_failed";
            error.class = FailureClass::Rejected;
        }
        error.message = format!("the fal job failed ({error_type})");
        if released {
            error.charge = Charge::Release;
        }
        error
    }

    /// Follow the job to its end: the SSE status stream first (one request however long the job
    /// runs), polling with backoff when the stream is unavailable or breaks off.
    async fn follow(&self, job: &JobHandle, events: &EventSink) -> ProviderResult<Output> {
        let (root, id) = Self::job_path(job)?;
        let mut logs_seen = 0;
        let streamed = match &self.webhook {
            Some(_) => None,
            None => self.stream(&root, &id, events, &mut logs_seen).await,
        };
        let completion = match streamed {
            Some(done) => done,
            None => self.poll(&root, &id, events, &mut logs_seen).await?,
        };
        if completion.failed {
            return Err(self
                .completed_with_error(&root, &id, completion.error_type)
                .await);
        }
        events.report(Stage::Running, "completed", None, None);
        self.result(&root, &id).await
    }

    /// The SSE status stream; `None` when it cannot be used (the caller then polls).
    async fn stream(
        &self,
        root: &str,
        id: &str,
        events: &EventSink,
        logs_seen: &mut usize,
    ) -> Option<Completion> {
        let url = self
            .url(&format!("{root}/requests/{id}/status/stream?logs=1"))
            .ok()?;
        let request = HttpRequest::get(url)
            .credential(&self.credential)
            .header("accept", "text/event-stream");
        let response = match self.http.open(&request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(
                    code = acgs_core::UserFacing::code(&e),
                    "status stream unavailable; polling"
                );
                return None;
            }
        };
        let idle = self.http.policy().read_idle_timeout;
        let mut events_in = acgs_http::sse::Events::new(response);
        loop {
            let data = match tokio::time::timeout(idle, events_in.next()).await {
                Ok(Some(Ok(data))) => data,
                _ => return None,
            };
            let Ok(status) = serde_json::from_str::<Status>(&data) else {
                continue;
            };
            if let Some(done) = report(status, events, logs_seen) {
                return Some(done);
            }
        }
    }

    /// Poll the status with backoff until the job completes.
    async fn poll(
        &self,
        root: &str,
        id: &str,
        events: &EventSink,
        logs_seen: &mut usize,
    ) -> ProviderResult<Completion> {
        let mut delay = FIRST_POLL;
        let (waiter, max) = match &self.webhook {
            Some(hook) => (Some(hook.wakeups.waiter(id)), MAX_POLL_CALLED_BACK),
            None => (None, MAX_POLL),
        };
        // Forgotten however the wait ends (a cancel or a deadline drops it mid-way).
        let _forget = self
            .webhook
            .as_ref()
            .map(|hook| Forget(hook.wakeups.clone(), id.to_owned()));
        loop {
            if let Some(done) = report(self.status(root, id).await?, events, logs_seen) {
                return Ok(done);
            }
            match &waiter {
                Some(waiter) => tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = waiter.notified() => {}
                },
                None => tokio::time::sleep(delay).await,
            }
            delay = (delay * 3 / 2).min(max);
        }
    }
}

/// How a job ended, from its COMPLETED status.
struct Completion {
    failed: bool,
    error_type: Option<String>,
}

/// Turn a status into progress events; the completion once the job is done.
fn report(status: Status, events: &EventSink, logs_seen: &mut usize) -> Option<Completion> {
    match status {
        Status::InQueue { queue_position } => {
            events.report(Stage::Queued, "in_queue", queue_position, None);
            None
        }
        Status::InProgress { logs } => {
            report_logs(events, logs.as_deref(), logs_seen);
            None
        }
        Status::Completed {
            error,
            error_type,
            logs,
        } => {
            report_logs(events, logs.as_deref(), logs_seen);
            Some(Completion {
                failed: error.is_some() || error_type.is_some(),
                error_type,
            })
        }
    }
}

fn report_logs(events: &EventSink, logs: Option<&[crate::protocol::LogLine]>, seen: &mut usize) {
    let logs = logs.unwrap_or_default();
    if logs.len() <= *seen {
        if *seen == 0 {
            events.report(Stage::Running, "in_progress", None, None);
        }
        return;
    }
    for line in &logs[*seen..] {
        events.report(
            Stage::Running,
            "in_progress",
            None,
            Some(line.message.clone()),
        );
    }
    *seen = logs.len();
}

fn bad_response(e: &HttpError) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.bad_response",
        "fal answered with something that is not the expected JSON",
        Charge::Estimate,
    )
    .with_detail(e.to_string())
}

fn interrupted() -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "run.interrupted",
        "interrupted",
        Charge::Estimate,
    )
}

#[async_trait::async_trait]
impl Provider for FalProvider {
    fn id(&self) -> ProviderId {
        ProviderId::Fal
    }

    async fn preflight(&self, _request: &Request) -> ProviderResult<Vec<String>> {
        Ok(Vec::new())
    }

    async fn submit(&self, request: &Authorized<Request>) -> ProviderResult<Submitted> {
        let req = request.get();
        let model = &req.model;
        if endpoint_root(&model.endpoint).is_none() {
            return Err(ProviderError::new(
                FailureClass::Other,
                "model.invalid_endpoint",
                format!("`{}` is not a fal endpoint id", model.endpoint),
                Charge::Release,
            ));
        }
        let mut url = self.url(&model.endpoint)?;
        if let Some(hook) = &self.webhook {
            url.query_pairs_mut()
                .append_pair("fal_webhook", hook.url.as_str());
        }
        let http = HttpRequest::new(Method::Post, url)
            .credential(&self.credential)
            .json(Value::Object(req.params.clone()))
            .submit();
        let response = self.call(http).await?;
        let submitted: SubmitResponse = response.json().map_err(|e| bad_response(&e))?;
        if !is_plain_token(&submitted.request_id) {
            return Err(bad_response(&HttpError::Decode {
                target: acgs_http::target_of(&self.queue),
                detail: "the request id is not a plain token".into(),
            }));
        }
        Ok(Submitted::Pending(JobHandle {
            schema_version: JOB_HANDLE_SCHEMA,
            provider: ProviderId::Fal,
            model: model.key.clone(),
            endpoint: model.endpoint.clone(),
            job: JobRef::Queue {
                request_id: submitted.request_id,
            },
            submitted_at: jiff::Timestamp::now(),
        }))
    }

    async fn wait(
        &self,
        job: &JobHandle,
        events: &EventSink,
        cancel: CancellationToken,
    ) -> ProviderResult<Output> {
        tokio::select! {
            result = self.follow(job, events) => result,
            () = cancel.cancelled() => Err(interrupted()),
        }
    }

    async fn cancel(&self, job: &JobHandle) -> ProviderResult<CancelOutcome> {
        let (root, id) = Self::job_path(job)?;
        let url = self.url(&format!("{root}/requests/{id}/cancel"))?;
        let request = HttpRequest::new(Method::Put, url).credential(&self.credential);
        match self.http.execute(&request).await {
            Ok(response) => {
                let body: Value = response.json().unwrap_or(Value::Null);
                Ok(match body.get("status").and_then(Value::as_str) {
                    Some("CANCELLATION_REQUESTED") => CancelOutcome::Requested,
                    Some("ALREADY_COMPLETED") => CancelOutcome::AlreadyCompleted,
                    Some("NOT_FOUND") => CancelOutcome::NotFound,
                    _ => CancelOutcome::Cancelled,
                })
            }
            Err(HttpError::Status { failure, .. }) => Ok(cancel_failure(&failure)),
            Err(e) => Err(provider_error(NAME, e, &classify)),
        }
    }

    async fn upload(&self, input: LocalInput) -> ProviderResult<RemoteRef> {
        self.uploader.upload(&input).await
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

fn cancel_failure(failure: &HttpFailure) -> CancelOutcome {
    match failure.status {
        400 if failure.body.contains("ALREADY_COMPLETED") => CancelOutcome::AlreadyCompleted,
        404 => CancelOutcome::NotFound,
        _ => CancelOutcome::Requested,
    }
}
