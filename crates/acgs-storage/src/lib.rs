//! # acgs-storage
//!
//! Disk and databases for acgs:
//!
//! - [`output`]: the contained output tree — a directory handle opened once, no-follow exclusive
//!   creation, atomic 0600 writes whose extension is the sniffed type;
//! - [`manifest`] and [`runs`]: the per-run manifest (also the checkpoint) and the runs index;
//! - [`audit`]: the hash-chained JSONL audit log;
//! - [`ledger_sqlite`]: the embedded SQLite spend ledger;
//! - [`keys`]: first-seen dates of keys for rotation warnings.
//!
//! It hands the engine a [`output::ContainedFile`] that `acgs-http` streams into; neither crate
//! depends on the other.

pub mod audit;
mod error;
mod fsutil;
pub mod keys;
pub mod ledger_sqlite;
mod locked;
pub mod manifest;
pub mod output;
pub mod runs;

use std::path::Path;
use std::sync::Arc;

use acgs_core::ledger::Ledger;

pub use error::{Result, StorageError};
pub use fsutil::{ensure_private_dir, is_plain_stem};

/// Open the ledger a `ledger.url` names: `sqlite://PATH` (the embedded default).
pub fn open_ledger(url: &str) -> Result<Arc<dyn Ledger>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(ledger_sqlite::SqliteLedger::open(Path::new(
            path,
        ))?));
    }
    Err(StorageError::Corrupt {
        path: url.split("://").next().unwrap_or("ledger").into(),
        reason: "ledger.url must start with sqlite:// (postgres:// needs the `postgres` feature)"
            .into(),
    })
}
