//! The HTTP API, version 1: every route but health and the OpenAPI document needs a bearer
//! token, and a user sees only their own jobs and spend. Requests become engine requests here
//! and nowhere else; estimates come from the engine's plan, nothing is reserved at the door.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use acgs_core::Usd;
use acgs_engine::GenerationRequest;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::error::ServerError;
use crate::records::Records;
use crate::store::{Job, JobState, User};

/// The largest request body accepted (a job is a few fields of text).
pub const BODY_LIMIT: usize = 256 * 1024;
/// How long a request body may take to arrive.
pub(crate) const BODY_TIME: Duration = Duration::from_secs(30);
/// The most input files one job may name.
const MAX_INPUTS: usize = 16;
/// The most tags one job may carry.
const MAX_TAGS: usize = 8;
/// How often an event stream looks at its job.
const EVENT_POLL: Duration = Duration::from_millis(200);

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The router: health and the OpenAPI document open, the rest behind the bearer token.
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    let private = axum::Router::new()
        .route("/v1/jobs", post(create_job))
        .route("/v1/jobs/{id}", get(show_job).delete(cancel_job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/jobs/{id}/outputs/{name}", get(output))
        .route(
            "/v1/files",
            post(crate::files::upload).layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(shared.max_upload)
                    .unwrap_or(usize::MAX)
                    .saturating_add(64 * 1024),
            )),
        )
        .route("/v1/files/{id}", get(crate::files::download))
        .route(
            "/v1/pipelines",
            post(crate::pipelines::create).layer(axum::extract::DefaultBodyLimit::max(
                crate::pipelines::BODY_LIMIT,
            )),
        )
        .route(
            "/v1/estimate",
            post(estimate).layer(axum::extract::DefaultBodyLimit::max(
                crate::pipelines::BODY_LIMIT,
            )),
        )
        .route("/v1/spend", get(spend))
        .route("/v1/callback-secret", get(callback_secret))
        .merge(crate::admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            authenticate,
        ));
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(crate::metrics::render))
        .route("/v1/webhooks/fal", post(fal_webhook))
        .merge(private)
        .layer(axum::middleware::from_fn(request_id))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// The user of a request, put there by [`authenticate`].
#[derive(Clone)]
struct Authenticated(User);

async fn authenticate(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return ServerError::Unauthorized.into_response();
    };
    let user = match shared.records.authenticate(presented).await {
        Ok(Some(user)) => user,
        Err(e) => return e.into_response(),
        Ok(None) => return ServerError::Unauthorized.into_response(),
    };
    if let Err(wait) = shared.rates.take(&user.name, std::time::Instant::now()) {
        let mut refused = ServerError::RateLimited(wait.as_secs().max(1)).into_response();
        refused.extensions_mut().insert(Authenticated(user));
        return refused;
    }
    request.extensions_mut().insert(Authenticated(user.clone()));
    let mut response = next.run(request).await;
    // For the request log: who it was.
    response.extensions_mut().insert(Authenticated(user));
    response
}

pub(crate) fn user_of(request_extensions: &axum::http::Extensions) -> Result<User, ServerError> {
    request_extensions
        .get::<Authenticated>()
        .map(|a| a.0.clone())
        .ok_or(ServerError::Unauthorized)
}

/// A job or estimate request: a model, its texts and parameters, and the most the caller will pay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobBody {
    model: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    negative_prompt: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    max_cost_usd: Option<String>,
    /// Input files by the option or step key that takes them (`image`, `video`, `audio`,
    /// `images`): ids of the caller's uploads, one or a list.
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
    /// Where to post the job's final state, signed with the owner's callback secret.
    #[serde(default)]
    callback_url: Option<String>,
    /// Budgets the job also counts against (projects, teams), each set by an admin.
    #[serde(default)]
    tags: Vec<String>,
}

impl JobBody {
    fn parse(body: &[u8]) -> Result<Self, ServerError> {
        serde_json::from_slice(body).map_err(|e| ServerError::BadRequest(format!("the body: {e}")))
    }

    /// The tags, checked (see [`checked_tags`]).
    fn tags(&self) -> Result<Vec<String>, ServerError> {
        checked_tags(&self.tags)
    }

    fn max_cost(&self) -> Result<Option<Usd>, ServerError> {
        parse_max_cost(self.max_cost_usd.as_deref())
    }

