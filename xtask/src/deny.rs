//! `cargo deny`: bans, licenses and sources offline; advisories from the live RustSec database
//! when it can be fetched, else from the snapshot in `xtask/advisory-db/` (the date of the
//! snapshot is printed, with a warning when it is older than 90 days).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::ci::{cargo_has, run_cmd, say, workspace_root};

/// The directory cargo-deny derives from the default RustSec URL.
const DB_DIR: &str = "advisory-dbs/advisory-db-3157b0e258782691";

/// Run every check.
pub(crate) fn check() -> Result<()> {
    if !cargo_has("deny") {
        bail!(
            "cargo-deny is not installed (`.ci/run` installs it; or `cargo install cargo-deny --locked`)"
        );
    }
    run_cmd("cargo", &["fetch", "--locked"], &[])?;
    run_cmd(
        "cargo",
        &["deny", "--offline", "check", "bans", "licenses", "sources"],
        &[],
    )?;
    say("$ cargo deny check advisories   (live database)");
    let live = Command::new("cargo")
        .args(["deny", "check", "advisories"])
        .current_dir(workspace_root())
        .status()
        .is_ok_and(|s| s.success());
    if live {
        say("advisories: checked against the live RustSec database");
        return Ok(());
    }
    let (snapshot, date) = snapshot()?;
    restore(&snapshot)?;
    say(&format!(
        "advisories: the live database is unreachable; using the snapshot of {date}"
    ));
    warn_if_stale(&date);
    run_cmd("cargo", &["deny", "--offline", "check", "advisories"], &[])
}

fn snapshot() -> Result<(PathBuf, String)> {
    let dir = workspace_root().join("xtask/advisory-db");
    let entry = fs_err::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".tar.gz"))
        })
        .context("no advisory snapshot in xtask/advisory-db")?;
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let date = name
        .trim_start_matches("rustsec-advisory-db-")
        .trim_end_matches(".tar.gz")
        .to_owned();
    Ok((entry, date))
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// Extract the snapshot where cargo-deny looks, as a git repository with a HEAD.
fn restore(snapshot: &Path) -> Result<()> {
    let db = cargo_home().join(DB_DIR);
    if db.join(".git").exists() {
        let _ = fs_err::remove_dir_all(&db);
    }
    fs_err::create_dir_all(&db).with_context(|| format!("creating {}", db.display()))?;
    let db_text = db.to_string_lossy().into_owned();
    let snap_text = snapshot.to_string_lossy().into_owned();
    run_cmd("tar", &["-xzf", &snap_text, "-C", &db_text], &[])?;
    let flatten_single_dir = fs_err::read_dir(&db)?
        .flatten()
        .map(|e| e.path())
        .collect::<Vec<_>>();
    if let [only] = flatten_single_dir.as_slice()
        && only.is_dir()
        && !only.join(".git").exists()
        && !only.ends_with("crates")
    {
        for entry in fs_err::read_dir(only)?.flatten() {
            fs_err::rename(entry.path(), db.join(entry.file_name()))?;
        }
        fs_err::remove_dir(only)?;
    }
    let git = |args: &[&str]| run_cmd("git", &[&["-C", db_text.as_str()][..], args].concat(), &[]);
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&[
        "-c",
        "user.name=acgs",
        "-c",
        "user.email=acgs@localhost",
        "commit",
        "-qm",
        "snapshot",
    ])
}

fn warn_if_stale(date: &str) {
    let today = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let days = |d: &str| -> Option<i64> {
        let mut parts = d.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (parts.next()??, parts.next()??, parts.next()??);
        Some(y * 365 + y / 4 + (m - 1) * 30 + day)
    };
    if let (Some(now), Some(then)) = (days(&today), days(date))
        && now - then > 90
    {
        say(&format!(
            "warning: the advisory snapshot is {} days old; advisories published since {date} are not checked",
            now - then
        ));
    }
}
