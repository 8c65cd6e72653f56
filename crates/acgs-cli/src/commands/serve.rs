//! `acgs serve`: the HTTP service on loopback with in-process workers; `acgs worker`: a process
//! that runs the service's jobs from shared records; `acgs serve user add` and `acgs serve token
//! create|revoke` keep its users and tokens. The records are `server.sqlite3` in the state
//! folder, or the PostgreSQL database of a PostgreSQL ledger. The guarded path, ledger and
//! audit log are the command line's own.

use acgs_core::Usd;
use acgs_engine::Interrupt;
use acgs_server::{Options, Records, Store, User, WorkerOptions};
use serde_json::json;

use crate::app::App;
use crate::cli::{
    ServeAction, ServeArgs, ServeLimitAction, ServeTokenAction, ServeUserAction, UserAddArgs,
    WorkerArgs,
};
use crate::failure::{CliError, CmdResult, Failure};

/// The service's records, in the state folder.
const STORE_FILE: &str = "server.sqlite3";

pub(crate) async fn run(app: &App, args: &ServeArgs, interrupt: &Interrupt) -> CmdResult {
    match &args.action {
        None => serve(app, args, interrupt).await,
        Some(ServeAction::User {
            action: ServeUserAction::Add(add),
        }) => add_user(app, add).await,
        Some(ServeAction::Limit { action }) => limit(app, action).await,
        Some(ServeAction::Token {
            action: ServeTokenAction::Create { user, days },
        }) => create_token(app, user, *days).await,
        Some(ServeAction::Token {
            action: ServeTokenAction::Revoke { id },
        }) => revoke_token(app, id).await,
    }
}

