//! `POST /v1/pipelines`: a pipeline file and its inputs, run as one job through the engine's
//! pipeline runner — priced whole at the door (nothing reserved), admitted whole by a worker,
//! with the same status, events, cancel, budgets and callbacks as a single job.
//!
//! The file is kept in its owner's upload folder (0600, a fresh name), so that a job reads only
//! that folder: an input naming one of the owner's uploads (`file_…`) becomes its path, and a
//! path the file names resolves only inside that folder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use crate::Shared;
use crate::api::{
    Door, Stored, Work, check_callback, checked_tags, door, enqueue, job_json, json,
    parse_max_cost, read_json, user_of,
};
use crate::error::ServerError;
use crate::store::{User, random_hex};
use acgs_engine::PipelineEstimate;

/// The largest request: a pipeline file is at most 1 MiB, and its inputs are few.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024 + 64 * 1024;

/// A pipeline request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineBody {
    /// The pipeline file's text (YAML).
    pipeline: String,
    /// Its inputs by name; an upload id of the caller's stands for that file.
    #[serde(default)]
    inputs: BTreeMap<String, String>,
    #[serde(default)]
    max_cost_usd: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    callback_url: Option<String>,
}

/// An accepted pipeline as it is queued.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredPipeline {
    pipeline_path: PathBuf,
    inputs: BTreeMap<String, String>,
    max_cost_usd: Option<String>,
    tags: Vec<String>,
    callback_url: Option<String>,
}

impl StoredPipeline {
    /// The stored pipeline `stored` is, if it is one.
    pub(crate) fn parse(stored: &str) -> Option<Self> {
        serde_json::from_str(stored).ok()
    }

    /// Remove the kept pipeline file of a job that will not run.
    pub(crate) async fn forget(&self) {
        let _ = tokio::fs::remove_file(&self.pipeline_path).await;
    }

    /// What a worker runs.
    pub(crate) fn into_stored(self) -> Result<Stored, ServerError> {
        Ok(Stored {
            max: parse_max_cost(self.max_cost_usd.as_deref())?,
            tags: checked_tags(&self.tags)?,
            work: Work::Pipeline {
                path: self.pipeline_path,
                inputs: self.inputs,
            },
        })
    }
}

/// `inputs` with each of `user`'s upload ids replaced by the upload's path.
async fn resolve_inputs(
    shared: &Shared,
    user: &User,
    inputs: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ServerError> {
    let mut resolved = BTreeMap::new();
    for (name, value) in inputs {
        let value = match value.strip_prefix("file_") {
            Some(_) => {
                let upload = shared.records.upload(&user.name, &value).await?;
                let upload = upload.ok_or_else(|| {
                    ServerError::BadRequest(format!("inputs.{name}: no file of yours is that id"))
                })?;
                upload.path.to_string_lossy().into_owned()
            }
            None => value,
        };
        resolved.insert(name, value);
    }
    Ok(resolved)
}

/// Keep `text` as a fresh private file in `user`'s folder.
async fn keep_file(shared: &Shared, user: &User, text: &str) -> Result<PathBuf, ServerError> {
    let dir = crate::files::folder(&shared.files, &user.name)
        .ok_or_else(|| ServerError::Store("a user name that is not plain".into()))?;
    let failed = |e: std::io::Error| ServerError::Store(format!("the pipeline file: {e}"));
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .await
        .map_err(failed)?;
    let path = dir.join(format!("pipe_{}.yaml", random_hex(12)?));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .map_err(failed)?;
    file.write_all(text.as_bytes()).await.map_err(failed)?;
    file.sync_all().await.map_err(failed)?;
    Ok(path)
}

/// `body` checked and priced whole for `user` (validation, the guard on every step's text,
/// worst-case prices, the job's ceiling): the kept file, the inputs as the run takes them, and
/// the estimate. A refusal is audited, and the file is not kept.
async fn price(
    shared: &Shared,
    user: &User,
    body: &PipelineBody,
) -> Result<(PathBuf, BTreeMap<String, String>, PipelineEstimate), ServerError> {
    let (max, tags) = (
        parse_max_cost(body.max_cost_usd.as_deref())?,
        checked_tags(&body.tags)?,
    );
    check_callback(shared, body.callback_url.as_deref())?;
    let inputs = resolve_inputs(shared, user, body.inputs.clone()).await?;
    let scopes = shared.scopes(user, &tags).await?;
    let path = keep_file(shared, user, &body.pipeline).await?;
    let suite = shared
        .suite
        .for_caller(shared.caller(user, scopes, max, None));
    let priced = suite
        .load_pipeline(&path)
        .and_then(|p| suite.estimate_pipeline(&p, &inputs));
    let refusal = match &priced {
        Err(e) => Some(ServerError::refused(e)),
        Ok(estimate) => crate::api::above_ceiling(estimate.total, max),
    };
    if let Some(refused) = refusal {
        suite.audit_refusal("serve.pipeline", acgs_core::UserFacing::code(&refused));
        let _ = tokio::fs::remove_file(&path).await;
        return Err(refused);
    }
    let estimate = priced.map_err(|e| ServerError::refused(&e))?;
    Ok((path, inputs, estimate))
}

/// `POST /v1/pipelines`: checked and priced whole (see [`price`]), then queued as one job.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ServerError> {
    let user = user_of(request.extensions())?;
    let key = match door(&shared, &user, &headers).await? {
        Door::Made(job) => return Ok(json(StatusCode::ACCEPTED, &job_json(&job))),
        Door::Open(key) => key,
    };
    let body: PipelineBody = read_json(request, BODY_LIMIT).await?;
    let (path, inputs, estimate) = price(&shared, &user, &body).await?;
    let stored = StoredPipeline {
        pipeline_path: path,
        inputs,
        max_cost_usd: body.max_cost_usd,
        tags: checked_tags(&body.tags)?,
        callback_url: body.callback_url,
    };
    let stored = serde_json::to_string(&stored)
        .map_err(|e| ServerError::Store(format!("the pipeline job: {e}")))?;
    enqueue(&shared, &user, key.as_deref(), &stored, estimate.total).await
}

/// The answer of `POST /v1/estimate` for a pipeline: each step's worst case and the total,
/// nothing reserved, nothing kept.
pub(crate) async fn estimate(
    shared: &Shared,
    user: &User,
    bytes: &[u8],
) -> Result<Response, ServerError> {
    let body: PipelineBody = serde_json::from_slice(bytes)
        .map_err(|e| ServerError::BadRequest(format!("the body: {e}")))?;
    let (path, _, estimate) = price(shared, user, &body).await?;
    let _ = tokio::fs::remove_file(&path).await;
    let steps: Vec<serde_json::Value> = estimate
        .steps
        .iter()
        .map(|p| serde_json::json!({"step": p.step, "model": p.model.key, "estimate": p.quote.amount}))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"estimate": estimate.total, "steps": steps}),
    ))
}
