//! The contained output tree (DESIGN.md §6).
//!
//! The output root is opened once (it may itself be a symlink, resolved that once); run folders and
//! files below it are created relative to directory handles with `O_NOFOLLOW` and exclusive
//! creation, so no path component is ever re-resolved and nothing can be redirected outside.
//! Files are written to a temporary name, synced, sniffed, and renamed without replacing into
//! `<stem>.<ext>` where the extension is the sniffed type's; the folder is then synced. A file that
//! is not finished is removed: no partial file is left behind.
//!
//! These writes stay hand-written rather than going through `tempfile` (which the rest of the
//! crate's atomic writes use): `tempfile` names its files by path and renames with replacement,
//! while these are made relative to a held folder handle with `O_NOFOLLOW`, renamed without
//! replacing, and many files share one folder sync.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use acgs_core::ContentType;
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWrite;

use crate::error::{Result, StorageError};
use crate::fsutil::{ensure_private_dir, is_plain_stem, random_hex};

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;
const HEAD_BYTES: usize = 64;

/// The output root, opened once.
#[derive(Debug, Clone)]
pub struct OutputRoot {
    dir: Arc<OwnedFd>,
    path: PathBuf,
}

impl OutputRoot {
    /// Create the folder if needed (0700) and open it.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |reason: String| StorageError::OutputRoot {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            ensure_private_dir(path).map_err(|e| fail(e.to_string()))?;
        }
        let dir = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail(std::io::Error::from(e).to_string()))?;
        let resolved = fs_err::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(Self {
            dir: Arc::new(dir),
            path: resolved,
        })
    }

    /// The resolved path of the root.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Create a new run folder `<root>/<run_id>` (0700); an existing one is never reused.
    pub fn create_run(&self, run_id: &str) -> Result<RunDir> {
        check_name(run_id)?;
        rustix::fs::mkdirat(&*self.dir, run_id, Mode::from_raw_mode(DIR_MODE))
            .map_err(|e| StorageError::io(format!("creating run folder {run_id}"))(e.into()))?;
        self.open_run(run_id)
    }

    /// Open an existing run folder without following a symlink in its place.
    pub fn open_run(&self, run_id: &str) -> Result<RunDir> {
        check_name(run_id)?;
        let dir = rustix::fs::openat(
            &*self.dir,
            run_id,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => StorageError::RunNotFound(run_id.to_owned()),
            other => StorageError::io(format!("opening run folder {run_id}"))(other.into()),
        })?;
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(DIR_MODE))?;
        Ok(RunDir {
            dir: Arc::new(dir),
            path: self.path.join(run_id),
        })
    }
}

fn check_name(name: &str) -> Result<()> {
    if is_plain_stem(name) {
        Ok(())
    } else {
        Err(StorageError::UnsafeName {
            name: name.chars().take(64).collect(),
            reason: "names are 1–64 of [A-Za-z0-9._-] without a leading dot or `..`",
        })
    }
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    dir: Arc<OwnedFd>,
    path: PathBuf,
}

/// A finished output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// File name inside the run folder.
    pub name: String,
    /// Absolute path (for display).
    pub path: PathBuf,
    /// Sniffed type.
    pub content_type: ContentType,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

