//! First-seen dates of keys (`<state>/keys.json`), so every key source ages and rotation can be
//! advised. Only fingerprints are stored, never keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::locked::LockedFile;

/// Keys older than this get a rotation warning.
pub const ROTATION_DAYS: i64 = 90;

/// First-seen dates by key fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAges {
    /// Fingerprint → first seen.
    pub first_seen: BTreeMap<String, jiff::Timestamp>,
}

/// The `keys.json` file.
#[derive(Debug, Clone)]
pub struct KeyAgeStore {
    path: PathBuf,
}

impl KeyAgeStore {
    /// The store at `path`.
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Read the ages (empty when the file does not exist or is unreadable).
    #[must_use]
    pub fn load(&self) -> KeyAges {
        acgs_core::files::read_regular(&self.path, 1024 * 1024)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Record `fingerprints` as seen now (keeping earlier dates) and return each one's age in days.
    pub fn observe(&self, fingerprints: &[String]) -> Result<BTreeMap<String, i64>> {
        let now = jiff::Timestamp::now();
        let lock_path = with_suffix(&self.path, ".lock");
        let _lock = LockedFile::open_append(&lock_path)?;
        let mut ages = self.load();
        let mut changed = false;
        for fp in fingerprints {
            if !ages.first_seen.contains_key(fp) {
                ages.first_seen.insert(fp.clone(), now);
                changed = true;
            }
        }
        if changed {
            self.write(&ages)?;
        }
        Ok(fingerprints
            .iter()
            .map(|fp| {
                let since = ages.first_seen.get(fp).copied().unwrap_or(now);
                (fp.clone(), (now.as_second() - since.as_second()) / 86_400)
            })
            .collect())
    }

    fn write(&self, ages: &KeyAges) -> Result<()> {
        let json = serde_json::to_vec_pretty(ages).map_err(|e| StorageError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        crate::fsutil::replace_private(&self.path, &json)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_dates_are_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = KeyAgeStore::new(tmp.path().join("state/keys.json"));
        let ages = store.observe(&["abc123abc123".into()]).expect("observe");
        assert_eq!(ages.get("abc123abc123"), Some(&0));
        let first = store.load().first_seen.get("abc123abc123").copied();
        store
            .observe(&["abc123abc123".into(), "def".into()])
            .expect("again");
        assert_eq!(store.load().first_seen.get("abc123abc123").copied(), first);
        assert_eq!(store.load().first_seen.len(), 2);
    }
}
