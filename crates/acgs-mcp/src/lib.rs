//! # acgs-mcp
//!
//! acgs as a [Model Context Protocol](https://modelcontextprotocol.io) server: coding and creative
//! agents estimate, generate and run pipelines by calling tools, and every call goes through the
//! same guarded path as the command line — validated, inspected, priced at its worst case,
//! reserved atomically in the ledger, audited.
//!
//! What an agent cannot change, because it comes only from the user's configuration (`[mcp]`):
//! the session's allowance (a ledger scope every reservation of the session must also fit in),
//! the folders input files may come from, and the estimate above which a call is refused since
//! nobody can confirm it. A call's own `max_cost_usd` can only refuse, never raise anything.
//!
//! ```no_run
//! # async fn demo(suite: acgs_engine::Suite, config: acgs_core::config::McpConfig) -> Result<(), acgs_mcp::McpError> {
//! let session = acgs_mcp::Session::start(&suite, acgs_mcp::Settings::from_config(&config)?);
//! let shutdown = tokio_util::sync::CancellationToken::new(); // fired on Ctrl-C, say
//! acgs_mcp::serve_stdio(session, shutdown).await
//! # }
//! ```
//!
//! The server speaks MCP on stdio (what desktop clients launch) or on streamable HTTP bound to
//! loopback, behind a bearer token ([`token`]).

mod args;
mod calls;
mod error;
mod http;
mod progress;
mod results;
mod server;
mod session;
pub mod token;

pub use error::McpError;
pub use http::{HttpOptions, check_bind, serve_http};
pub use server::{AcgsMcp, serve_stdio};
pub use session::{Session, Settings};