    /// The engine request: texts by flag, parameters as the command line gives them, inputs
    /// as the paths of `user`'s uploads.
    pub(crate) async fn request(
        &self,
        records: &Records,
        user: &str,
    ) -> Result<GenerationRequest, ServerError> {
        let mut inputs = Vec::new();
        let named: usize = self
            .inputs
            .values()
            .map(|v| v.as_array().map_or(1, Vec::len))
            .sum();
        if named > MAX_INPUTS {
            return Err(ServerError::BadRequest(format!(
                "a job takes at most {MAX_INPUTS} input files"
            )));
        }
        for (flag, ids) in &self.inputs {
            let ids: Vec<&Value> = match ids {
                Value::Array(list) => list.iter().collect(),
                one => vec![one],
            };
            for id in ids {
                let id = id.as_str().unwrap_or_default();
                let upload = records.upload(user, id).await?.ok_or_else(|| {
                    let shown: String = id.chars().take(40).collect();
                    ServerError::BadRequest(format!("inputs.{flag}: no file of yours is `{shown}`"))
                })?;
                inputs.push((flag.clone(), upload.path));
            }
        }
        let texts = [
            ("prompt", &self.prompt),
            ("negative_prompt", &self.negative_prompt),
            ("text", &self.text),
        ]
        .into_iter()
        .filter_map(|(flag, t)| Some((flag.to_owned(), t.clone()?)))
        .collect();
        let params = self
            .params
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect();
        Ok(GenerationRequest {
            model: self.model.clone(),
            texts,
            params,
            count: self.n,
            inputs,
            ..GenerationRequest::default()
        })
    }
}

/// `given` tags, checked: at most 8, each a plain name, none twice.
pub(crate) fn checked_tags(given: &[String]) -> Result<Vec<String>, ServerError> {
    let mut tags = given.to_vec();
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS || tags.len() < given.len() {
        return Err(ServerError::BadRequest(format!(
            "tags: at most {MAX_TAGS}, none twice"
        )));
    }
    for tag in &tags {
        crate::store::LimitScope::parse(&format!("tag:{tag}"))?;
    }
    Ok(tags)
}

/// A job's `max_cost_usd`, read.
pub(crate) fn parse_max_cost(given: Option<&str>) -> Result<Option<Usd>, ServerError> {
    given
        .map(|m| Usd::parse(m).map_err(|e| ServerError::BadRequest(format!("max_cost_usd: {e}"))))
        .transpose()
}

/// The stored form of an accepted job, which a worker turns back into a request for `user`.
pub(crate) async fn stored_request(
    records: &Records,
    user: &str,
    stored: &str,
) -> Result<Stored, ServerError> {
    if let Some(pipeline) = crate::pipelines::StoredPipeline::parse(stored) {
        return pipeline.into_stored();
    }
    let body = JobBody::parse(stored.as_bytes())?;
    Ok(Stored {
        work: Work::Single(body.request(records, user).await?),
        max: body.max_cost()?,
        tags: body.tags()?,
    })
}

