//! `acgs serve`: the HTTP service on loopback with in-process workers; `acgs serve user add` and
//! `acgs serve token create|revoke` keep its users and tokens (in `server.sqlite3` in the state
//! folder). The guarded path, ledger and audit log are the command line's own.

use acgs_core::Usd;
use acgs_engine::Interrupt;
use acgs_server::{Options, Store, User};
use serde_json::json;

use crate::app::App;
use crate::cli::{ServeAction, ServeArgs, ServeTokenAction, ServeUserAction};
use crate::failure::{CliError, CmdResult, Failure};

/// The service's records, in the state folder.
const STORE_FILE: &str = "server.sqlite3";

pub(crate) async fn run(app: &App, args: &ServeArgs, interrupt: &Interrupt) -> CmdResult {
    match &args.action {
        None => serve(app, args, interrupt).await,
        Some(ServeAction::User {
            action:
                ServeUserAction::Add {
                    name,
                    daily,
                    monthly,
                },
        }) => add_user(app, name, daily, monthly.as_deref()),
        Some(ServeAction::Token {
            action: ServeTokenAction::Create { user, days },
        }) => create_token(app, user, *days),
        Some(ServeAction::Token {
            action: ServeTokenAction::Revoke { id },
        }) => revoke_token(app, id),
    }
}

fn store(app: &App) -> Result<Store, Failure> {
    let path = app.loaded.paths.state_file(STORE_FILE);
    if let Some(dir) = path.parent() {
        acgs_storage::ensure_private_dir(dir)?;
    }
    Store::open(&path).map_err(|e| CliError::Usage(e.to_string()).into())
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
    let store = store(app)?;
    let suite = app.serving_suite().await?;
    let options = Options {
        addr: args.addr,
        workers: usize::from(args.workers),
        lock: app.loaded.paths.state_file("server.lock"),
        files: app.loaded.paths.state_file("server-files"),
        max_upload: u64::from(args.max_upload_mib) * 1024 * 1024,
    };
    let (bound, serving) = acgs_server::serve(suite, store, &options, interrupt.token().clone())
        .await
        .map_err(|e| usage(format!("cannot listen on {}: {e}", args.addr)))?;
    app.ui.note(&format!(
        "acgs serve: listening on http://{bound} with {} workers",
        options.workers
    ));
    serving.await.map_err(usage)?;
    Ok(())
}

fn add_user(app: &App, name: &str, daily: &str, monthly: Option<&str>) -> CmdResult {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plain {
        return Err(usage("a user name is 1 to 64 letters, digits, `-` or `_`"));
    }
    let amount = |text: &str| Usd::parse(text).map_err(usage);
    let user = User {
        name: name.to_owned(),
        daily: amount(daily)?,
        monthly: monthly.map(amount).transpose()?,
    };
    store(app)?.put_user(&user).map_err(usage)?;
    let doc = json!({"user": user.name, "daily": user.daily, "monthly": user.monthly});
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

fn create_token(app: &App, user: &str, days: u32) -> CmdResult {
    let (id, token) = store(app)?.create_token(user, days).map_err(usage)?;
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

fn revoke_token(app: &App, id: &str) -> CmdResult {
    if !store(app)?.revoke_token(id).map_err(usage)? {
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
