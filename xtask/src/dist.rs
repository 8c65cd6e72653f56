//! `cargo xtask dist [--debug]`: the `acgs` binary, shell completions (bash, zsh, fish,
//! PowerShell) and man pages (one per command) generated from the clap definitions, a tarball for the target built
//! here, and `SHA256SUMS` — in `target/dist/`. Then every file is checked: checksums, one
//! completion per shell, a man page `man -l` renders, and the same commands in `acgs --help` and
//! the man page.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;
use sha2::Digest as _;

use crate::ci::{run_cmd, say, workspace_root};

/// The shells completions are made for, and their file names.
const SHELLS: [(clap_complete::Shell, &str); 4] = [
    (clap_complete::Shell::Bash, "acgs.bash"),
    (clap_complete::Shell::Zsh, "_acgs"),
    (clap_complete::Shell::Fish, "acgs.fish"),
    (clap_complete::Shell::PowerShell, "_acgs.ps1"),
];

/// `cargo xtask dist`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let debug = match args {
        [] => false,
        [flag] if flag == "--debug" => true,
        _ => bail!("usage: cargo xtask dist [--debug]"),
    };
    let out = build(&workspace_root(), debug)?;
    verify(&out)?;
    say(&format!("dist ok: {}", out.display()));
    Ok(())
}

/// Build everything into `target/dist/`.
pub(crate) fn build(root: &Path, debug: bool) -> Result<PathBuf> {
    let mut args = vec!["build", "--locked", "-p", "acgs-cli", "--bin", "acgs"];
    if !debug {
        args.push("--release");
    }
    run_cmd("cargo", &args, &[])?;
    let profile = if debug { "debug" } else { "release" };
    let out = root.join("target/dist");
    let _ = fs_err::remove_dir_all(&out);
    fs_err::create_dir_all(out.join("completions"))?;
    // CARGO_TARGET_DIR moves where cargo builds, not where the dist folder goes.
    let built =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    fs_err::copy(built.join(profile).join("acgs"), out.join("acgs"))?;
    for (shell, name) in SHELLS {
        let mut file = fs_err::File::create(out.join("completions").join(name))?;
        clap_complete::generate(shell, &mut acgs_cli::cli::Cli::command(), "acgs", &mut file);
    }
    fs_err::create_dir_all(out.join("man"))?;
    clap_mangen::generate_to(acgs_cli::cli::Cli::command(), out.join("man"))?;
    for doc in ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "CHANGELOG.md"] {
        fs_err::copy(root.join(doc), out.join(doc))?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let tarball = format!("acgs-{version}-{}.tar.gz", host_target()?);
    let status = Command::new("tar")
        .arg("czf")
        .arg(out.join(&tarball))
        .arg("-C")
        .arg(&out)
        .args([
            "acgs",
            "man",
            "completions",
            "README.md",
            "LICENSE-MIT",
            "LICENSE-APACHE",
            "CHANGELOG.md",
        ])
        .status()
        .context("could not start tar")?;
    if !status.success() {
        bail!("tar failed");
    }
    let mut files = vec!["acgs".to_owned(), tarball];
    files.extend(SHELLS.iter().map(|(_, name)| format!("completions/{name}")));
    files.extend(man_pages(&out)?);
    let mut sums = String::new();
    for name in files {
        sums.push_str(&format!("{}  {name}\n", sha256_of(&out.join(&name))?));
    }
    fs_err::write(out.join("SHA256SUMS"), sums)?;
    Ok(out)
}

/// The man pages, as paths relative to `out`.
fn man_pages(out: &Path) -> Result<Vec<String>> {
    let mut pages: Vec<String> = fs_err::read_dir(out.join("man"))?
        .filter_map(Result::ok)
        .map(|e| format!("man/{}", e.file_name().to_string_lossy()))
        .collect();
    pages.sort();
    Ok(pages)
}

/// The target triple of this machine.
fn host_target() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("could not start rustc")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc did not name its host target")
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = fs_err::read(path)?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Check a `target/dist/` folder (see the module documentation).
pub(crate) fn verify(out: &Path) -> Result<()> {
    let sums = fs_err::read_to_string(out.join("SHA256SUMS"))?;
    for line in sums.lines() {
        let (sum, name) = line
            .split_once("  ")
            .context("a malformed SHA256SUMS line")?;
        if sha256_of(&out.join(name))? != sum {
            bail!("{name} does not match SHA256SUMS");
        }
    }
    let commands = help_commands(out)?;
    for (shell, name) in SHELLS {
        let text = fs_err::read_to_string(out.join("completions").join(name))?;
        if let Some(missing) = commands.iter().find(|c| !text.contains(c.as_str())) {
            bail!("the {shell} completion does not know `{missing}`");
        }
    }
    let main_page = render(&out.join("man/acgs.1"))?;
    let listed: Vec<String> = main_page
        .split_whitespace()
        .filter_map(|w| {
            w.strip_prefix("acgs-")?
                .strip_suffix("(1)")
                .map(str::to_owned)
        })
        .collect();
    if listed != commands {
        bail!("`acgs --help` lists {commands:?} but the man page lists {listed:?}");
    }
    for command in &commands {
        let page = render(&out.join(format!("man/acgs-{command}.1")))?;
        if !page.contains(&format!("acgs-{command}")) {
            bail!("the man page of `{command}` does not name it");
        }
    }
    say(&format!(
        "{} commands in --help, the completions and the man pages",
        commands.len()
    ));
    Ok(())
}

/// A man page as `man -l` renders it (its source when man is not installed).
fn render(page: &Path) -> Result<String> {
    match Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(out) if out.status.success() && !out.stdout.is_empty() => {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(out) => bail!(
            "man -l could not render {}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            say("man is not installed: the pages were checked as sources only");
            Ok(fs_err::read_to_string(page)?)
        }
    }
}

/// The commands `acgs --help` lists.
fn help_commands(out: &Path) -> Result<Vec<String>> {
    let help = Command::new(out.join("acgs"))
        .arg("--help")
        .env_clear()
        .output()
        .context("could not run the built acgs")?;
    let text = String::from_utf8_lossy(&help.stdout);
    let commands: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    if commands.len() < 10 {
        bail!("acgs --help lists only {} commands", commands.len());
    }
    Ok(commands)
}
