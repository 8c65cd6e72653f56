//! The audit log: JSONL, 0600, one entry per outcome, appended under an exclusive lock, each entry
//! chained to the previous one (DESIGN.md §6).
//!
//! With a per-install secret, `prev` and `prompt_digest` are HMAC-SHA256, so the chain cannot be
//! recomputed by someone who edits the file. Without one they are plain sha256 and
//! [`verify`] says that the chain only shows edits made without recomputing it.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use acgs_core::Usd;
use acgs_core::audit::{AuditError, AuditEvent, AuditOutcome, AuditSink, Origin};
use acgs_core::task::ProviderId;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, StorageError};
use crate::fsutil::random_hex;
use crate::locked::LockedFile;

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How entries are chained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainKind {
    /// Keyed with the per-install secret.
    HmacSha256,
    /// Unkeyed: shows only edits made without recomputing the chain.
    Sha256,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3 …
    pub seq: u64,
    /// Digest of the previous line.
    pub prev: String,
    /// How `prev` and `prompt_digest` are computed.
    pub chain: ChainKind,
    /// When.
    pub ts: jiff::Timestamp,
    /// OS user.
    pub os_user: String,
    /// acgs user.
    pub user: String,
    /// The entrance (absent in entries written before entrances were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The entrance's session, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Operation.
    pub operation: String,
    /// Run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Step id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderId>,
    /// Model key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Provider request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Prompt length in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_len: Option<u64>,
    /// Keyed digest of the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_digest: Option<String>,
    /// Prompt text, only with `record_prompt_text` and never for refused requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Usd>,
    /// Actual cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<Usd>,
    /// The quantity priced, and what the provider said it billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<acgs_core::Quantity>,
    /// Key fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// Key source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_source: Option<String>,
    /// Outcome.
    pub outcome: AuditOutcome,
    /// Stable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The per-install secret that keys the chain.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// Load the secret from `path`, creating it (0600, 32 random bytes) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match acgs_core::files::read_regular_text(path, 4096) {
            Ok(text) => hex::decode(text.trim())
                .ok()
                .filter(|k| k.len() >= 32)
                .map(Self)
                .ok_or_else(|| StorageError::Corrupt {
                    path: path.to_owned(),
                    reason: "not a 32-byte hex secret".into(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    crate::fsutil::ensure_private_dir(parent)?;
                }
                // Many processes may start at once: each writes a candidate privately, and a
                // hard link (which never replaces) lets exactly one become the key.
                let candidate = path.with_extension(format!("new-{}", random_hex(4)));
                crate::fsutil::replace_private(&candidate, random_hex(32).as_bytes())?;
                let linked = fs_err::hard_link(&candidate, path);
                let _ = fs_err::remove_file(&candidate);
                match linked {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(StorageError::io("creating the audit key")(e)),
                }
                Self::load_or_create(path)
            }
            Err(e) => Err(StorageError::io("reading the audit key")(e)),
        }
    }

    /// A key from raw bytes (tests, other stores).
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A key for another use, derived from this one under `label` (so that one secret never
    /// signs two kinds of data).
    #[must_use]
    pub fn derive(&self, label: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(label.as_bytes());
        Self(mac.finalize().into_bytes().to_vec())
    }

    /// HMAC-SHA256 of `data` under this key, in hex.
    #[must_use]
    pub fn sign(&self, data: &[u8]) -> String {
        digest(Some(self), data)
    }
}

fn digest(key: Option<&AuditKey>, data: &[u8]) -> String {
    match key {
        Some(AuditKey(k)) => match Hmac::<Sha256>::new_from_slice(k) {
            Ok(mut mac) => {
                mac.update(data);
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => hex::encode(Sha256::digest(data)),
        },
        None => hex::encode(Sha256::digest(data)),
    }
}

/// The JSONL audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    key: Option<AuditKey>,
    record_prompt_text: bool,
    os_user: String,
}

impl AuditLog {
    /// The log at `path`.
    #[must_use]
    pub fn new(
        path: PathBuf,
        key: Option<AuditKey>,
        record_prompt_text: bool,
        os_user: String,
    ) -> Self {
        Self {
            path,
            key,
            record_prompt_text,
            os_user,
        }
    }

    /// The log's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ledger `meta` key this log's head is kept under: one per host and per log file, so
    /// that a ledger shared by several machines (or several logs) keeps each log's own head.
    #[must_use]
    pub fn head_key(&self) -> String {
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(64)
            .collect::<String>();
        let path = fs_err::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let id = hex::encode(Sha256::digest(path.as_os_str().as_encoded_bytes()));
        format!("audit.head:{host}:{}", &id[..16])
    }

    fn chain(&self) -> ChainKind {
        if self.key.is_some() {
            ChainKind::HmacSha256
        } else {
            ChainKind::Sha256
        }
    }