/// An accepted job as a worker runs it.
pub(crate) struct Stored {
    /// What to run.
    pub work: Work,
    /// The job's ceiling.
    pub max: Option<Usd>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// A job's work: one generation or a pipeline.
pub(crate) enum Work {
    /// One request through the guarded path.
    Single(GenerationRequest),
    /// A pipeline file kept in its owner's folder, with its inputs.
    Pipeline {
        /// The file.
        path: std::path::PathBuf,
        /// Its inputs, uploads already turned into their paths.
        inputs: BTreeMap<String, String>,
    },
}

/// The callback URL a stored job or pipeline names, if any.
pub(crate) fn stored_callback(stored: &str) -> Option<String> {
    let stored: Value = serde_json::from_str(stored).ok()?;
    stored.get("callback_url")?.as_str().map(str::to_owned)
}

/// Plan `body` for `user` (stages 1–5: validation, the guard, the price), nothing reserved; a
/// refusal is audited with the user, and a worst case above the job's ceiling is refused here.
async fn plan(
    shared: &Shared,
    user: &User,
    body: &JobBody,
) -> Result<acgs_engine::Plan, ServerError> {
    let max = body.max_cost()?;
    let scopes = shared.scopes(user, &body.tags()?).await?;
    let suite = shared
        .suite
        .for_caller(shared.caller(user, scopes, max, None));
    let request = body.request(&shared.records, &user.name).await?;
    let plan = suite.plan(&request).map_err(|e| {
        suite.audit_refusal("serve.job", acgs_core::UserFacing::code(&e));
        ServerError::refused(&e)
    })?;
    if let Some(refused) = above_ceiling(plan.quote.amount, max) {
        suite.audit_refusal("serve.job", acgs_core::UserFacing::code(&refused));
        return Err(refused);
    }
    Ok(plan)
}

/// The refusal of a worst case above the job's `max_cost_usd`, if it is.
pub(crate) fn above_ceiling(estimate: Usd, max: Option<Usd>) -> Option<ServerError> {
    let max = max.filter(|max| estimate > *max)?;
    Some(ServerError::Refused {
        code: "budget.max_cost_below_estimate",
        kind: acgs_core::ErrorKind::Money,
        message: format!("its worst case is ${estimate}, above max_cost_usd ${max}"),
    })
}

/// What `caller`'s scopes count now, against their limits.
pub(crate) async fn spend_of(
    shared: &Shared,
    caller: acgs_engine::Caller,
) -> Result<acgs_engine::SpendNow, ServerError> {
    shared
        .suite
        .for_caller(caller)
        .spend_now()
        .await
        .map_err(|e| ServerError::refused(&e))
}

/// What the door says to a new job or pipeline.
pub(crate) enum Door {
    /// Its idempotency key already made this job: answer with it, never a second one.
    Made(Job),
    /// Admit it, with this idempotency key.
    Open(Option<String>),
}

/// The checks every new job passes before its body is read: its idempotency key (a key used
/// before answers with its job) and the user's open jobs.
pub(crate) async fn door(
    shared: &Shared,
    user: &User,
    headers: &HeaderMap,
) -> Result<Door, ServerError> {
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    ServerError::BadRequest("Idempotency-Key: 1 to 200 visible characters".into())
                })
        })
        .transpose()?
        .map(str::to_owned);
    // A key already used answers with its job, whatever the body: never a second job.
    if let Some(key) = &key
        && let Some(job) = shared.records.job_by_key(&user.name, key).await?
    {
        return Ok(Door::Made(job));
    }
    let open = shared.records.open_jobs(&user.name).await?;
    if open >= crate::store::MAX_OPEN_JOBS {
        return Err(ServerError::TooManyJobs(open));
    }
    Ok(Door::Open(key))
}

/// A callback URL a job names, checked against the callback client's address policy.
pub(crate) fn check_callback(shared: &Shared, url: Option<&str>) -> Result<(), ServerError> {
    if let Some(url) = url {
        let client = shared.callbacks.as_ref().ok_or_else(|| {
            ServerError::BadRequest("callback_url: this service sends no callbacks".into())
        })?;
        crate::callbacks::check(client, url)?;
    }
    Ok(())
}

/// Queue `stored` for `user` at `estimate` and wake a worker: the `202` answer.
pub(crate) async fn enqueue(
    shared: &Shared,
    user: &User,
    key: Option<&str>,
    stored: &str,
    estimate: Usd,
) -> Result<Response, ServerError> {
    let (job, _new) = shared
        .records
        .enqueue(&user.name, key, stored, estimate)
        .await?;
    shared.wake.notify_one();
    Ok(json(StatusCode::ACCEPTED, &job_json(&job)))
}

async fn create_job(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let key = match door(&shared, &user, &headers).await? {
        Door::Made(job) => return Ok(json(StatusCode::ACCEPTED, &job_json(&job))),
        Door::Open(key) => key,
    };
    let bytes = body_bytes(request, BODY_LIMIT).await?;
    let body = JobBody::parse(&bytes)?;
    let plan = plan(&shared, &user, &body).await?;
    check_callback(&shared, body.callback_url.as_deref())?;
    let stored = String::from_utf8_lossy(&bytes);
    enqueue(&shared, &user, key.as_deref(), &stored, plan.quote.amount).await
}

/// The body of `request` as `T` (an empty body as `T`'s default form, `{}`).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request,
    limit: usize,
) -> Result<T, ServerError> {
    let bytes = body_bytes(request, limit).await?;
    let text: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    serde_json::from_slice(text).map_err(|e| ServerError::BadRequest(format!("the body: {e}")))
}

