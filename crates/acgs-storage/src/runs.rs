//! Run ids and the `runs.jsonl` index that maps them to folders, so `acgs resume` works from
//! anywhere.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::fsutil::random_hex;
use crate::locked::LockedFile;

/// A new run id: `YYYYMMDDTHHMMSSZ-xxxxxx` (UTC, random suffix).
#[must_use]
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    format!("{}-{}", now.strftime("%Y%m%dT%H%M%SZ"), random_hex(3))
}

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The run id.
    pub run_id: String,
    /// Absolute path of the run folder.
    pub folder: PathBuf,
    /// When it was created.
    pub created_at: jiff::Timestamp,
}

/// The runs index.
#[derive(Debug, Clone)]
pub struct RunIndex {
    path: PathBuf,
}

impl RunIndex {
    /// The index at `path` (created on first append, 0600).
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// Record a run.
    pub fn append(&self, run_id: &str, folder: &Path) -> Result<()> {
        let entry = RunEntry {
            run_id: run_id.to_owned(),
            folder: folder.to_owned(),
            created_at: jiff::Timestamp::now(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| StorageError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut file = LockedFile::open_append(&self.path)?;
        file.write_all(&line)
            .map_err(StorageError::io("appending to runs.jsonl"))?;
        file.sync()
    }

    /// The folder of `run_id` (latest entry wins).
    pub fn find(&self, run_id: &str) -> Result<RunEntry> {
        self.entries()?
            .filter(|e| e.run_id == run_id)
            .last()
            .ok_or_else(|| StorageError::RunNotFound(run_id.to_owned()))
    }

    /// Every run, newest first, each once (its latest entry); none before the first run.
    pub fn list(&self) -> Result<Vec<RunEntry>> {
        let mut latest = std::collections::BTreeMap::new();
        for entry in self.entries()? {
            latest.insert(entry.run_id.clone(), entry);
        }
        let mut runs: Vec<RunEntry> = latest.into_values().collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(runs)
    }

    /// The readable entries, in the order they were written (unreadable lines are skipped).
    fn entries(&self) -> Result<impl Iterator<Item = RunEntry>> {
        let file = match fs_err::File::open(&self.path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::io("reading runs.jsonl")(e)),
        };
        Ok(file
            .into_iter()
            .flat_map(|f| std::io::BufReader::new(f).lines())
            .map_while(std::result::Result::ok)
            .filter_map(|line| serde_json::from_str::<RunEntry>(&line).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), "20261127T210555Z-a1b2c3".len(), "{id}");
        assert_eq!(&id[8..9], "T");
        assert_eq!(&id[15..17], "Z-");
        assert_ne!(new_run_id(), new_run_id());
    }

    #[test]
    fn index_finds_runs() {
        let tmp = tempfile::tempdir().expect("tmp");
        let index = RunIndex::new(tmp.path().join("runs.jsonl"));
        index.append("a", Path::new("/x/a")).expect("append");
        index.append("b", Path::new("/x/b")).expect("append");
        assert_eq!(
            index.find("b").expect("found").folder,
            PathBuf::from("/x/b")
        );
        assert!(index.find("c").is_err());
        index.append("a", Path::new("/y/a")).expect("moved");
        let listed = index.list().expect("list");
        assert_eq!(listed.len(), 2, "each run once");
        assert_eq!(listed[0].run_id, "a", "newest first");
        assert_eq!(listed[0].folder, PathBuf::from("/y/a"), "its latest entry");
        assert!(
            RunIndex::new(tmp.path().join("none.jsonl"))
                .list()
                .expect("empty")
                .is_empty()
        );
    }
}
