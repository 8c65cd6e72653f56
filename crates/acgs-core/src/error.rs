//! Error kinds, stable user-facing codes and the error type of this crate.
//!
//! Every error a user can see carries three things: a stable dotted code (`budget.daily_limit`), a
//! [`ErrorKind`] that decides the process exit code, and a one-sentence message. Each library crate
//! has its own error enum; all of them implement [`UserFacing`] so that the command line renders
//! them the same way.

use std::path::PathBuf;

/// The broad class of a failure; it decides the exit code of the `acgs` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Invalid usage, input, configuration or pipeline file (exit 2).
    Usage,
    /// Refused by the guard: moderation, injection, credential in text, unsafe path (exit 3).
    Guard,
    /// Refused for money or quota: budget, confirmation, provider balance, local rate limit (exit 4).
    Money,
    /// Authentication or permission error at a provider, or a key that could not be loaded (exit 5).
    Auth,
    /// Provider failure: failed job, safety block, upstream errors after retries, deadline (exit 6).
    Provider,
    /// A check failed (`doctor`, `audit verify`) (exit 7).
    Check,
    /// An unexpected internal error (exit 1).
    Internal,
}

impl ErrorKind {
    /// The documented exit code for this kind.
    #[must_use]
    pub const fn exit_code(self) -> i32 {
        match self {
            Self::Internal => 1,
            Self::Usage => 2,
            Self::Guard => 3,
            Self::Money => 4,
            Self::Auth => 5,
            Self::Provider => 6,
            Self::Check => 7,
        }
    }

    /// Precedence when several failures apply at once: 5 > 4 > 3 > 6 (higher wins).
    #[must_use]
    pub const fn precedence(self) -> u8 {
        match self {
            Self::Auth => 7,
            Self::Money => 6,
            Self::Guard => 5,
            Self::Provider => 4,
            Self::Usage => 3,
            Self::Check => 2,
            Self::Internal => 1,
        }
    }
}

/// An error that can be shown to a user: stable code, kind, one sentence, a hint.
///
/// `Display` is the one sentence. It never contains a secret or the text of a refused prompt.
pub trait UserFacing: std::error::Error + Send + Sync {
    /// The stable dotted code, e.g. `guard.credential_in_text`.
    fn code(&self) -> &'static str;
    /// The kind, which decides the exit code.
    fn kind(&self) -> ErrorKind;
    /// The process exit code (the kind's, except for interruptions: 130 and 143).
    fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }
    /// What the user can do about it.
    fn hint(&self) -> Option<String> {
        None
    }
    /// Details for `-v` (provider bodies, internals), already redacted.
    fn detail(&self) -> Option<String> {
        None
    }
    /// Each problem on its own, when the error gathers several found in a file (a pipeline
    /// that fails validation): `--json` lists them as an array.
    fn problems(&self) -> &[Problem] {
        &[]
    }
}

/// One of several problems found in one file, placed where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file as given.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// The pipeline step it concerns, if any.
    pub step: Option<String>,
    /// A stable dotted code for the kind of problem (`pipeline.unknown_model`).
    pub code: &'static str,
    /// What is wrong, with the closest names when something is misspelt.
    pub message: String,
    /// What to do about it, when there is more to say than the message.
    pub hint: Option<String>,
}

