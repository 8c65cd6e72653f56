//! Errors of `acgs-storage`.

use std::path::PathBuf;

use acgs_core::ContentType;
use acgs_core::error::{ErrorKind, UserFacing};

/// Errors of the storage layer. Paths shown are the user's own folders; file contents never are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The output root cannot be created or opened.
    #[error("the output folder {path} cannot be used: {reason}")]
    OutputRoot {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A name would leave its folder or is not a plain file stem.
    #[error("`{name}` is not allowed as a file name: {reason}")]
    UnsafeName {
        /// The name (cut to 64 characters).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An output's sniffed type is not on the task's allow-list.
    #[error("the provider returned {}, which is not an allowed output here", sniffed.map_or("content of an unknown type".to_owned(), |t| t.mime().to_owned()))]
    UnexpectedType {
        /// What the bytes are.
        sniffed: Option<ContentType>,
    },
    /// A run does not exist.
    #[error("no run `{0}` is known")]
    RunNotFound(String),
    /// A manifest or state file is malformed.
    #[error("{path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `ledger.url` names no ledger acgs can open.
    #[error("ledger.url `{scheme}` is not a ledger acgs knows: {reason}")]
    LedgerUrl {
        /// The URL's scheme (never the rest, which may hold a password).
        scheme: String,
        /// What would work.
        reason: &'static str,
    },
    /// A SQLite ledger on a network filesystem.
    #[error("the ledger {path} is on a network filesystem, where SQLite locking is unreliable")]
    NetworkFilesystem {
        /// The database path.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl StorageError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

impl From<rustix::io::Errno> for StorageError {
    fn from(errno: rustix::io::Errno) -> Self {
        Self::Io {
            what: "a file operation".into(),
            source: errno.into(),
        }
    }
}

impl UserFacing for StorageError {
    fn code(&self) -> &'static str {
        match self {
            Self::OutputRoot { .. } => "storage.output_root",
            Self::UnsafeName { .. } => "guard.unsafe_path",
            Self::UnexpectedType { .. } => "provider.unexpected_output_type",
            Self::RunNotFound(_) => "run.not_found",
            Self::Corrupt { .. } => "storage.corrupt",
            Self::NetworkFilesystem { .. } => "ledger.network_filesystem",
            Self::LedgerUrl { .. } => "config.ledger_url",
            Self::Io { .. } => "storage.io",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::UnsafeName { .. } => ErrorKind::Guard,
            Self::UnexpectedType { .. } => ErrorKind::Provider,
            Self::OutputRoot { .. }
            | Self::RunNotFound(_)
            | Self::Corrupt { .. }
            | Self::LedgerUrl { .. }
            | Self::NetworkFilesystem { .. } => ErrorKind::Usage,
            Self::Io { .. } => ErrorKind::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::UnsafeName { .. } => {
                Some("use a plain stem such as `cover-art` (letters, digits, . _ -)".into())
            }
            Self::NetworkFilesystem { .. } => {
                Some("keep the SQLite ledger on a local disk, or use a PostgreSQL ledger".into())
            }
            Self::RunNotFound(_) => Some("run ids look like 20261127T210555Z-a1b2c3".into()),
            _ => None,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
