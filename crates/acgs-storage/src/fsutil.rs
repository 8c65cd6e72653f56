//! Small file-system helpers shared by the modules of this crate.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::error::{Result, StorageError};

/// Create `dir` (and parents) and make the leaf private (0700).
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs_err::create_dir_all(dir).map_err(StorageError::io(format!("creating {}", dir.display())))?;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(StorageError::io(format!("restricting {}", dir.display())))
}

/// Replace `path` atomically with `bytes`, private (0600) from the first byte: a temporary file
/// created with that mode, synced, then renamed over `path`.
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_with_mode(path, bytes, 0o600)
}

/// Replace the file `path` names (through a symbolic link, whose target is replaced: a trusted
/// file such as the user's configuration may be one) atomically with `bytes`, keeping its
/// permission bits; a new file gets `new_mode`.
pub fn replace_keeping_mode(path: &Path, bytes: &[u8], new_mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let target = fs_err::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mode = fs_err::metadata(&target).map_or(new_mode, |m| m.permissions().mode() & 0o7777);
    replace_with_mode(&target, bytes, mode)
}

/// `tempfile` makes the temporary file beside `path` (`O_EXCL`, `mode` from the first byte, removed
/// if anything fails); it is synced, then renamed over `path`.
fn replace_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write as _;
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let written = (|| {
        let mut temp = tempfile::Builder::new()
            .prefix(".acgs-")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(folder)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(path).map(drop).map_err(|e| e.error)
    })();
    written.map_err(StorageError::io(format!("writing {}", path.display())))
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS generator does not fail on supported platforms; fall back to time-derived bytes.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
        for (b, t) in bytes.iter_mut().zip(nanos.iter().cycle()) {
            *b = *t;
        }
    }
    hex::encode(bytes)
}

/// The longest file name acgs writes in a run folder.
pub const MAX_NAME: usize = 64;

/// Whether `name` is a plain file stem: `[A-Za-z0-9._-]{1,64}`, no leading dot, no `..`.
#[must_use]
pub fn is_plain_stem(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
