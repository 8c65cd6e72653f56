//! The admin routes (`/v1/admin/…`): users and their budgets, tokens, and the limits of the
//! service and of tags — what `acgs serve user|token|limit` does, over HTTP, for users added
//! with `--admin`. Anyone else gets 403; every change is audited with the admin who made it.

use std::sync::Arc;

use acgs_core::Usd;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::api::{json, read_json, user_of};
use crate::error::ServerError;
use crate::store::{LimitScope, Period, User};

/// The admin routes (they sit behind the bearer token like every private route).
pub(crate) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/v1/admin/users/{name}", get(show_user).put(put_user))
        .route("/v1/admin/users/{name}/tokens", post(create_token))
        .route("/v1/admin/tokens/{id}", delete(revoke_token))
        .route("/v1/admin/limits", get(list_limits))
        .route(
            "/v1/admin/limits/{scope}/{period}",
            put(set_limit).delete(remove_limit),
        )
}

/// The caller, if they are an admin.
fn admin(request: &Request) -> Result<User, ServerError> {
    let user = user_of(request.extensions())?;
    if user.admin {
        Ok(user)
    } else {
        Err(ServerError::Forbidden)
    }
}

/// Audit `admin`'s change: `operation` (`serve.admin.…`) and what it changed.
fn audited(shared: &Shared, admin: &User, operation: &str, subject: &str) {
    let caller = acgs_engine::Caller::new(&admin.name).origin(acgs_core::audit::Origin::Service);
    shared
        .suite
        .for_caller(caller)
        .audit_change(operation, subject);
}

fn amount(text: Option<&str>, what: &str) -> Result<Option<Usd>, ServerError> {
    text.map(|t| Usd::parse(t).map_err(|e| ServerError::BadRequest(format!("{what}: {e}"))))
        .transpose()
}

fn user_json(user: &User) -> Value {
    json!({"user": user.name, "daily": user.daily, "weekly": user.weekly,
           "monthly": user.monthly, "admin": user.admin})
}

async fn show_user(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    admin(&request)?;
    let user = shared
        .records
        .user(&name)
        .await?
        .ok_or(ServerError::UnknownUser(name))?;
    Ok(json(StatusCode::OK, &user_json(&user)))
}

/// A user's budgets, as `acgs serve user add` takes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Budgets {
    daily: String,
    #[serde(default)]
    weekly: Option<String>,
    #[serde(default)]
    monthly: Option<String>,
    #[serde(default)]
    admin: bool,
}

async fn put_user(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let by = admin(&request)?;
    let budgets: Budgets = read_json(request, crate::api::BODY_LIMIT).await?;
    let user = User {
        name,
        daily: amount(Some(&budgets.daily), "daily")?.unwrap_or(Usd::ZERO),
        weekly: amount(budgets.weekly.as_deref(), "weekly")?,
        monthly: amount(budgets.monthly.as_deref(), "monthly")?,
        admin: budgets.admin,
    };
    shared.records.put_user(&user).await?;
    audited(&shared, &by, "serve.admin.user", &user.name);
    let stored = shared.records.user(&user.name).await?.unwrap_or(user);
    Ok(json(StatusCode::OK, &user_json(&stored)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    days: Option<u32>,
}

async fn create_token(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let by = admin(&request)?;
    let body: TokenBody = read_json(request, crate::api::BODY_LIMIT).await?;
    let days = body.days.unwrap_or(90).clamp(1, 3650);
    let (id, token) = shared.records.create_token(&name, days).await?;
    audited(
        &shared,
        &by,
        "serve.admin.token_create",
        &format!("{id} for {name}"),
    );
    Ok(json(
        StatusCode::CREATED,
        &json!({"id": id, "user": name, "token": token.expose_secret(), "expires_in_days": days}),
    ))
}

async fn revoke_token(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ServerError> {
    let by = admin(&request)?;
    if !shared.records.revoke_token(&id).await? {
        return Err(ServerError::UnknownToken(id));
    }
    audited(&shared, &by, "serve.admin.token_revoke", &id);
    Ok(json(StatusCode::OK, &json!({"revoked": id})))
}

async fn list_limits(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Result<Response, ServerError> {
    admin(&request)?;
    list_limits_now(&shared).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    amount: String,
}

async fn set_limit(
    State(shared): State<Arc<Shared>>,
    Path((scope, period)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ServerError> {
    let by = admin(&request)?;
    let (scope, period) = (LimitScope::parse(&scope)?, Period::parse(&period)?);
    let body: LimitBody = read_json(request, crate::api::BODY_LIMIT).await?;
    let amount = amount(Some(&body.amount), "amount")?;
    shared.records.set_limit(&scope, period, amount).await?;
    let subject = format!("{} {} {}", scope.as_text(), period.as_str(), body.amount);
    audited(&shared, &by, "serve.admin.limit", &subject);
    list_limits_now(&shared).await
}

async fn remove_limit(
    State(shared): State<Arc<Shared>>,
    Path((scope, period)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ServerError> {
    let by = admin(&request)?;
    let (scope, period) = (LimitScope::parse(&scope)?, Period::parse(&period)?);
    shared.records.set_limit(&scope, period, None).await?;
    let subject = format!("{} {} removed", scope.as_text(), period.as_str());
    audited(&shared, &by, "serve.admin.limit", &subject);
    list_limits_now(&shared).await
}

async fn list_limits_now(shared: &Shared) -> Result<Response, ServerError> {
    let limits: Vec<Value> = shared
        .records
        .limits()
        .await?
        .iter()
        .map(|l| json!({"scope": l.scope.as_text(), "period": l.period.as_str(), "amount": l.amount}))
        .collect();
    Ok(json(StatusCode::OK, &json!({"limits": limits})))
}
