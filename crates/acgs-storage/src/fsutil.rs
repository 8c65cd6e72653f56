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

/// Whether `name` is a plain file stem: `[A-Za-z0-9._-]{1,64}`, no leading dot, no `..`.
#[must_use]
pub fn is_plain_stem(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