impl RunDir {
    /// The folder's path (for display and the runs index).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new private (0600 whatever the umask) temporary file in this folder, and its name.
    fn create_temp(&self, what: &str) -> Result<(String, OwnedFd)> {
        let name = format!(".partial-{}", random_hex(8));
        let fd = rustix::fs::openat(
            &*self.dir,
            name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )
        .map_err(|e| StorageError::io(what.to_owned())(e.into()))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE))?;
        Ok((name, fd))
    }

    /// A new private temporary file in this folder.
    pub fn create_file(&self) -> Result<ContainedFile> {
        let (name, fd) = self.create_temp("creating an output file")?;
        let file = std::fs::File::from(fd);
        Ok(ContainedFile {
            dir: Arc::clone(&self.dir),
            dir_path: self.path.clone(),
            temp_name: Some(name),
            file: tokio::fs::File::from_std(file),
            head: Vec::with_capacity(HEAD_BYTES),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Write `bytes` atomically as `<stem>.<ext>`, the extension taken from the sniffed type
    /// (binary media) or `text_type` (text the model produced).
    pub async fn write_bytes(
        &self,
        stem: &str,
        bytes: &[u8],
        allowed: &[ContentType],
        text_type: Option<ContentType>,
    ) -> Result<StoredFile> {
        check_name(stem)?;
        let content_type =
            content_type_of(&bytes[..bytes.len().min(HEAD_BYTES)], allowed, text_type)?;
        let (run, stem, bytes) = (self.clone(), stem.to_owned(), bytes.to_vec());
        // One trip to a blocking thread for the whole write, sync, rename and folder sync.
        tokio::task::spawn_blocking(move || run.write_now(&stem, &bytes, content_type))
            .await
            .map_err(|e| StorageError::io("writing an output file")(std::io::Error::other(e)))?
    }

    fn write_now(&self, stem: &str, bytes: &[u8], content_type: ContentType) -> Result<StoredFile> {
        let (temp, fd) = self.create_temp("creating an output file")?;
        let named = write_all_sync(&fd, bytes)
            .and_then(|()| rustix::fs::fsync(&fd).map_err(Into::into))
            .and_then(|()| publish(&self.dir, &temp, stem, content_type));
        if named.is_err() {
            let _ = rustix::fs::unlinkat(&*self.dir, temp.as_str(), AtFlags::empty());
        }
        let name = named?;
        Ok(StoredFile {
            path: self.path.join(&name),
            name,
            content_type,
            bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            sha256: hex::encode(Sha256::digest(bytes)),
        })
    }

    /// Replace `name` atomically with `bytes` (manifests and other state in the run folder).
    pub fn replace(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.replace_all(&[(name, bytes)])
    }

    /// Replace each named file atomically with its bytes, as [`RunDir::replace`] does: all are
    /// written before the first is synced (so the file system can flush them together), then
    /// renamed in order, with one folder sync for them all. On a failure none is replaced, or
    /// (a failed rename or folder sync) those before it are, maybe not yet durably.
    pub fn replace_all(&self, files: &[(&str, &[u8])]) -> Result<()> {
        let mut temps = Vec::with_capacity(files.len());
        let result = self.write_temps(files, &mut temps).and_then(|()| {
            for (fd, _) in &temps {
                rustix::fs::fsync(fd)?;
            }
            for ((_, temp), (name, _)) in temps.iter().zip(files) {
                rustix::fs::renameat(&*self.dir, temp.as_str(), &*self.dir, *name)?;
            }
            Ok(rustix::fs::fsync(&*self.dir)?)
        });
        if result.is_err() {
            for (_, temp) in &temps {
                let _ = rustix::fs::unlinkat(&*self.dir, temp.as_str(), AtFlags::empty());
            }
        }
        result
    }

    /// Each of `files` written to a new temporary file, pushed to `temps` as it is created.
    fn write_temps(
        &self,
        files: &[(&str, &[u8])],
        temps: &mut Vec<(OwnedFd, String)>,
    ) -> Result<()> {
        for (name, bytes) in files {
            check_name(name)?;
            let (temp, fd) = self.create_temp(&format!("writing {name}"))?;
            let written = write_all_sync(&fd, bytes);
            temps.push((fd, temp));
            written?;
        }
        Ok(())
    }

    /// Open `name` in this folder for appending, refusing symlinks; created private (0600) if
    /// missing, with the folder synced so that the new file survives a crash.
    pub fn open_append(&self, name: &str) -> Result<std::fs::File> {
        check_name(name)?;
        let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let failed = |e: Errno| StorageError::io(format!("opening {name}"))(e.into());
        let fd = match rustix::fs::openat(
            &*self.dir,
            name,
            flags | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(FILE_MODE),
        ) {
            Ok(fd) => {
                rustix::fs::fsync(&*self.dir).map_err(failed)?;
                fd
            }
            Err(Errno::EXIST) => {
                rustix::fs::openat(&*self.dir, name, flags, Mode::empty()).map_err(failed)?
            }
            Err(e) => return Err(failed(e)),
        };
        Ok(std::fs::File::from(fd))
    }

    /// Remove `name` from this folder; a file already gone is not an error.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        match rustix::fs::unlinkat(&*self.dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(StorageError::io(format!("removing {name}"))(e.into())),
        }
    }

    /// Read a small file of this folder (manifests), refusing symlinks.
    pub fn read(&self, name: &str, cap: u64) -> Result<Vec<u8>> {
        self.read_if_exists(name, cap)?.ok_or_else(|| {
            StorageError::io(format!("reading {name}"))(std::io::ErrorKind::NotFound.into())
        })
    }

    /// Like [`RunDir::read`], with `None` for a file that does not exist.
    pub fn read_if_exists(&self, name: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        use std::io::Read as _;
        check_name(name)?;
        let fd = match rustix::fs::openat(
            &*self.dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(StorageError::io(format!("reading {name}"))(e.into())),
        };
        let file = std::fs::File::from(fd);
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        if !regular {
            return Err(StorageError::io(format!("reading {name}"))(
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        let mut out = Vec::new();
        file.take(cap)
            .read_to_end(&mut out)
            .map_err(StorageError::io(format!("reading {name}")))?;
        Ok(Some(out))
    }

    /// sha256 and size of a file in this folder (to check reused outputs).
    pub fn digest(&self, name: &str) -> Result<(String, u64)> {
        use std::io::Read as _;
        check_name(name)?;
        let fd = rustix::fs::openat(
            &*self.dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StorageError::io(format!("reading {name}"))(e.into()))?;
        let mut file = std::fs::File::from(fd);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(StorageError::io(format!("reading {name}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += u64::try_from(n).unwrap_or(0);
        }
        Ok((hex::encode(hasher.finalize()), total))
    }
}

/// The type of an output whose first bytes are `head` (or `text_type`, for text the model
/// produced), refused unless `allowed`.
fn content_type_of(
    head: &[u8],
    allowed: &[ContentType],
    text_type: Option<ContentType>,
) -> Result<ContentType> {
    let content_type = match text_type {
        Some(t) => t,
        None => ContentType::sniff(head).ok_or(StorageError::UnexpectedType { sniffed: None })?,
    };
    if allowed.contains(&content_type) {
        Ok(content_type)
    } else {
        Err(StorageError::UnexpectedType {
            sniffed: Some(content_type),
        })
    }
}

/// Give the synced temporary file `temp` in `dir` its name, `<stem>.<ext>`, never replacing a
/// file; the folder is then synced. Returns the name.
fn publish(dir: &OwnedFd, temp: &str, stem: &str, content_type: ContentType) -> Result<String> {
    let name = format!("{stem}.{}", content_type.extension());
    rustix::fs::renameat_with(dir, temp, dir, name.as_str(), RenameFlags::NOREPLACE)
        .map_err(|e| StorageError::io(format!("naming {name}"))(e.into()))?;
    rustix::fs::fsync(dir)?;
    Ok(name)
}

fn write_all_sync(fd: &OwnedFd, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        let n = rustix::io::write(fd, bytes)?;
        bytes = &bytes[n..];
    }
    Ok(())
}

/// A temporary output file being written. Dropping it unfinished removes it.
#[derive(Debug)]
pub struct ContainedFile {
    dir: Arc<OwnedFd>,
    dir_path: PathBuf,
    temp_name: Option<String>,
    file: tokio::fs::File,
    head: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
}

impl ContainedFile {
    /// Bytes written so far.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Sync, sniff and rename to `<stem>.<ext>`. Binary media is identified by its
    /// magic bytes and must be on `allowed`; `text_type` names the type of model-produced text.
    /// On any failure the temporary file is removed.
    pub async fn finish(
        mut self,
        stem: &str,
        allowed: &[ContentType],
        text_type: Option<ContentType>,
    ) -> Result<StoredFile> {
        let result = self.finish_inner(stem, allowed, text_type).await;
        if result.is_err() {
            self.discard();
        }
        result
    }

    async fn finish_inner(
        &mut self,
        stem: &str,
        allowed: &[ContentType],
        text_type: Option<ContentType>,
    ) -> Result<StoredFile> {
        check_name(stem)?;
        let content_type = content_type_of(&self.head, allowed, text_type)?;
        self.file
            .sync_all()
            .await
            .map_err(StorageError::io("syncing an output file"))?;
        let temp = self.temp_name.clone().unwrap_or_default();
        let name = publish(&self.dir, &temp, stem, content_type)?;
        self.temp_name = None;
        let hasher = std::mem::take(&mut self.hasher);
        Ok(StoredFile {
            path: self.dir_path.join(&name),
            name,
            content_type,
            bytes: self.bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Remove the temporary file now.
    pub fn discard(&mut self) {
        if let Some(name) = self.temp_name.take() {
            let _ = rustix::fs::unlinkat(&*self.dir, name.as_str(), AtFlags::empty());
        }
    }
}

impl Drop for ContainedFile {
    fn drop(&mut self) {
        self.discard();
    }
}

impl AsyncWrite for ContainedFile {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.file).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                let written = &buf[..n];
                let room = HEAD_BYTES.saturating_sub(this.head.len());
                this.head
                    .extend_from_slice(&written[..written.len().min(room)]);
                this.hasher.update(written);
                this.bytes += u64::try_from(n).unwrap_or(0);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.file).poll_shutdown(cx)
    }
}

/// A new run folder `id` under `tmp` (for the crate's tests).
#[cfg(test)]
pub(crate) fn run_in(tmp: &tempfile::TempDir, id: &str) -> RunDir {
    OutputRoot::open(tmp.path())
        .expect("root")
        .create_run(id)
        .expect("run")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRrest-of-image";

    fn mode(path: &Path) -> u32 {
        fs_err::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[tokio::test]
    async fn files_are_private_atomic_and_named_by_sniffed_type() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = OutputRoot::open(&tmp.path().join("out")).expect("root");
        let run = root.create_run("20261127T000000Z-abcdef").expect("run");
        let stored = run
            .write_bytes("image-1", PNG, &[ContentType::Png], None)
            .await
            .expect("stored");
        assert_eq!(stored.name, "image-1.png");
        assert_eq!(mode(&stored.path), 0o600);
        assert_eq!(mode(run.path()), 0o700);
        let names: Vec<_> = fs_err::read_dir(run.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    }

    #[tokio::test]
    async fn disallowed_or_unknown_types_leave_nothing() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = run_in(&tmp, "r1");
        let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
        assert!(
            run.write_bytes("x", svg, &[ContentType::Png], None)
                .await
                .is_err()
        );
        assert!(
            run.write_bytes("x", PNG, &[ContentType::Mp4], None)
                .await
                .is_err()
        );
        assert_eq!(fs_err::read_dir(run.path()).expect("list").count(), 0);
    }

    #[tokio::test]
    async fn names_cannot_escape_or_replace() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = OutputRoot::open(tmp.path()).expect("root");
        for bad in ["../x", "a/b", ".hidden", "", "x..y"] {
            assert!(root.create_run(bad).is_err(), "{bad}");
        }
        let run = root.create_run("r2").expect("run");
        assert!(
            run.write_bytes("../escape", PNG, &[ContentType::Png], None)
                .await
                .is_err()
        );
        run.write_bytes("same", PNG, &[ContentType::Png], None)
            .await
            .expect("first");
        assert!(
            run.write_bytes("same", PNG, &[ContentType::Png], None)
                .await
                .is_err(),
            "never overwrites"
        );
        assert!(
            root.create_run("r2").is_err(),
            "run folders are never reused"
        );
    }

    #[test]
    fn several_files_are_replaced_together_or_not_at_all() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = run_in(&tmp, "r3");
        run.replace("b.json", b"old").expect("old b");
        let listing = || {
            let mut names: Vec<String> = fs_err::read_dir(run.path())
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert!(
            run.replace_all(&[("a.json", b"new a"), ("b.json", b"new b"), ("../c", b"c")])
                .is_err()
        );
        assert_eq!(
            listing(),
            ["b.json"],
            "no temporary file is left, nothing replaced"
        );
        assert_eq!(fs_err::read(run.path().join("b.json")).expect("b"), b"old");

        run.replace_all(&[("a.json", b"new a"), ("b.json", b"new b")])
            .expect("replaced");
        assert_eq!(listing(), ["a.json", "b.json"]);
        for (name, bytes) in [("a.json", b"new a"), ("b.json", b"new b")] {
            let path = run.path().join(name);
            assert_eq!(fs_err::read(&path).expect(name), bytes);
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }

    #[tokio::test]
    async fn a_symlinked_run_folder_is_not_followed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let outside = tmp.path().join("outside");
        fs_err::create_dir(&outside).expect("mkdir");
        let root_path = tmp.path().join("out");
        let root = OutputRoot::open(&root_path).expect("root");
        std::os::unix::fs::symlink(&outside, root_path.join("evil")).expect("symlink");
        assert!(root.open_run("evil").is_err());
    }

    #[tokio::test]
    async fn dropping_an_unfinished_file_removes_it() {
        use tokio::io::AsyncWriteExt as _;
        let tmp = tempfile::tempdir().expect("tmp");
        let run = run_in(&tmp, "r3");
        let mut f = run.create_file().expect("file");
        f.write_all(PNG).await.expect("write");
        drop(f);
        assert_eq!(fs_err::read_dir(run.path()).expect("list").count(), 0);
    }

    #[test]
    fn replace_is_atomic() {
        let tmp = tempfile::tempdir().expect("tmp");
        let run = run_in(&tmp, "r4");
        run.replace("manifest.json", b"{\"a\":1}").expect("first");
        run.replace("manifest.json", b"{\"a\":2}").expect("second");
        assert_eq!(run.read("manifest.json", 1024).expect("read"), b"{\"a\":2}");
        assert_eq!(mode(&run.path().join("manifest.json")), 0o600);
    }
}