    /// Append `events` under one lock with one write and one sync: each chained to the one
    /// before it.
    fn append(&self, events: Vec<AuditEvent>) -> Result<()> {
        let mut file = LockedFile::open_append(&self.path)?;
        let (mut seq, mut prev) = match file.last_line()? {
            Some(line) => {
                let last: AuditEntry =
                    serde_json::from_slice(&line).map_err(|e| StorageError::Corrupt {
                        path: self.path.clone(),
                        reason: format!("the last entry is unreadable ({e})"),
                    })?;
                let next = last
                    .seq
                    .checked_add(1)
                    .ok_or_else(|| StorageError::Corrupt {
                        path: self.path.clone(),
                        reason: "the last entry's sequence number is at its maximum".into(),
                    })?;
                (next, digest(self.key.as_ref(), &line))
            }
            None => (1, GENESIS.to_owned()),
        };
        let mut lines = Vec::new();
        for event in events {
            let line = self.line(seq, prev, event)?;
            prev = digest(self.key.as_ref(), &line[..line.len() - 1]);
            seq = seq.saturating_add(1);
            lines.extend_from_slice(&line);
        }
        file.write_all(&lines)
            .map_err(StorageError::io("appending to the audit log"))?;
        file.sync()
    }

    /// Entry `seq` for `event`, chained to `prev`: its JSON line, newline included.
    fn line(&self, seq: u64, prev: String, event: AuditEvent) -> Result<Vec<u8>> {
        let refused = matches!(event.outcome, Some(AuditOutcome::Refused));
        let prompt = event.prompt.as_deref();
        let entry = AuditEntry {
            seq,
            prev,
            chain: self.chain(),
            ts: jiff::Timestamp::now(),
            os_user: self.os_user.clone(),
            user: event.user,
            origin: Some(event.origin),
            session: event.session,
            operation: event.operation,
            run_id: event.run_id,
            step: event.step,
            provider: event.provider,
            model: event.model,
            request_id: event.request_id,
            prompt_len: prompt.map(|p| u64::try_from(p.chars().count()).unwrap_or(u64::MAX)),
            prompt_digest: prompt.map(|p| digest(self.key.as_ref(), p.as_bytes())),
            prompt: prompt
                .filter(|_| self.record_prompt_text && !refused)
                .map(str::to_owned),
            estimate: event.estimate,
            actual: event.actual,
            quantity: event.quantity,
            key_fingerprint: event.key_fingerprint,
            key_source: event.key_source,
            outcome: event.outcome.unwrap_or(AuditOutcome::Failed),
            code: event.code,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| StorageError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        Ok(line)
    }
}

impl AuditSink for AuditLog {
    fn record(&self, event: AuditEvent) -> std::result::Result<(), AuditError> {
        self.record_all(vec![event])
    }

