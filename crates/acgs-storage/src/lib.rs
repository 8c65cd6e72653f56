//! # acgs-storage
//!
//! Disk and databases for acgs:
//!
//! - [`output`]: the contained output tree — a directory handle opened once, no-follow exclusive
//!   creation, atomic 0600 writes whose extension is the sniffed type;
//! - [`manifest`] and [`runs`]: the per-run manifest (also the checkpoint) and the runs index;
//! - [`audit`]: the hash-chained JSONL audit log;
//! - [`ledger_sqlite`]: the embedded SQLite spend ledger; `ledger_postgres` (feature `postgres`):
//!   the shared PostgreSQL ledger;
//! - [`keys`]: first-seen dates of keys for rotation warnings.
//!
//! It hands the engine a [`output::ContainedFile`] that `acgs-http` streams into; neither crate
//! depends on the other.

pub mod audit;
mod error;
mod fsutil;
pub mod journal;
pub mod keys;
#[cfg(feature = "postgres")]
pub mod ledger_postgres;
pub mod ledger_sqlite;
mod locked;
pub mod manifest;
pub mod output;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod runs;

use std::path::Path;
use std::sync::Arc;

use acgs_core::ledger::Ledger;

pub use error::{Result, StorageError};
pub use fsutil::{
    MAX_NAME, ensure_private_dir, is_plain_stem, replace_keeping_mode, replace_private,
};

/// What opening a shared ledger may need besides its URL.
#[derive(Debug, Clone, Default)]
pub struct LedgerAccess {
    /// `PGPASSWORD`, used when the URL carries no password.
    pub password: Option<secrecy::SecretString>,
    /// `~/.pgpass`, consulted when neither the URL nor `password` has one.
    pub pgpass_file: Option<std::path::PathBuf>,
    /// Learns every password used, so that it is masked in all output.
    pub redactor: acgs_core::redact::Redactor,
}

/// Open the ledger a `ledger.url` names: `sqlite://PATH` (the embedded default) or, with the
/// `postgres` feature, `postgres://…`.
pub async fn open_ledger(url: &str, access: &LedgerAccess) -> Result<Arc<dyn Ledger>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        // Opening (or creating) the database is file work: off the async threads.
        let path = Path::new(path).to_owned();
        let opened = tokio::task::spawn_blocking(move || ledger_sqlite::SqliteLedger::open(&path))
            .await
            .map_err(|e| StorageError::Io {
                what: "opening the ledger".into(),
                source: std::io::Error::other(e),
            })??;
        return Ok(Arc::new(opened));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(
            ledger_postgres::PostgresLedger::connect(url, access).await?,
        ));
    }
    let _ = access;
    Err(StorageError::LedgerUrl {
        scheme: scheme_of(url),
        reason: if cfg!(feature = "postgres") {
            "it must start with sqlite:// or postgres://"
        } else {
            "it must start with sqlite:// (postgres:// needs the `postgres` feature)"
        },
    })
}

/// The scheme of a URL that may hold a password (`mysql` of `mysql://u:pw@h`), or `?`.
fn scheme_of(url: &str) -> String {
    url.split_once(':')
        .map(|(scheme, _)| scheme)
        .filter(|s| !s.is_empty() && s.len() <= 16)
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .unwrap_or("?")
        .to_owned()
}
