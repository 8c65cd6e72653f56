//! The pending-settlements journal: a settle or release that could not reach the ledger is written
//! here (the reservation stays counted meanwhile) and retried by the next command.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;

use acgs_core::Usd;
use acgs_core::ledger::{Ledger, LedgerError, ReservationId};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::locked::LockedFile;

/// What to do to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PendingAction {
    /// Settle at this cost.
    Settle {
        /// The cost.
        actual: Usd,
    },
    /// Release (nothing billed).
    Release,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// The reservation.
    pub reservation_id: ReservationId,
    /// What to do.
    #[serde(flatten)]
    pub action: PendingAction,
}

/// The journal file (`<state>/pending-settlements.jsonl`).
#[derive(Debug, Clone)]
pub struct SettlementJournal {
    path: PathBuf,
}

/// What a retry achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// Entries applied (or found already applied).
    pub applied: usize,
    /// Entries still pending.
    pub remaining: usize,
}

impl SettlementJournal {
    /// The journal at `path`.
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Append an entry.
    pub fn record(&self, entry: &PendingEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(|e| StorageError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let _guard = self.lock()?;
        let mut file = LockedFile::open_append(&self.path)?;
        file.write_all(&line)
            .map_err(StorageError::io("writing the settlement journal"))?;
        file.sync()
    }

    /// The journal's own lock file. `retry` replaces the journal by a rename, so a lock on the
    /// journal itself would be a lock on a file that may be gone: an entry appended by a
    /// process that waited on it would land in the replaced file and be lost.
    fn lock(&self) -> Result<LockedFile> {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        LockedFile::open_append(&self.path.with_file_name(name))
    }

    /// Apply every entry to `ledger`; entries that still fail stay in the journal.
    pub async fn retry(&self, ledger: &dyn Ledger) -> Result<RetryReport> {
        if !self.path.exists() {
            return Ok(RetryReport::default());
        }
        let lock = self.lock()?;
        let entries: Vec<PendingEntry> = std::io::BufReader::new(
            fs_err::File::open(&self.path)
                .map_err(StorageError::io("reading the settlement journal"))?,
        )
        .lines()
        .map_while(std::result::Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
        let mut remaining = Vec::new();
        let mut applied = 0;
        for entry in entries {
            let result = match &entry.action {
                PendingAction::Settle { actual } => ledger
                    .settle(&entry.reservation_id, *actual)
                    .await
                    .map(|_| ()),
                PendingAction::Release => ledger.release(&entry.reservation_id).await,
            };
            match result {
                Ok(()) | Err(LedgerError::InvalidTransition { .. }) => applied += 1,
                Err(_) => remaining.push(entry),
            }
        }
        let mut text = String::new();
        for entry in &remaining {
            text.push_str(&serde_json::to_string(entry).unwrap_or_default());
            text.push('\n');
        }
        crate::fsutil::replace_private(&self.path, text.as_bytes())?;
        drop(lock);
        Ok(RetryReport {
            applied,
            remaining: remaining.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger_sqlite::SqliteLedger;
    use acgs_core::ProviderId;
    use acgs_core::ledger::{ReservationState, ReserveRequest};
    use std::time::Duration;

    #[test]
    fn an_entry_recorded_while_the_journal_is_rewritten_is_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let journal = SettlementJournal::new(tmp.path().join("pending.jsonl"));
        let entry = |id: &str| PendingEntry {
            reservation_id: ReservationId(id.into()),
            action: PendingAction::Release,
        };
        journal.record(&entry("first")).expect("record");
        // What `retry` does under the lock: the journal replaced by a new file.
        let held = journal.lock().expect("lock");
        let writer = {
            let journal = SettlementJournal::new(journal.path.clone());
            std::thread::spawn(move || journal.record(&entry("second")))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!writer.is_finished(), "the writer waits for the lock");
        crate::fsutil::replace_private(&journal.path, b"").expect("rewrite");
        drop(held);
        writer.join().expect("thread").expect("recorded");
        let text = fs_err::read_to_string(&journal.path).expect("read");
        assert!(
            text.contains("second"),
            "the entry is in the journal that is there: {text:?}"
        );
    }

    #[tokio::test]
    async fn pending_settlements_are_applied_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ledger = SqliteLedger::open(&tmp.path().join("l.sqlite3")).expect("ledger");
        let r = ledger
            .reserve(ReserveRequest {
                run_id: "r".into(),
                step: "s".into(),
                provider: ProviderId::Fal,
                model: "m".into(),
                user: "u".into(),
                amount: Usd::parse("0.50").expect("usd"),
                daily_limit: Usd::from_dollars(1),
                timezone: "UTC".into(),
                lease: Duration::from_secs(60),
                scopes: Vec::new(),
            })
            .await
            .expect("reserved");
        let journal = SettlementJournal::new(tmp.path().join("pending.jsonl"));
        let entry = PendingEntry {
            reservation_id: r.id.clone(),
            action: PendingAction::Settle {
                actual: Usd::parse("0.25").expect("usd"),
            },
        };
        journal.record(&entry).expect("recorded");
        journal.record(&entry).expect("recorded twice");
        let report = journal.retry(&ledger).await.expect("retried");
        assert_eq!(
            report,
            RetryReport {
                applied: 2,
                remaining: 0
            }
        );
        let rows = ledger.reservations(None).await.expect("rows");
        assert_eq!(rows[0].state, ReservationState::Settled);
        assert_eq!(rows[0].actual, Some(Usd::parse("0.25").expect("usd")));
        assert_eq!(
            journal.retry(&ledger).await.expect("empty"),
            RetryReport::default()
        );
    }
}