/// Errors of `acgs-core`: configuration, credentials, catalogue and money parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration file or variable names a key acgs does not know.
    #[error(
        "unknown configuration key `{key}` in {origin}{}",
        crate::suggest::did_you_mean(closest)
    )]
    UnknownConfigKey {
        /// Dotted key path.
        key: String,
        /// The file (`path:line` when the line is known) or variable that set it.
        origin: String,
        /// The known keys closest to it.
        closest: Vec<String>,
    },
    /// A configuration file is not valid TOML.
    #[error("{origin}: not valid TOML: {reason}")]
    ConfigSyntax {
        /// The file, with the line (`path:line`) when known.
        origin: String,
        /// What the parser found.
        reason: String,
    },
    /// `--profile` or `ACGS_PROFILE` names a profile no configuration file defines.
    #[error(
        "there is no profile `{profile}`{}",
        crate::suggest::did_you_mean(closest)
    )]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
        /// The profiles that exist, closest first.
        closest: Vec<String>,
        /// Every profile that exists.
        known: Vec<String>,
    },
    /// A configuration value has the wrong type or range.
    #[error("invalid configuration value for `{key}` in {origin}: {reason}")]
    InvalidConfig {
        /// Dotted key path.
        key: String,
        /// The file or variable that set it.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// An untrusted project file sets a key only trusted sources may set.
    #[error("the project file {file} may not set `{key}`")]
    UntrustedConfigKey {
        /// Dotted key path.
        key: String,
        /// The project file.
        file: PathBuf,
    },
    /// An untrusted project file or pipeline tries to loosen a limit or guard.
    #[error("`{key}` in {origin} would loosen a limit; it may only tighten it")]
    LoosensLimit {
        /// Dotted key path.
        key: String,
        /// The file that set it.
        origin: String,
    },
    /// A credential could not be found in any source.
    #[error("no {provider} key found")]
    MissingKey {
        /// Provider name.
        provider: &'static str,
        /// The variables acgs looked for.
        variables: &'static str,
    },
    /// A credential source is unsafe to read (permissions, owner) or malformed.
    #[error("refusing to read keys from {path}: {reason}")]
    UnsafeCredentialSource {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The configured `key_command` failed.
    #[error("key_command failed: {reason}")]
    KeyCommandFailed {
        /// What went wrong (never the command's output).
        reason: String,
    },
    /// A catalogue file is malformed.
    #[error("invalid model catalogue {origin}: {reason}")]
    InvalidCatalog {
        /// Where the catalogue came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The model key is not in the catalogue.
    #[error("unknown model `{key}`")]
    UnknownModel {
        /// What the user asked for.
        key: String,
        /// The closest known keys.
        closest: Vec<String>,
    },
    /// A model key matches models of several providers.
    #[error("model `{key}` exists for several providers: {candidates}")]
    AmbiguousModel {
        /// What the user asked for.
        key: String,
        /// `provider:key` forms to choose from.
        candidates: String,
    },
    /// A money amount could not be parsed exactly.
    #[error("invalid amount `{input}`: {reason}")]
    InvalidAmount {
        /// The text given.
        input: String,
        /// Why.
        reason: &'static str,
    },
    /// A file named by the user or their configuration (a configuration file, a block list)
    /// is missing, not a regular file, too large or not text.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A state file could not be read.
    #[error("could not read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl UserFacing for Error {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownConfigKey { .. } => "config.unknown_key",
            Self::ConfigSyntax { .. } => "config.syntax",
            Self::UnknownProfile { .. } => "config.unknown_profile",
            Self::InvalidConfig { .. } => "config.invalid_value",
            Self::UntrustedConfigKey { .. } => "config.untrusted_key",
            Self::LoosensLimit { .. } => "config.loosens_limit",
            Self::MissingKey { .. } => "credentials.missing",
            Self::UnsafeCredentialSource { .. } => "credentials.unsafe_source",
            Self::KeyCommandFailed { .. } => "credentials.key_command_failed",
            Self::InvalidCatalog { .. } => "catalog.invalid",
            Self::UnknownModel { .. } => "model.unknown",
            Self::AmbiguousModel { .. } => "model.ambiguous",
            Self::InvalidAmount { .. } => "money.invalid_amount",
            Self::Io { .. } => "io.read_failed",
            Self::Unreadable { .. } => "input.unreadable",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingKey { .. }
            | Self::UnsafeCredentialSource { .. }
            | Self::KeyCommandFailed { .. } => ErrorKind::Auth,
            Self::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownModel { closest, .. } if !closest.is_empty() => Some(format!(
                "did you mean {}? `acgs models` lists every key",
                closest.join(", ")
            )),
            Self::UnknownModel { .. } => Some("`acgs models` lists every key".into()),
            Self::MissingKey { variables, .. } => Some(format!(
                "set {variables} in the environment, ./.env or $XDG_CONFIG_HOME/acgs/credentials; `acgs keys status` shows what acgs finds"
            )),
            Self::UntrustedConfigKey { .. } => Some(
                "project files are untrusted; set this key in your user config ($XDG_CONFIG_HOME/acgs/config.toml) or pass --config".into(),
            ),
            Self::LoosensLimit { .. } => {
                Some("raise limits in your user config, not in a project file or pipeline".into())
            }
            Self::UnknownConfigKey { .. } => {
                Some("check the spelling; docs/configuration.md lists every key".into())
            }
            Self::UnknownProfile { known, .. } => Some(format!(
                "the profiles are {}; add a [NAME] table to your config to make another",
                known.join(", ")
            )),
            Self::UnsafeCredentialSource { .. } => {
                Some("make the file owned by you and readable only by you (chmod 600)".into())
            }
            _ => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let table = [
            (ErrorKind::Internal, 1),
            (ErrorKind::Usage, 2),
            (ErrorKind::Guard, 3),
            (ErrorKind::Money, 4),
            (ErrorKind::Auth, 5),
            (ErrorKind::Provider, 6),
            (ErrorKind::Check, 7),
        ];
        for (kind, code) in table {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn precedence_is_auth_money_guard_provider() {
        let order = [
            ErrorKind::Auth,
            ErrorKind::Money,
            ErrorKind::Guard,
            ErrorKind::Provider,
        ];
        for pair in order.windows(2) {
            assert!(pair[0].precedence() > pair[1].precedence(), "{pair:?}");
        }
    }

    #[test]
    fn unknown_model_hint_names_closest_keys() {
        let err = Error::UnknownModel {
            key: "flux_dve".into(),
            closest: vec!["flux_dev".into()],
        };
        assert_eq!(err.code(), "model.unknown");
        assert_eq!(err.kind().exit_code(), 2);
        assert!(err.hint().unwrap_or_default().contains("flux_dev"));
    }
}
