//! `cargo xtask ci`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Print a line on stderr (xtask output is for humans and CI logs).
pub(crate) fn say(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Run a command in the workspace root, failing on a non-zero exit.
pub(crate) fn run_cmd(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    run_cmd_env(&workspace_root(), program, args, envs)
}

/// Run a command in `dir`, failing on a non-zero exit.
pub(crate) fn run_cmd_in(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    run_cmd_env(dir, program, args, &[])
}

/// A variable cargo sets for the package it runs (not one a user sets, like CARGO_TARGET_DIR).
fn is_package_variable(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || name == "CARGO_PRIMARY_PACKAGE"
        || name == "CARGO_TARGET_TMPDIR"
}

fn run_cmd_env(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    say(&format!("$ {program} {}", args.join(" ")));
    // `cargo run` gave this process xtask's package variables (CARGO_MANIFEST_DIR,
    // CARGO_PKG_NAME …). A build script that watches them (ring's) would see them change between
    // this build and the e2e harness's build of the binary, and rebuild everything above it each
    // time: neither passes them on.
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_package_variable) {
            command.env_remove(name);
        }
    }
    let status = command
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Whether `cargo <sub> --version` works.
pub(crate) fn cargo_has(sub: &str) -> bool {
    Command::new("cargo")
        .args([sub, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One phase of the CI run.
type PhaseFn = fn() -> Result<()>;

struct Phase {
    name: &'static str,
    took: Duration,
    ok: bool,
}

/// Run every phase, stopping at the first failure, and print the timings.
pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(unknown) = args.first() {
        bail!("`cargo xtask ci` takes no arguments (got `{unknown}`)");
    }
    let phases: [(&'static str, PhaseFn); 11] = [
        ("tools", tools),
        ("fmt", fmt),
        ("crate graph", || crate::layers::check(&workspace_root())),
        ("module layers", || crate::modules::check(&workspace_root())),
        ("clippy", clippy),
        ("tests", tests),
        ("rustdoc", rustdoc),
        ("benches (compile only)", benches),
        ("release rehearsal", || {
            crate::release::rehearse(&workspace_root())
        }),
        ("packaging", || crate::package::check(&workspace_root())),
        ("cargo deny", crate::deny::check),
    ];
    let started = Instant::now();
    let mut done = Vec::new();
    let mut failure = None;
    for (name, phase) in phases {
        say(&format!("\n=== {name} ==="));
        let t = Instant::now();
        let result = phase();
        done.push(Phase {
            name,
            took: t.elapsed(),
            ok: result.is_ok(),
        });
        if let Err(e) = result {
            failure = Some(e);
            break;
        }
    }
    say("\n=== phase times ===");
    for p in &done {
        say(&format!(
            "{:<24} {:>7.1} s  {}",
            p.name,
            p.took.as_secs_f64(),
            if p.ok { "ok" } else { "FAILED" }
        ));
    }
    say(&format!(
        "{:<24} {:>7.1} s",
        "total",
        started.elapsed().as_secs_f64()
    ));
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every tool the later phases need, checked before anything is built: a fresh machine learns
/// in a second what to install, not after minutes of compiling.
fn tools() -> Result<()> {
    let missing = missing_tools(cargo_has, crate::pg::installed());
    if missing.is_empty() {
        say("tools: rustfmt, clippy, cargo-deny and PostgreSQL are installed");
        return Ok(());
    }
    bail!(
        "missing before anything is built (`.ci/run` installs them): {}",
        missing.join("; ")
    )
}

/// What is missing, with how to install it, given which cargo subcommands work and whether
/// PostgreSQL is installed.
fn missing_tools(cargo_has: impl Fn(&str) -> bool, postgres: bool) -> Vec<String> {
    let mut missing: Vec<String> = [
        ("fmt", "rustup component add rustfmt"),
        ("clippy", "rustup component add clippy"),
        ("deny", "cargo install cargo-deny --locked"),
    ]
    .into_iter()
    .filter(|(sub, _)| !cargo_has(sub))
    .map(|(sub, install)| format!("cargo {sub} ({install})"))
    .collect();
    if !postgres {
        missing.push("PostgreSQL's initdb and pg_ctl (apt-get install postgresql)".to_owned());
    }
    missing
}

fn fmt() -> Result<()> {
    run_cmd("cargo", &["fmt", "--all", "--check"], &[])
}

fn clippy() -> Result<()> {
    run_cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )
}

/// The tests, with a throwaway PostgreSQL server for the shared-ledger tests (they fail, rather
/// than skip, when it is missing: `ACGS_REQUIRE_POSTGRES=1`).
fn tests() -> Result<()> {
    let pg = crate::pg::PgServer::start()?;
    let envs = [
        ("ACGS_TEST_POSTGRES_URL", pg.url.as_str()),
        ("ACGS_REQUIRE_POSTGRES", "1"),
    ];
    if cargo_has("nextest") {
        run_cmd(
            "cargo",
            &[
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
                "--failure-output",
                "final",
            ],
            &envs,
        )?;
    } else {
        say("cargo-nextest is not installed; using cargo test");
        run_cmd(
            "cargo",
            &[
                "test",
                "--workspace",
                "--locked",
                "--lib",
                "--bins",
                "--tests",
            ],
            &envs,
        )?;
    }
    run_cmd("cargo", &["test", "--workspace", "--locked", "--doc"], &[])
}

fn rustdoc() -> Result<()> {
    run_cmd(
        "cargo",
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )
}

fn benches() -> Result<()> {
    run_cmd(
        "cargo",
        &["build", "--workspace", "--benches", "--locked"],
        &[],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_missing_tool_is_named_with_how_to_install_it() {
        assert!(super::missing_tools(|_| true, true).is_empty());
        let missing = super::missing_tools(|sub| sub != "deny", false);
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(
            missing[0].contains("cargo install cargo-deny"),
            "{missing:?}"
        );
        assert!(missing[1].contains("postgresql"), "{missing:?}");
    }
}