/// Whether the ledger is PostgreSQL: then the service's records are there too, shared by
/// every API and worker process.
fn shared_ledger(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The service's records: in the PostgreSQL database of a PostgreSQL ledger, else
/// `server.sqlite3` in the state folder.
async fn records(app: &App) -> Result<Records, Failure> {
    let url = app.loaded.ledger_url();
    if shared_ledger(&url) {
        return shared_records(app, &url).await;
    }
    let path = app.loaded.paths.state_file(STORE_FILE);
    if let Some(dir) = path.parent() {
        acgs_storage::ensure_private_dir(dir)?;
    }
    // Token digests and every job's request: the owner's only, as the ledger is.
    acgs_storage::ledger_sqlite::create_private(&path)?;
    let store = Store::open(&path).map_err(usage)?;
    acgs_storage::ledger_sqlite::make_private(&path);
    Ok(Records::Local(store))
}

#[cfg(feature = "postgres")]
async fn shared_records(app: &App, url: &str) -> Result<Records, Failure> {
    let (client, _) = acgs_storage::postgres::connect(url, &app.ledger_access()).await?;
    let store = acgs_server::store_pg::PgStore::new(client)
        .await
        .map_err(usage)?;
    Ok(Records::Shared(store))
}

#[cfg(not(feature = "postgres"))]
async fn shared_records(_app: &App, _url: &str) -> Result<Records, Failure> {
    Err(usage(
        "a PostgreSQL ledger needs acgs built with the `postgres` feature",
    ))
}

fn usage(e: impl std::fmt::Display) -> Failure {
    CliError::Usage(e.to_string()).into()
}

async fn serve(app: &App, args: &ServeArgs, interrupt: &Interrupt) -> CmdResult {
    if !args.addr.ip().is_loopback() {
        return Err(usage(format!(
            "{} is not a loopback address: the service speaks plain HTTP, so serve others through a TLS proxy in front of 127.0.0.1",
            args.addr
        )));
    }
    let records = records(app).await?;
    let provider_callbacks = match &args.public_url {
        Some(url) => Some(fal_callbacks(app, url)?),
        None => None,
    };
    let suite = app.serving_suite().await?;
    let options = Options {
        addr: args.addr,
        workers: usize::from(args.workers),
        lock: app.loaded.paths.state_file("server.lock"),
        files: app.loaded.paths.state_file("server-files"),
        max_upload: u64::from(args.max_upload_mib) * 1024 * 1024,
        lease_secs: args.lease_secs,
        callbacks: Some(callback_client(app, args.allow_private_callbacks)?),
        user_rate: args.user_rate,
        provider_callbacks,
    };
    let (bound, serving) = acgs_server::serve(suite, records, &options, interrupt.token().clone())
        .await
        .map_err(|e| usage(format!("cannot serve on {}: {e}", args.addr)))?;
    app.ui.note(&format!(
        "acgs serve: listening on http://{bound} with {} workers",
        options.workers
    ));
    serving.await.map_err(usage)?.map_err(usage)?;
    Ok(())
}

/// The client jobs' callbacks are sent with: the configured network settings, but loopback
/// only when the operator allows it for callbacks (`--allow-private-callbacks`), whatever
/// `network.allow_http_loopback` says for providers.
fn callback_client(app: &App, allow_loopback: bool) -> Result<acgs_http::HttpClient, Failure> {
    let mut policy = acgs_http::NetworkPolicy::from_config(&app.config().network);
    policy.allow_loopback = allow_loopback;
    // Never through a proxy: the proxy would resolve the name, past the address checks.
    policy.proxy = None;
    Ok(acgs_http::HttpClient::new(
        policy,
        app.ui.redactor().clone(),
    )?)
}

/// fal's callbacks to `public`: its jobs are submitted with `public/v1/webhooks/fal` as their
/// webhook, and deliveries are checked against the keys at `providers.fal.jwks_url`.
fn fal_callbacks(app: &App, public: &str) -> Result<acgs_server::ProviderCallbacks, Failure> {
    let (_, wakeups) = fal_webhook(app, public)?;
    let urls = app.config().providers.urls(acgs_core::ProviderId::Fal);
    let jwks = urls
        .url("jwks_url")
        .and_then(|u| url::Url::parse(u).ok())
        .ok_or_else(|| usage("providers.fal.jwks_url is not a URL"))?;
    let http = acgs_http::HttpClient::new(
        acgs_http::NetworkPolicy::from_config(&app.config().network),
        app.ui.redactor().clone(),
    )?;
    let verifier = acgs_providers_fal::FalWebhooks::new(http, jwks)?;
    Ok(acgs_server::ProviderCallbacks {
        fal: std::sync::Arc::new(verifier),
        wakeups,
    })
}

/// Submit this process's fal jobs with `public/v1/webhooks/fal` as their webhook (set before
/// the providers are built), waiting on the wake-ups it returns.
fn fal_webhook(
    app: &App,
    public: &str,
) -> Result<(url::Url, acgs_core::callback::JobWakeups), Failure> {
    let base = url::Url::parse(public)
        .ok()
        .filter(|u| u.scheme() == "https" && u.query().is_none())
        .ok_or_else(|| {
            usage(format!(
                "--public-url `{public}` is not an https URL without a query"
            ))
        })?;
    let hook = base
        .join(&format!(
            "{}/v1/webhooks/fal",
            base.path().trim_end_matches('/')
        ))
        .map_err(usage)?;
    let wakeups = acgs_core::callback::JobWakeups::default();
    let _ = app.fal_webhook.set((hook.clone(), wakeups.clone()));
    Ok((hook, wakeups))
}

/// With `--public-url`, a worker submits with fal's webhook and hears of the callbacks the API
/// verified through the database.
#[cfg(feature = "postgres")]
async fn callback_wakes(
    app: &App,
    public: Option<&str>,
) -> Result<Option<acgs_server::CallbackWakes>, Failure> {
    let Some(public) = public else {
        return Ok(None);
    };
    let (_, wakeups) = fal_webhook(app, public)?;
    let (connection, notices) = acgs_storage::postgres::listen(
        &app.loaded.ledger_url(),
        &app.ledger_access(),
        acgs_server::CALLBACK_CHANNEL,
    )
    .await?;
    Ok(Some(acgs_server::CallbackWakes {
        wakeups,
        notices,
        connection: Box::new(connection),
    }))
}

#[cfg(not(feature = "postgres"))]
async fn callback_wakes(
    _app: &App,
    _public: Option<&str>,
) -> Result<Option<acgs_server::CallbackWakes>, Failure> {
    Ok(None)
}

/// `acgs worker`: run the service's jobs from its shared records until a signal.
pub(crate) async fn worker(app: &App, args: &WorkerArgs, interrupt: &Interrupt) -> CmdResult {
    if !shared_ledger(&app.loaded.ledger_url()) {
        return Err(usage(
            "acgs worker runs jobs from shared records: set ledger.url to a PostgreSQL database (with SQLite, `acgs serve` runs its own workers)",
        ));
    }
    let records = records(app).await?;
    let wakes = callback_wakes(app, args.public_url.as_deref()).await?;
    let suite = app.serving_suite().await?;
    let options = WorkerOptions {
        jobs: usize::from(args.jobs),
        files: app.loaded.paths.state_file("server-files"),
        lease_secs: args.lease_secs,
        drain_secs: args.drain_secs,
        callbacks: Some(callback_client(app, args.allow_private_callbacks)?),
        wakes,
    };
    app.ui.note(&format!(
        "acgs worker: running up to {} jobs at once{}",
        options.jobs,
        if options.wakes.is_some() {
            ", woken by fal's callbacks"
        } else {
            ""
        }
    ));
    acgs_server::work(suite, records, options, interrupt.token().clone())
        .await
        .map_err(usage)?;
    Ok(())
}

async fn add_user(app: &App, add: &UserAddArgs) -> CmdResult {
    let amount = |text: &str| Usd::parse(text).map_err(usage);
    let user = User {
        name: add.name.clone(),
        daily: amount(&add.daily)?,
        weekly: add.weekly.as_deref().map(amount).transpose()?,
        monthly: add.monthly.as_deref().map(amount).transpose()?,
        admin: add.admin,
    };
    records(app).await?.put_user(&user).await.map_err(usage)?;
    let doc = json!({"user": user.name, "daily": user.daily, "weekly": user.weekly,
                     "monthly": user.monthly, "admin": user.admin});
    if app.ui.json {
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    app.ui
        .result_text(&format!(
            "{} may spend ${} a day{}\n",
            user.name,
            user.daily,
            user.monthly
                .map_or_else(String::new, |m| format!(", ${m} a month"))
        ))
        .map_err(|e| CliError::from(e).into())
}

/// `acgs serve limit set|remove|list`.
async fn limit(app: &App, action: &ServeLimitAction) -> CmdResult {
    use acgs_server::{LimitScope, Period};
    let records = records(app).await?;
    match action {
        ServeLimitAction::Set {
            scope,
            period,
            amount,
        } => {
            let amount = Usd::parse(amount).map_err(usage)?;
            let (scope, period) = (
                LimitScope::parse(scope).map_err(usage)?,
                Period::parse(period).map_err(usage)?,
            );
            records
                .set_limit(&scope, period, Some(amount))
                .await
                .map_err(usage)?;
        }
        ServeLimitAction::Remove { scope, period } => {
            let (scope, period) = (
                LimitScope::parse(scope).map_err(usage)?,
                Period::parse(period).map_err(usage)?,
            );
            records
                .set_limit(&scope, period, None)
                .await
                .map_err(usage)?;
        }
        ServeLimitAction::List => {}
    }
    let limits = records.limits().await.map_err(usage)?;
    if app.ui.json {
        let doc: Vec<_> = limits
            .iter()
            .map(|l| json!({"scope": l.scope.as_text(), "period": l.period.as_str(), "amount": l.amount}))
            .collect();
        return app
            .ui
            .result_json(&json!({"limits": doc}))
            .map_err(|e| CliError::from(e).into());
    }
    let text: String = limits
        .iter()
        .map(|l| {
            format!(
                "{} {} ${}\n",
                l.scope.as_text(),
                l.period.as_str(),
                l.amount
            )
        })
        .collect();
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

async fn create_token(app: &App, user: &str, days: u32) -> CmdResult {
    let (id, token) = records(app)
        .await?
        .create_token(user, days)
        .await
        .map_err(usage)?;
    let secret = secrecy::ExposeSecret::expose_secret(&token).to_owned();
    if app.ui.json {
        let doc = json!({"id": id, "user": user, "token": secret, "expires_in_days": days});
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    app.ui.note(&format!(
        "token {id} for {user}, valid {days} days: give it as `Authorization: Bearer <token>`; it is shown once (only its digest is kept)"
    ));
    app.ui
        .result_text(&format!("{secret}\n"))
        .map_err(|e| CliError::from(e).into())
}

async fn revoke_token(app: &App, id: &str) -> CmdResult {
    if !records(app).await?.revoke_token(id).await.map_err(usage)? {
        return Err(usage(format!("no live token {id}")));
    }
    if app.ui.json {
        return app
            .ui
            .result_json(&json!({"revoked": id}))
            .map_err(|e| CliError::from(e).into());
    }
    app.ui
        .result_text(&format!("{id} revoked\n"))
        .map_err(|e| CliError::from(e).into())
}
