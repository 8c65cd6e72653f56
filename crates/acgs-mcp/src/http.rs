//! MCP over streamable HTTP at `/mcp`: bound to loopback unless the user's configuration says
//! otherwise, and every request must carry the bearer token (`401` with `WWW-Authenticate`
//! otherwise). All connections are clients of one [`Session`], so they share its allowance.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::error::McpError;
use crate::server::AcgsMcp;
use crate::session::{Session, Settings};
use crate::token::TokenDigest;

/// The largest request body, as large as a stdio line may be, so that an oversized prompt
/// reaches the guard and gets its own error on both transports.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How to serve HTTP.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// The token every request must present.
    pub token: TokenDigest,
    /// Stops the server (in-flight calls are cancelled).
    pub shutdown: CancellationToken,
}

/// Refuse `addr` unless it is loopback or `settings` allow remote clients.
pub fn check_bind(settings: &Settings, addr: SocketAddr) -> Result<(), McpError> {
    if addr.ip().is_loopback() || settings.allow_remote {
        Ok(())
    } else {
        Err(McpError::RemoteBind(addr.to_string()))
    }
}

/// Bind `options.addr` (see [`check_bind`]) and return the bound address and the server's
/// future.
pub async fn serve_http(
    session: Arc<Session>,
    options: HttpOptions,
) -> Result<(SocketAddr, impl Future<Output = Result<(), McpError>>), McpError> {
    check_bind(session.settings(), options.addr)?;
    let remote = !options.addr.ip().is_loopback();
    let mut config = StreamableHttpServerConfig::default()
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(options.shutdown.child_token());
    if remote {
        // The Host check guards loopback servers against DNS rebinding; a remote server is
        // reached under names only its user knows, and the token guards it.
        config = config.disable_allowed_hosts();
    }
    let handler = AcgsMcp::new(Arc::clone(&session));
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let token = Arc::new(options.token);
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(token, bearer));
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(McpError::io("binding the MCP port"))?;
    let bound = listener
        .local_addr()
        .map_err(McpError::io("binding the MCP port"))?;
    let shutdown = options.shutdown;
    let serving = async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(McpError::io("serving MCP over HTTP"));
        session.drain(crate::server::DRAIN_TIMEOUT).await;
        served
    };
    Ok((bound, serving))
}

/// Let through only requests whose `Authorization: Bearer …` is the token.
async fn bearer(State(token): State<Arc<TokenDigest>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(presented) if token.accepts(presented) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"acgs\"")],
            "a bearer token is required: `acgs mcp token` creates one\n",
        )
            .into_response(),
    }
}