/// The whole body, read within [`BODY_TIME`]: a client that sends it slower is answered `408`
/// rather than holding a connection and a task.
async fn body_bytes(request: Request, limit: usize) -> Result<Bytes, ServerError> {
    let read = axum::body::to_bytes(request.into_body(), limit);
    match tokio::time::timeout(BODY_TIME, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ServerError::TooLarge(limit)),
        Err(_) => Err(ServerError::TooSlow(BODY_TIME.as_secs())),
    }
}

async fn estimate(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let bytes = body_bytes(request, crate::pipelines::BODY_LIMIT).await?;
    // A pipeline is priced whole; anything else is one request.
    let is_pipeline = serde_json::from_slice::<serde_json::Map<String, Value>>(&bytes)
        .is_ok_and(|m| m.contains_key("pipeline"));
    if is_pipeline {
        return crate::pipelines::estimate(&shared, &user, &bytes).await;
    }
    let body = JobBody::parse(&bytes)?;
    let plan = plan(&shared, &user, &body).await?;
    let q = &plan.quote;
    Ok(json(
        StatusCode::OK,
        &json!({"model": plan.model.key, "estimate": q.amount, "rate": q.rate, "unit": q.unit,
                "quantity": q.quantity, "verified": q.margin_permille.is_none()}),
    ))
}

/// A done job's output files, as stored (full paths, never shown).
fn output_paths(job: &Job) -> Option<Vec<std::path::PathBuf>> {
    job.outputs
        .as_deref()
        .and_then(|o| serde_json::from_str::<Vec<std::path::PathBuf>>(o).ok())
}

pub(crate) fn job_json(job: &Job) -> Value {
    let outputs: Value = output_paths(job).map_or(Value::Null, |paths| {
        paths
            .iter()
            .filter_map(|p| {
                p.file_name()
                    .map(|n| Value::from(n.to_string_lossy().into_owned()))
            })
            .collect()
    });
    json!({
        "id": job.id, "status": job.state.as_str(), "estimate": job.estimate, "actual": job.actual,
        "run_id": job.run_id, "outputs": outputs,
        "error": job.error.as_ref().map(|(code, message)| json!({"code": code, "message": message})),
    })
}

/// `user`'s job `id`; anyone else's is as missing as one that does not exist.
async fn owned_job(shared: &Shared, user: &User, id: &str) -> Result<Job, ServerError> {
    shared
        .records
        .job(&user.name, id)
        .await?
        .ok_or(ServerError::NotFound)
}

async fn show_job(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let job = owned_job(&shared, &user, &id).await?;
    Ok(json(StatusCode::OK, &job_json(&job)))
}

async fn cancel_job(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let before = owned_job(&shared, &user, &id).await?;
    match shared.records.cancel(&user.name, &id).await? {
        None => return Err(ServerError::NotFound),
        // A running job is cancelled through the guarded path: the charge table settles it.
        Some(JobState::Running) => shared.cancel_running(&id),
        // A queued one ended here, and no worker will record it: its callback goes from here.
        Some(JobState::Cancelled) if before.state == JobState::Queued => {
            if let Some(pipeline) = crate::pipelines::StoredPipeline::parse(&before.request) {
                pipeline.forget().await;
            }
            crate::worker::call_back(&shared, &before).await;
        }
        Some(_) => {}
    }
    let job = owned_job(&shared, &user, &id).await?;
    Ok(json(StatusCode::ACCEPTED, &job_json(&job)))
}

