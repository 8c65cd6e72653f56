//! [`McpError`]: what the MCP layer itself refuses — tool arguments that do not match their
//! schema, a server that may not start — each with a stable code. Everything else (money,
//! guard, input folders) is refused by the engine with its own code.

use std::path::PathBuf;

use acgs_core::error::{ErrorKind, UserFacing};

/// Errors of the MCP layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The arguments of a tool call do not match its schema (an unknown field, a wrong type, a
    /// missing required field).
    #[error("arguments of `{tool}`: {reason}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What is wrong, as the JSON reader said it.
        reason: String,
    },
    /// No tool has that name.
    #[error("there is no tool `{0}`")]
    UnknownTool(String),
    /// `[mcp] allowed_input_roots` names a folder that cannot be used.
    #[error("[mcp] allowed_input_roots: {path}: {reason}")]
    InputRoot {
        /// The folder as configured.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The run was not made in this session: an agent sees and resumes only its own runs.
    #[error("run {0} was not made in this session")]
    NotThisSession(String),
    /// `acgs mcp` was given configuration outside the user file (`ACGS_*` variables, `--config`):
    /// an MCP client's configuration, which a project may provide, must not set an agent's
    /// limits, folders or provider addresses.
    #[error("acgs mcp reads its configuration from your user file only, but was also given {0}")]
    ConfigOutsideUserFile(String),
    /// `--http` names an address other than loopback without `[mcp] allow_remote`.
    #[error("acgs mcp --http binds loopback addresses only, not {0}")]
    RemoteBind(String),
    /// `--http` without a token: `acgs mcp token` creates one.
    #[error("acgs mcp --http needs a bearer token and none has been created")]
    NoToken,
    /// Reading or writing the token, binding the port, or the transport failed.
    #[error("{what}: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        reason: String,
    },
}

impl McpError {
    /// A failure while doing `what`.
    pub(crate) fn io<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |e| Self::Io {
            what,
            reason: e.to_string(),
        }
    }
}

impl UserFacing for McpError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidArguments { .. } => "mcp.invalid_arguments",
            Self::UnknownTool(_) => "mcp.unknown_tool",
            Self::InputRoot { .. } => "config.invalid_value",
            Self::NotThisSession(_) => "mcp.run_not_in_session",
            Self::ConfigOutsideUserFile(_) => "mcp.config_outside_user_file",
            Self::RemoteBind(_) => "mcp.remote_bind",
            Self::NoToken => "mcp.no_token",
            Self::Io { .. } => "mcp.io",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidArguments { .. }
            | Self::UnknownTool(_)
            | Self::InputRoot { .. }
            | Self::NotThisSession(_)
            | Self::ConfigOutsideUserFile(_)
            | Self::RemoteBind(_)
            | Self::NoToken => ErrorKind::Usage,
            Self::Io { .. } => ErrorKind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::InvalidArguments { .. } | Self::UnknownTool(_) => {
                "`tools/list` gives each tool's schema".into()
            }
            Self::InputRoot { .. } => {
                "list existing absolute folders, e.g. allowed_input_roots = [\"/home/you/media\"]".into()
            }
            Self::NotThisSession(id) => format!(
                "runs started elsewhere are checked and resumed from the command line: acgs resume {id}"
            ),
            Self::ConfigOutsideUserFile(_) => {
                "move those settings into your user configuration file and remove them from the MCP client's configuration".into()
            }
            Self::RemoteBind(_) => {
                "bind 127.0.0.1 or ::1; set `[mcp] allow_remote = true` in your user configuration to serve other machines".into()
            }
            Self::NoToken => "run `acgs mcp token` and give the token to the client".into(),
            Self::Io { .. } => return None,
        })
    }
}
