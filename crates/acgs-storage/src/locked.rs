//! Append-only files under an exclusive lock (runs index, audit log).

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd as _;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::error::{Result, StorageError};

/// A file opened for appending (0600, no symlink followed) and held under `flock(LOCK_EX)` until
/// dropped.
#[derive(Debug)]
pub(crate) struct LockedFile {
    file: std::fs::File,
}

impl LockedFile {
    /// Open (creating if needed) and lock exclusively.
    pub(crate) fn open_append(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            crate::fsutil::ensure_private_dir(parent)?;
        }
        let fd = rustix::fs::open(
            path,
            OFlags::CREATE | OFlags::APPEND | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| StorageError::io(format!("opening {}", path.display()))(e.into()))?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)?;
        Ok(Self {
            file: std::fs::File::from(fd),
        })
    }

    /// The last non-empty line (without the newline), read from the end.
    pub(crate) fn last_line(&mut self) -> Result<Option<Vec<u8>>> {
        last_line(&mut self.file)
    }

    /// Flush data to disk.
    pub(crate) fn sync(&self) -> Result<()> {
        rustix::fs::fsync(self.file.as_fd()).map_err(Into::into)
    }
}

impl std::io::Write for LockedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The last non-empty line of `file` (without the newline), read backwards from its end in 4 KiB
/// chunks, so the cost does not grow with the file.
pub(crate) fn last_line(file: &mut (impl Read + Seek)) -> Result<Option<Vec<u8>>> {
    let mut end = file
        .seek(SeekFrom::End(0))
        .map_err(StorageError::io("seeking"))?;
    let mut tail: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(4096);
        let mut chunk = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))
            .map_err(StorageError::io("seeking"))?;
        file.read_exact(&mut chunk)
            .map_err(StorageError::io("reading"))?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        let trimmed_len = tail.iter().rposition(|b| *b != b'\n').map_or(0, |i| i + 1);
        if let Some(nl) = tail[..trimmed_len].iter().rposition(|b| *b == b'\n') {
            return Ok(Some(tail[nl + 1..trimmed_len].to_vec()));
        }
        end = start;
    }
    let trimmed_len = tail.iter().rposition(|b| *b != b'\n').map_or(0, |i| i + 1);
    Ok((trimmed_len > 0).then(|| tail[..trimmed_len].to_vec()))
}
