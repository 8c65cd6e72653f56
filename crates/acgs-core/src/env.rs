//! A snapshot of the process environment and the standard folders derived from it.
//!
//! Nothing in the acgs libraries reads the process environment on its own: the command line takes
//! one [`ProcessEnv::capture`] at start-up and hands it to [`crate::config`] and
//! `acgs-credentials`. Tests build a [`ProcessEnv`] by hand instead of mutating the real one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Variables and working directory, captured once.
#[derive(Debug, Clone, Default)]
pub struct ProcessEnv {
    /// Environment variables (only valid UTF-8 ones).
    pub vars: BTreeMap<String, String>,
    /// The current directory.
    pub cwd: PathBuf,
}

impl ProcessEnv {
    /// Capture the real process environment and current directory.
    #[must_use]
    pub fn capture() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    /// A non-empty variable.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The standard folders for this environment.
    #[must_use]
    pub fn paths(&self) -> Paths {
        let home = self
            .var("HOME")
            .map_or_else(|| self.cwd.clone(), PathBuf::from);
        let xdg = |name: &str, fallback: &str| {
            self.var(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(fallback))
        };
        Paths {
            config_dir: xdg("XDG_CONFIG_HOME", ".config").join("acgs"),
            state_dir: xdg("XDG_STATE_HOME", ".local/state").join("acgs"),
            home,
        }
    }

    /// The OS user name (`USER`, then `LOGNAME`, then the numeric uid).
    #[must_use]
    pub fn os_user(&self) -> String {
        self.var("USER")
            .or_else(|| self.var("LOGNAME"))
            .map_or_else(
                || rustix::process::getuid().as_raw().to_string(),
                str::to_owned,
            )
    }
}

/// Where acgs keeps its own files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `$XDG_CONFIG_HOME/acgs`.
    pub config_dir: PathBuf,
    /// `$XDG_STATE_HOME/acgs`.
    pub state_dir: PathBuf,
    /// The home directory.
    pub home: PathBuf,
}

impl Paths {
    /// The user configuration file.
    #[must_use]
    pub fn user_config(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The credentials file.
    #[must_use]
    pub fn credentials(&self) -> PathBuf {
        self.config_dir.join("credentials")
    }

    /// A file in the state folder.
    #[must_use]
    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    /// Whether `path` lies inside the state folder.
    #[must_use]
    pub fn in_state_dir(&self, path: &Path) -> bool {
        path.starts_with(&self.state_dir)
    }
}