    fn record_all(&self, events: Vec<AuditEvent>) -> std::result::Result<(), AuditError> {
        self.append(events).map_err(|e| AuditError(e.to_string()))
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// The last `(seq, digest of the last line)`, to compare with an anchor.
    pub head: Option<(u64, String)>,
    /// Whether the chain is keyed.
    pub keyed: bool,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry at line {line}: {reason}")]
pub struct ChainBreak {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// A head kept outside the log (in the ledger, or written down by `acgs audit anchor`): the
/// sequence number and digest of an entry. A log that no longer reaches it lost its tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The entry's sequence number.
    pub seq: u64,
    /// The digest of its line.
    pub digest: String,
}

impl Anchor {
    /// Read the stored form, `seq:digest` (as `Ledger::advance_meta` ranks it by `seq`).
    #[must_use]
    pub fn from_meta(text: &str) -> Option<Self> {
        let (seq, digest) = text.split_once(':')?;
        let digest_ok = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        let seq = seq.parse().ok()?;
        digest_ok.then(|| Self {
            seq,
            digest: digest.to_owned(),
        })
    }
}

/// The head of the log at `path` (its last entry, read from the end), without checking the chain.
pub fn head(path: &Path, key: Option<&AuditKey>) -> Result<Option<Anchor>> {
    let mut file = match fs_err::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("reading the audit log")(e)),
    };
    let Some(line) = crate::locked::last_line(&mut file)? else {
        return Ok(None);
    };
    let entry: AuditEntry = serde_json::from_slice(&line).map_err(|e| StorageError::Corrupt {
        path: path.to_owned(),
        reason: format!("the last entry is unreadable ({e})"),
    })?;
    let line_key = key.filter(|_| entry.chain == ChainKind::HmacSha256);
    Ok(Some(Anchor {
        seq: entry.seq,
        digest: digest(line_key, &line),
    }))
}

/// Check the chain of the log at `path`, and that it still reaches `anchor`.
pub fn verify(
    path: &Path,
    key: Option<&AuditKey>,
    anchor: Option<&Anchor>,
) -> Result<std::result::Result<VerifyReport, ChainBreak>> {
    let file = fs_err::File::open(path).map_err(StorageError::io("reading the audit log"))?;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1u64;
    let mut head = None;
    let mut keyed = key.is_some();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let line = line.map_err(StorageError::io("reading the audit log"))?;
        if line.is_empty() {
            continue;
        }
        let broken = |reason: String| {
            Ok(Err(ChainBreak {
                line: line_no,
                reason,
            }))
        };
        let entry: AuditEntry = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(e) => return broken(format!("not a valid entry ({e})")),
        };
        if entry.chain == ChainKind::HmacSha256 && key.is_none() {
            return broken("the chain is keyed but the audit key is not available".into());
        }
        if entry.chain != ChainKind::HmacSha256 && key.is_some() {
            return broken(
                "an unkeyed entry in a log kept with an audit key: anyone could have written it"
                    .into(),
            );
        }
        keyed &= entry.chain == ChainKind::HmacSha256;
        if entry.seq != expected_seq {
            return broken(format!(
                "sequence {} where {expected_seq} was expected",
                entry.seq
            ));
        }
        if entry.prev != expected_prev {
            return broken("it does not chain to the entry before it".into());
        }
        let line_key = if entry.chain == ChainKind::HmacSha256 {
            key
        } else {
            None
        };
        expected_prev = digest(line_key, line.as_bytes());
        if anchor.is_some_and(|a| a.seq == entry.seq && a.digest != expected_prev) {
            return broken("it is not the entry the anchor recorded at this sequence".into());
        }
        head = Some((entry.seq, expected_prev.clone()));
        expected_seq = expected_seq.saturating_add(1);
    }
    if let Some(a) = anchor.filter(|a| a.seq >= expected_seq) {
        return Ok(Err(ChainBreak {
            line: expected_seq,
            reason: format!(
                "the log ends at entry {} but entry {} was anchored: entries were removed from its end",
                expected_seq - 1,
                a.seq
            ),
        }));
    }
    Ok(Ok(VerifyReport {
        entries: expected_seq - 1,
        head,
        keyed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(op: &str, prompt: Option<&str>, outcome: AuditOutcome) -> AuditEvent {
        AuditEvent {
            operation: op.into(),
            prompt: prompt.map(str::to_owned),
            user: "alice".into(),
            outcome: Some(outcome),
            ..AuditEvent::default()
        }
    }

    fn log(dir: &Path, key: bool, record: bool) -> AuditLog {
        let key = key.then(|| AuditKey::from_bytes(vec![7; 32]));
        AuditLog::new(dir.join("audit.jsonl"), key, record, "alice".into())
    }

    #[test]
    fn entries_chain_and_verify() {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = log(tmp.path(), true, false);
        for i in 0..3 {
            log.record(event(
                &format!("op{i}"),
                Some("a cat"),
                AuditOutcome::Success,
            ))
            .expect("record");
        }
        let report = verify(log.path(), Some(&AuditKey::from_bytes(vec![7; 32])), None)
            .expect("readable")
            .expect("intact");
        assert_eq!(report.entries, 3);
        assert!(report.keyed);
        let text = fs_err::read_to_string(log.path()).expect("read");
        assert!(
            !text.contains("a cat"),
            "prompt text is not kept by default"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs_err::metadata(log.path())
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }

    #[test]
    fn entries_written_at_once_chain_like_entries_written_one_by_one() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = AuditKey::from_bytes(vec![7; 32]);
        let log = log(tmp.path(), true, false);
        log.record(event("first", None, AuditOutcome::Success))
            .expect("one");
        log.record_all(
            (0..3)
                .map(|i| event(&format!("batch{i}"), None, AuditOutcome::Success))
                .collect(),
        )
        .expect("three at once");
        log.record(event("last", None, AuditOutcome::Success))
            .expect("one more");
        let report = verify(log.path(), Some(&key), None)
            .expect("readable")
            .expect("intact");
        assert_eq!(report.entries, 5);
        let operations: Vec<String> = fs_err::read_to_string(log.path())
            .expect("read")
            .lines()
            .map(|l| {
                let entry: AuditEntry = serde_json::from_str(l).expect("entry");
                format!("{}:{}", entry.seq, entry.operation)
            })
            .collect();
        assert_eq!(
            operations,
            ["1:first", "2:batch0", "3:batch1", "4:batch2", "5:last"]
        );
    }

    #[test]
    fn the_head_read_from_the_end_is_the_verified_head() {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = log(tmp.path(), true, true);
        let key = AuditKey::from_bytes(vec![7; 32]);
        assert_eq!(head(log.path(), Some(&key)).expect("no log yet"), None);
        for i in 0..40 {
            // Entries of about 1 KiB, so the last one straddles the 4 KiB chunks read backwards.
            let prompt = format!("{i} {}", "a cat on a mat ".repeat(60));
            log.record(event("op", Some(&prompt), AuditOutcome::Success))
                .expect("record");
        }
        assert!(fs_err::metadata(log.path()).expect("meta").len() > 40 * 1024);
        let verified = verify(log.path(), Some(&key), None)
            .expect("readable")
            .expect("intact")
            .head
            .expect("entries");
        let read = head(log.path(), Some(&key))
            .expect("head")
            .expect("entries");
        assert_eq!((read.seq, read.digest), verified);
        assert_eq!(read.seq, 40);
    }

    #[test]
    fn an_edited_entry_is_named() {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = log(tmp.path(), false, false);
        for i in 0..3 {
            log.record(event(&format!("op{i}"), None, AuditOutcome::Success))
                .expect("record");
        }
        let text = fs_err::read_to_string(log.path()).expect("read");
        fs_err::write(log.path(), text.replacen("op1", "opX", 1)).expect("tamper");
        let brk = verify(log.path(), None, None)
            .expect("readable")
            .expect_err("tampered");
        assert_eq!(
            brk.line, 3,
            "the entry after the edited one no longer chains"
        );
    }

    #[test]
    fn with_a_key_an_unkeyed_log_never_verifies() {
        let tmp = tempfile::tempdir().expect("tmp");
        // A whole history rewritten without the key: it chains, but unkeyed.
        let forged = log(tmp.path(), false, false);
        for i in 0..3 {
            forged
                .record(event(&format!("op{i}"), None, AuditOutcome::Success))
                .expect("record");
        }
        let key = AuditKey::from_bytes(vec![7; 32]);
        let brk = verify(forged.path(), Some(&key), None)
            .expect("readable")
            .expect_err("unkeyed entries with a key");
        assert_eq!(brk.line, 1);
        assert!(brk.reason.contains("unkeyed"), "{}", brk.reason);
        assert!(verify(forged.path(), None, None).expect("readable").is_ok());
    }

    #[test]
    fn a_forged_last_sequence_number_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = log(tmp.path(), true, false);
        log.record(event("op", None, AuditOutcome::Success))
            .expect("record");
        let text = fs_err::read_to_string(log.path()).expect("read");
        let forged = text.replacen("\"seq\":1,", &format!("\"seq\":{},", u64::MAX), 1);
        fs_err::write(log.path(), forged).expect("forge");
        let err = log
            .record(event("next", None, AuditOutcome::Success))
            .expect_err("no next number");
        assert!(err.to_string().contains("maximum"), "{err}");
        let key = AuditKey::from_bytes(vec![7; 32]);
        assert!(
            verify(log.path(), Some(&key), None)
                .expect("readable")
                .is_err()
        );
    }

    #[test]
    fn prompt_text_only_when_configured_and_never_for_refusals() {
        let tmp = tempfile::tempdir().expect("tmp");
        let log = log(tmp.path(), true, true);
        log.record(event(
            "generate",
            Some("kept prompt"),
            AuditOutcome::Success,
        ))
        .expect("ok");
        log.record(event(
            "generate",
            Some("refused prompt"),
            AuditOutcome::Refused,
        ))
        .expect("ok");
        let text = fs_err::read_to_string(log.path()).expect("read");
        assert!(text.contains("kept prompt"));
        assert!(!text.contains("refused prompt"));
    }

    #[test]
    fn processes_racing_to_create_the_key_agree_on_one() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("audit-key");
        let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| AuditKey::load_or_create(&path).expect("key").0))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "every writer uses the same key"
        );
        assert_eq!(keys[0].len(), 32);
    }

    #[test]
    fn each_log_keeps_its_own_head_in_a_shared_ledger() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = AuditLog::new(
            tmp.path().join("a/audit.jsonl"),
            None,
            false,
            "alice".into(),
        );
        let b = AuditLog::new(tmp.path().join("b/audit.jsonl"), None, false, "bob".into());
        assert_ne!(a.head_key(), b.head_key(), "two logs, two anchors");
        assert_eq!(a.head_key(), a.clone().head_key(), "stable for one log");
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let shown: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .collect();
        assert!(
            a.head_key().starts_with(&format!("audit.head:{shown}:")),
            "{}",
            a.head_key()
        );
    }

    #[test]
    fn the_install_key_is_created_once_and_private() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("cfg/audit-key");
        let a = AuditKey::load_or_create(&path).expect("created");
        let b = AuditKey::load_or_create(&path).expect("loaded");
        assert_eq!(a.0, b.0);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs_err::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }
}
