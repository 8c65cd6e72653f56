//! # acgs-e2e
//!
//! The harness for end-to-end tests: it builds the real `acgs` binary once per test process
//! (never assuming one is present), and runs it in a [`Sandbox`] — its own home, configuration,
//! state and working folders, and an environment with nothing from the host but `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

/// The `acgs` binary, built with `cargo build -p acgs-cli --bin acgs` on first use (with
/// `--release` when this harness is itself optimized, as in benchmarks).
///
/// # Panics
/// When the build fails: the tests cannot run without the binary.
pub fn acgs_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile: &[&str] = if cfg!(debug_assertions) {
            &[]
        } else {
            &["--release"]
        };
        let output = std::process::Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "acgs-cli",
                "--bin",
                "acgs",
                "--message-format",
                "json",
            ])
            .args(profile)
            // The test process's package variables (CARGO_MANIFEST_DIR, CARGO_PKG_NAME …) would
            // make ring's build script, which watches them, see a change from the build of the
            // tests and rebuild everything above it: this build runs without them, as the tests'
            // build did.
            .env_clear()
            .envs(std::env::vars_os().filter(|(name, _)| {
                !name.to_str().is_some_and(|n| {
                    [
                        "CARGO_PKG_",
                        "CARGO_MANIFEST_",
                        "CARGO_CRATE_",
                        "CARGO_BIN_",
                    ]
                    .iter()
                    .any(|p| n.starts_with(p))
                        || n == "CARGO_PRIMARY_PACKAGE"
                        || n == "CARGO_TARGET_TMPDIR"
                })
            }))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "building acgs failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "acgs")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the acgs executable")
    })
}

/// What a finished `acgs` process left.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl Run {
    /// stdout parsed as one JSON document.
    ///
    /// # Panics
    /// When stdout is not JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// An isolated home for one test.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// Fresh folders and a minimal environment (loopback allowed for the fake servers).
    ///
    /// # Panics
    /// When a temporary folder cannot be created.
    #[must_use]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let root = dir.path();
        for sub in ["home", "config", "state", "work"] {
            fs_err::create_dir_all(root.join(sub)).expect("sandbox folder");
        }
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        env.insert("HOME".into(), root.join("home").display().to_string());
        env.insert(
            "XDG_CONFIG_HOME".into(),
            root.join("config").display().to_string(),
        );
        env.insert(
            "XDG_STATE_HOME".into(),
            root.join("state").display().to_string(),
        );
        env.insert("USER".into(), "tester".into());
        env.insert("NO_COLOR".into(), "1".into());
        env.insert("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK".into(), "true".into());
        Self { dir, env }
    }

    /// Set an environment variable for every run.
    pub fn set_env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Remove an environment variable.
    pub fn remove_env(&mut self, name: &str) -> &mut Self {
        self.env.remove(name);
        self
    }

    /// The sandbox root.
    #[must_use]
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The working folder acgs runs in.
    #[must_use]
    pub fn work(&self) -> PathBuf {
        self.root().join("work")
    }

    /// The state folder (`$XDG_STATE_HOME/acgs`).
    #[must_use]
    pub fn state(&self) -> PathBuf {
        self.root().join("state/acgs")
    }

    /// The output root (`./output`).
    #[must_use]
    pub fn output(&self) -> PathBuf {
        self.work().join("output")
    }

    /// Write the user configuration file.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn user_config(&self, text: &str) {
        let dir = self.root().join("config/acgs");
        fs_err::create_dir_all(&dir).expect("config folder");
        fs_err::write(dir.join("config.toml"), text).expect("config file");
    }

    /// Write a file in the working folder.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn work_file(&self, name: &str, text: &str) {
        fs_err::write(self.work().join(name), text).expect("work file");
    }

    /// A command for `acgs args…` in this sandbox.
    #[must_use]
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(acgs_bin());
        cmd.args(args)
            .env_clear()
            .envs(&self.env)
            .current_dir(self.work())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Run `acgs args…` to completion.
    ///
    /// # Panics
    /// When the process cannot be started.
    pub async fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().await.expect("acgs starts");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Every file under the sandbox, with its bytes (for leak checks).
    #[must_use]
    pub fn all_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs_err::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(bytes) = fs_err::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        out
    }

    /// The run folders under the output root.
    #[must_use]
    pub fn run_folders(&self) -> Vec<PathBuf> {
        fs_err::read_dir(self.output())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }
}
