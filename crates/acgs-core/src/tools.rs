//! System programs local media steps run (ffmpeg, ffprobe): found at the path the user's own
//! configuration names, or on `PATH`. A project file can never name one (`[tools]` is refused
//! there), since a program named by someone else's folder would be code execution.
//!
//! The `PATH` search is written here rather than taken from the `which` crate: it is ten lines,
//! needs no Windows rules (root checks already fail closed off Unix), and keeps acgs-core free
//! of another dependency.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::config::ToolsConfig;

/// A system program a step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    /// ffmpeg: cutting, joining, muxing and drawing.
    Ffmpeg,
    /// ffprobe: reading what a media file holds.
    Ffprobe,
}

impl Tool {
    /// The file name looked up on `PATH`, also used in messages and as the `[tools]` key.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ffmpeg => "ffmpeg",
            Self::Ffprobe => "ffprobe",
        }
    }

    /// Its path: `configured`'s entry when set (it must be an executable file), else the first
    /// executable of that name on `path_var`. The error says what was looked at and how to fix it.
    pub fn locate(
        self,
        configured: &ToolsConfig,
        path_var: Option<&OsStr>,
    ) -> Result<PathBuf, String> {
        let set = match self {
            Self::Ffmpeg => &configured.ffmpeg,
            Self::Ffprobe => &configured.ffprobe,
        };
        let set = Some(set.as_path()).filter(|p| !p.as_os_str().is_empty());
        if let Some(path) = set {
            return if is_executable(path) {
                Ok(path.to_owned())
            } else {
                Err(format!(
                    "{} is not an executable file (set as tools.{} in your configuration)",
                    path.display(),
                    self.name()
                ))
            };
        }
        path_var
            .into_iter()
            .flat_map(std::env::split_paths)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(self.name()))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| {
                format!(
                    "{} was not found on PATH; install it (Debian: apt-get install ffmpeg) or set tools.{} in your configuration",
                    self.name(),
                    self.name()
                )
            })
    }
}

fn is_executable(path: &Path) -> bool {
    path.is_absolute()
        && fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_path_wins_and_path_is_searched_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            fs_err::create_dir(d).expect("dir");
            let exe = d.join("ffmpeg");
            fs_err::write(&exe, "#!/bin/sh\n").expect("write");
            fs_err::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        fs_err::write(a.join("ffprobe"), "not executable").expect("write");
        let path = std::env::join_paths([&a, &b]).expect("join");
        let none = ToolsConfig::default();
        assert_eq!(
            Tool::Ffmpeg.locate(&none, Some(&path)),
            Ok(a.join("ffmpeg"))
        );
        let err = Tool::Ffprobe
            .locate(&none, Some(&path))
            .expect_err("not executable");
        assert!(err.contains("not found on PATH"), "{err}");
        let set = ToolsConfig {
            ffmpeg: b.join("ffmpeg"),
            ffprobe: a.join("ffprobe"),
            ..ToolsConfig::default()
        };
        assert_eq!(Tool::Ffmpeg.locate(&set, Some(&path)), Ok(b.join("ffmpeg")));
        let err = Tool::Ffprobe
            .locate(&set, None)
            .expect_err("not executable");
        assert!(err.contains("tools.ffprobe"), "{err}");
        let relative = std::env::join_paths(["bin"]).expect("join");
        assert!(
            Tool::Ffmpeg.locate(&none, Some(&relative)).is_err(),
            "relative PATH entries are skipped"
        );
    }
}
