//! Reading a file acgs was pointed at without trusting what it is: opened without blocking (a
//! FIFO never hangs the process), checked on the open handle to be a regular file (not a
//! device such as `/dev/zero`, a FIFO or a folder), and read up to a cap.

use std::io::{self, Read as _};
use std::path::Path;

use fs_err::os::unix::fs::OpenOptionsExt as _;

/// Open `path` for reading, refusing anything but a regular file without blocking on it.
pub fn open_regular(path: &Path) -> io::Result<fs_err::File> {
    let nonblocking = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0);
    let file = fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Where an open file really is: the kernel's path of the handle, whatever links and `..` led to
/// it (Linux: `/proc/self/fd`). Elsewhere it is `Unsupported`, so that a caller checking where a
/// file lies fails closed.
pub fn real_path(file: &std::fs::File) -> io::Result<std::path::PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the path of an open file cannot be read on this system",
        ))
    }
}

/// The bytes of the regular file at `path`, refused when larger than `cap`.
pub fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    read_capped(open_regular(path)?, cap)
}

/// The bytes of an opened file, refused when larger than `cap`.
pub fn read_capped(file: impl io::Read, cap: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(bytes)
}

/// Why reading `path` failed, for [`crate::Error::Unreadable`] (a missing file reads `not
/// found`).
#[must_use]
pub fn unreadable(path: &Path, error: &io::Error) -> crate::Error {
    let reason = match error.kind() {
        io::ErrorKind::NotFound => "not found".to_owned(),
        io::ErrorKind::InvalidInput | io::ErrorKind::FileTooLarge | io::ErrorKind::InvalidData => {
            error.to_string()
        }
        kind => kind.to_string(),
    };
    crate::Error::Unreadable {
        path: path.to_owned(),
        reason,
    }
}

/// The UTF-8 text of the regular file at `path`, refused when larger than `cap`.
pub fn read_regular_text(path: &Path, cap: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, cap)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_folders_and_large_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("fifo");
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let err = read_regular(path, 1024).expect_err("not a regular file");
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{}",
                path.display()
            );
        }
        let big = dir.path().join("big");
        fs_err::write(&big, vec![b'x'; 2048]).expect("big");
        assert_eq!(
            read_regular(&big, 1024).expect_err("capped").kind(),
            io::ErrorKind::FileTooLarge
        );
        assert_eq!(read_regular(&big, 2048).expect("at the cap").len(), 2048);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).expect("link");
        let opened = open_regular(&dir.path().join(".").join("link")).expect("opened");
        assert_eq!(
            real_path(opened.file()).expect("real path"),
            fs_err::canonicalize(&big).expect("canonical"),
            "links and dots resolved"
        );
        fs_err::write(&big, [0xff, 0xfe]).expect("binary");
        assert_eq!(
            read_regular_text(&big, 1024).expect_err("not text").kind(),
            io::ErrorKind::InvalidData
        );
    }
}