/// Server-sent events: the job's state when it is looked at (every 200 ms) and has changed,
/// ending with `done`, `failed` or `cancelled`; a stream also ends when the service shuts
/// down. At most 256 are open at once.
async fn job_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let first = owned_job(&shared, &user, &id).await?;
    let permit = Arc::clone(&shared.streams)
        .try_acquire_owned()
        .map_err(|_| ServerError::Busy)?;
    let stream = futures_util::stream::unfold(
        (shared, user.name, Some(first), None::<JobState>, permit),
        |(shared, user, next, last, permit)| async move {
            let mut job = next?;
            while last == Some(job.state) {
                tokio::select! {
                    () = tokio::time::sleep(EVENT_POLL) => {}
                    () = shared.shutdown.cancelled() => return None,
                }
                job = shared.records.job(&user, &job.id).await.ok().flatten()?;
            }
            let event = format!(
                "event: {}\ndata: {}\n\n",
                job.state.as_str(),
                job_json(&job)
            );
            let state = job.state;
            let next = (!state.is_final()).then_some(job);
            Some((
                Ok::<_, Infallible>(event),
                (shared, user, next, Some(state), permit),
            ))
        },
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One output file of a done job of the caller's, streamed: only a name the job lists, only a
/// regular file (never a link), read 64 KiB at a time.
async fn output(
    State(shared): State<Arc<Shared>>,
    Path((id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let job = owned_job(&shared, &user, &id).await?;
    let plain = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let path = output_paths(&job)
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name.as_str()))
        .filter(|_| plain(&name))
        .ok_or(ServerError::NotFound)?;
    crate::files::stream(&path, &name, "application/octet-stream").await
}

async fn spend(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    // Only the caller's own scopes: the service's and the tags' totals are not theirs to see.
    let own = format!(":user:{}:", user.name);
    let scopes = shared
        .scopes(&user, &[])
        .await?
        .into_iter()
        .filter(|s| s.scope.contains(&own))
        .collect();
    let now = spend_of(&shared, shared.caller(&user, scopes, None, None)).await?;
    Ok(json(
        StatusCode::OK,
        &json!({"user": user.name, "scopes": shown_scopes(&now.scopes)}),
    ))
}

/// Scopes as the API shows them: a period with no limit has `"limit": null`.
pub(crate) fn shown_scopes(scopes: &[acgs_engine::ScopeNow]) -> Vec<Value> {
    scopes
        .iter()
        .map(|s| {
            let limit = (s.limit != crate::UNLIMITED).then_some(s.limit);
            json!({"spend": s.spend, "limit": limit})
        })
        .collect()
}

/// A callback of fal's: verified against fal's published keys (an unverifiable one is
/// refused, logged and audited), then only a wake-up for whoever waits for that request here —
/// the result is still fetched and checked. Answered at once; duplicates are harmless.
async fn fal_webhook(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let Some(callbacks) = shared.provider_callbacks.clone() else {
        return ServerError::NotFound.into_response();
    };
    let headers: std::collections::HashMap<String, String> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let body = match body_bytes(request, BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    // Unauthenticated: bounded for the whole service, so forged deliveries cannot flood the
    // audit log.
    if let Err(wait) = shared.webhook_rate.take("fal", std::time::Instant::now()) {
        return ServerError::RateLimited(wait.as_secs().max(1)).into_response();
    }
    match callbacks.fal.verify(&headers, &body).await {
        Ok(request_id) => {
            let woken = callbacks.wakeups.wake(&request_id);
            // Workers elsewhere hear of it through the database.
            if let Err(e) = shared.records.notify_callback(&request_id).await {
                tracing::warn!(error = %e, "a fal callback could not be passed on to the workers");
            }
            tracing::info!(request = %request_id, woken, "a fal callback was verified");
            json(StatusCode::OK, &json!({"received": true}))
        }
        Err(refused) => {
            tracing::warn!(code = refused.code, reason = %refused.reason, "a fal callback was refused");
            shared
                .suite
                .audit_refusal("serve.fal_webhook", refused.code);
            let body = json!({"error": {"code": refused.code, "message": refused.reason}});
            json(StatusCode::UNAUTHORIZED, &body)
        }
    }
}

/// The caller's callback secret (`whsec_…`), made on first asking: callbacks of their jobs are
/// signed with it.
async fn callback_secret(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let secret = shared
        .records
        .meta_or_init(
            &crate::callbacks::secret_name(&user.name),
            &crate::callbacks::fresh_secret()?,
        )
        .await?;
    Ok(json(StatusCode::OK, &json!({"secret": secret})))
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    match shared.records.user("").await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every request gets an id, answered in `x-request-id` and logged with its method, path,
/// status and user (the bearer token is never logged).
async fn request_id(request: Request, next: Next) -> Response {
    let mut bytes = [0u8; 8];
    let id = getrandom::fill(&mut bytes).map_or_else(|_| "-".to_owned(), |()| hex::encode(bytes));
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = next.run(request).await;
    let user = response
        .extensions()
        .get::<Authenticated>()
        .map(|a| a.0.name.clone());
    tracing::info!(request_id = %id, %method, path = %path, status = response.status().as_u16(), user = user.as_deref().unwrap_or("-"), "request");
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn openapi() -> Response {
    json(StatusCode::OK, &crate::openapi::document())
}
