//! `acgs mcp`: serve agents over the Model Context Protocol on stdio or, with `--http`, on
//! loopback HTTP behind a bearer token; `acgs mcp token` creates that token. Everything else is
//! `acgs-mcp`'s: this command only builds the suite and says where the session stands.

use acgs_engine::Interrupt;
use acgs_mcp::{HttpOptions, McpError, Session, Settings};

use crate::app::App;
use crate::cli::{McpAction, McpArgs};
use crate::failure::{CliError, CmdResult};

/// The file holding the token's digest, in the state folder.
const TOKEN_FILE: &str = "mcp-token.sha256";

/// `acgs mcp …`.
pub(crate) async fn run(app: &App, args: &McpArgs, interrupt: &Interrupt) -> CmdResult {
    match args.action {
        Some(McpAction::Token) => token(app),
        None => serve(app, args, interrupt).await,
    }
}

fn token(app: &App) -> CmdResult {
    let token = acgs_mcp::token::create(&app.loaded.paths.state_file(TOKEN_FILE))?;
    app.ui.note(
        "give this token to your MCP client as `Authorization: Bearer <token>`; it is shown once (only its digest is kept) and a new `acgs mcp token` replaces it",
    );
    let text = format!("{}\n", secrecy::ExposeSecret::expose_secret(&token));
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// Refuse configuration from anywhere but the user file: the environment and arguments of an
/// MCP server come from the client's configuration, which a project can provide.
fn check_sources(app: &App) -> Result<(), McpError> {
    let user_file = app.loaded.paths.user_config();
    let mut outside: Vec<String> = acgs_core::config::env_settings(&app.env)
        .into_iter()
        .map(str::to_owned)
        .collect();
    outside.extend(
        app.loaded
            .files
            .iter()
            .filter(|(path, trusted)| *trusted && *path != user_file)
            .map(|(path, _)| format!("--config {}", path.display())),
    );
    if outside.is_empty() {
        Ok(())
    } else {
        Err(McpError::ConfigOutsideUserFile(outside.join(", ")))
    }
}

async fn serve(app: &App, args: &McpArgs, interrupt: &Interrupt) -> CmdResult {
    check_sources(app)?;
    let settings = Settings::from_config(&app.config().mcp)?;
    let http = match args.http {
        Some(addr) => {
            acgs_mcp::check_bind(&settings, addr)?;
            let token = acgs_mcp::token::load(&app.loaded.paths.state_file(TOKEN_FILE))?;
            Some(HttpOptions {
                addr,
                token,
                shutdown: interrupt.token().clone(),
            })
        }
        None => None,
    };
    let session = Session::start(&app.serving_suite().await?, settings);
    let roots: Vec<String> = session
        .settings()
        .input_roots
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    app.ui.note(&format!(
        "acgs mcp: session {} with an allowance of ${}; input files from {}",
        session.id(),
        session.settings().session_limit,
        if roots.is_empty() {
            "nowhere (set [mcp] allowed_input_roots)".to_owned()
        } else {
            roots.join(", ")
        }
    ));
    match http {
        None => acgs_mcp::serve_stdio(session, interrupt.token().clone()).await?,
        Some(options) => {
            let (bound, serving) = acgs_mcp::serve_http(session, options).await?;
            app.ui
                .note(&format!("acgs mcp: listening on http://{bound}/mcp"));
            serving.await?;
        }
    }
    Ok(())
}
