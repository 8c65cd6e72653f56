//! `cargo xtask release <version> [--dry-run] [--no-checks]`: the same release every time.
//!
//! Refuses a dirty tree, a version not greater than the current one, or an empty `Unreleased`
//! changelog section; then sets the version across the workspace (`[workspace.package]` and
//! every internal path dependency), moves `## Unreleased` to `## <version> — <date>` under a new
//! empty one, runs `cargo xtask ci` and the packaging checks, and commits and tags `v<version>`.
//! `--dry-run` does all of it in a scratch clone and reports what would change; `--no-checks`
//! skips `ci` and packaging (for rehearsals of the bookkeeping alone).

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::ci::{say, workspace_root};

/// A semantic version: `MAJOR.MINOR.PATCH`, optionally `-PRE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    numbers: [u64; 3],
    pre: Option<String>,
}

impl Version {
    /// Parse `1.2.3` or `1.2.3-rc.1`.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_owned())),
            Some(_) => bail!("`{text}` is not a version (MAJOR.MINOR.PATCH[-PRE])"),
            None => (text, None),
        };
        let parts: Vec<u64> = core
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("`{text}` is not a version (MAJOR.MINOR.PATCH[-PRE])"))?;
        let [major, minor, patch] = parts.as_slice() else {
            bail!("`{text}` is not a version (MAJOR.MINOR.PATCH[-PRE])");
        };
        Ok(Self {
            numbers: [*major, *minor, *patch],
            pre,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.numbers;
        write!(f, "{a}.{b}.{c}")?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers
            .cmp(&other.numbers)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

/// What a release did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The version before.
    pub from: Version,
    /// The version after.
    pub to: Version,
    /// The tag.
    pub tag: String,
    /// Files changed, as `git diff --stat` lists them.
    pub changed: Vec<String>,
    /// Where the release was made (the scratch clone for a dry run).
    pub tree: PathBuf,
}

/// Options of a release.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// In a scratch clone, leaving the real tree untouched.
    pub dry_run: bool,
    /// Run `cargo xtask ci` and the packaging checks.
    pub checks: bool,
}

/// `cargo xtask release …`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut version = None;
    let mut options = Options {
        dry_run: false,
        checks: true,
    };
    for arg in args {
        match arg.as_str() {
            "--dry-run" => options.dry_run = true,
            "--no-checks" => options.checks = false,
            other if version.is_none() && !other.starts_with('-') => version = Some(other),
            other => bail!("unexpected argument `{other}`"),
        }
    }
    let version =
        version.context("usage: cargo xtask release <version> [--dry-run] [--no-checks]")?;
    let today = jiff::Zoned::now().date().to_string();
    let outcome = release(
        &workspace_root(),
        &Version::parse(version)?,
        &today,
        options,
    )?;
    say(&format!(
        "{} {} → {} ({} file(s)): tag {}",
        if options.dry_run {
            "would release"
        } else {
            "released"
        },
        outcome.from,
        outcome.to,
        outcome.changed.len(),
        outcome.tag
    ));
    for file in &outcome.changed {
        say(&format!("  {file}"));
    }
    if options.dry_run {
        let _ = fs_err::remove_dir_all(&outcome.tree);
    } else {
        say(
            "push with: git push && git push --tags; then publish the crates in the order `cargo package` used",
        );
    }
    Ok(())
}

/// Release `version` of the workspace at `root` (see the module documentation).
pub(crate) fn release(
    root: &Path,
    version: &Version,
    today: &str,
    options: Options,
) -> Result<Outcome> {
    ensure_clean(root)?;
    let from = current_version(root)?;
    if *version <= from {
        bail!("{version} is not greater than the current version {from}");
    }
    let notes = unreleased_notes(&fs_err::read_to_string(root.join("CHANGELOG.md"))?)?;
    if notes.trim().is_empty() {
        bail!(
            "the `## Unreleased` section of CHANGELOG.md is empty: write the release notes first"
        );
    }
    let tree = if options.dry_run {
        scratch_clone(root)?
    } else {
        root.to_owned()
    };
    bump(&tree, version)?;
    let changelog = tree.join("CHANGELOG.md");
    let moved = move_unreleased(&fs_err::read_to_string(&changelog)?, version, today)?;
    fs_err::write(&changelog, moved)?;
    git(&tree, &["add", "-A"])?;
    if options.checks {
        let _ = Command::new("cargo")
            .args(["update", "--workspace", "--offline"])
            .current_dir(&tree)
            .status();
        cargo_in(&tree, &["xtask", "ci"])?;
        crate::package::check(&tree)?;
        git(&tree, &["add", "-A"])?;
    }
    let tag = format!("v{version}");
    git(
        &tree,
        &[
            "-c",
            "user.name=acgs release",
            "-c",
            "user.email=release@localhost",
            "commit",
            "-q",
            "-m",
            &format!("Release {version}"),
        ],
    )?;
    git(
        &tree,
        &["tag", "-a", &tag, "-m", &format!("acgs {version}")],
    )?;
    let changed = git_out(&tree, &["diff", "--name-only", "HEAD~1", "HEAD"])?
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(Outcome {
        from,
        to: version.clone(),
        tag,
        changed,
        tree,
    })
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .status()
        .context("could not start git")?;
    if !status.success() {
        bail!("`git {}` failed", args.join(" "));
    }
    Ok(())
}

fn git_out(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("could not start git")?;
    if !out.status.success() {
        bail!("`git {}` failed", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cargo_in(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .status()
        .context("could not start cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed in {}", args.join(" "), dir.display());
    }
    Ok(())
}

/// Refuse uncommitted changes (a release is made from what is committed).
fn ensure_clean(root: &Path) -> Result<()> {
    let status = git_out(root, &["status", "--porcelain"])?;
    if !status.trim().is_empty() {
        bail!("the working tree has uncommitted changes; commit or stash them first:\n{status}");
    }
    Ok(())
}

/// `[workspace.package].version`.
fn current_version(root: &Path) -> Result<Version> {
    let text = fs_err::read_to_string(root.join("Cargo.toml"))?;
    let doc: toml_edit::DocumentMut = text.parse()?;
    let version = doc["workspace"]["package"]["version"]
        .as_str()
        .context("Cargo.toml has no [workspace.package] version")?;
    Version::parse(version)
}

/// Set the version in `[workspace.package]` and on every internal path dependency.
fn bump(root: &Path, version: &Version) -> Result<()> {
    let path = root.join("Cargo.toml");
    let mut doc: toml_edit::DocumentMut = fs_err::read_to_string(&path)?.parse()?;
    doc["workspace"]["package"]["version"] = toml_edit::value(version.to_string());
    if let Some(deps) = doc["workspace"]["dependencies"].as_table_like_mut() {
        for (_, dep) in deps.iter_mut() {
            let Some(table) = dep.as_table_like_mut() else {
                continue;
            };
            if table.contains_key("path") && table.contains_key("version") {
                table.insert("version", toml_edit::value(version.to_string()));
            }
        }
    }
    fs_err::write(&path, doc.to_string())?;
    Ok(())
}

/// The text of the `## Unreleased` section.
fn unreleased_notes(changelog: &str) -> Result<String> {
    let start = changelog
        .find("\n## Unreleased")
        .context("CHANGELOG.md has no `## Unreleased` section")?;
    let body = &changelog[start + "\n## Unreleased".len()..];
    let body = body.split_once('\n').map_or("", |(_, rest)| rest);
    let end = body.find("\n## ").map_or(body.len(), |i| i + 1);
    Ok(body[..end].to_owned())
}

/// `## Unreleased` becomes `## <version> — <date>`, under a new empty `## Unreleased`.
fn move_unreleased(changelog: &str, version: &Version, today: &str) -> Result<String> {
    unreleased_notes(changelog)?;
    Ok(changelog.replacen(
        "\n## Unreleased\n",
        &format!("\n## Unreleased\n\n## {version} — {today}\n"),
        1,
    ))
}

/// A clone of the committed tree in a scratch folder.
fn scratch_clone(root: &Path) -> Result<PathBuf> {
    let scratch = std::env::temp_dir().join(format!("acgs-release-{}", std::process::id()));
    let _ = fs_err::remove_dir_all(&scratch);
    let status = Command::new("git")
        .args(["clone", "--quiet", "--local", "--no-hardlinks"])
        .arg(root)
        .arg(&scratch)
        .status()
        .context("could not start git")?;
    if !status.success() {
        bail!("could not clone {} for the dry run", root.display());
    }
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git")
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    /// A copy of the workspace's manifests and changelog, committed in a fresh repository.
    fn copy_of_workspace() -> tempfile::TempDir {
        let root = workspace_root();
        let dir = tempfile::tempdir().expect("tmp");
        fs_err::copy(root.join("Cargo.toml"), dir.path().join("Cargo.toml")).expect("manifest");
        fs_err::copy(root.join("CHANGELOG.md"), dir.path().join("CHANGELOG.md"))
            .expect("changelog");
        run_git(dir.path(), &["init", "-q", "."]);
        run_git(dir.path(), &["add", "."]);
        run_git(dir.path(), &["commit", "-q", "-m", "copy"]);
        dir
    }

    const DRY: Options = Options {
        dry_run: true,
        checks: false,
    };

    #[test]
    fn a_dry_run_bumps_everything_moves_the_notes_and_tags_in_a_scratch_clone() {
        let copy = copy_of_workspace();
        let before = fs_err::read_to_string(copy.path().join("Cargo.toml")).expect("read");
        let current = current_version(copy.path()).expect("version");
        let next = Version::parse("9.1.0").expect("version");
        let outcome = release(copy.path(), &next, "2026-11-28", DRY).expect("dry run");
        assert_eq!(outcome.from, current);
        assert_eq!(outcome.tag, "v9.1.0");
        assert_eq!(outcome.changed, ["CHANGELOG.md", "Cargo.toml"]);
        let bumped = fs_err::read_to_string(outcome.tree.join("Cargo.toml")).expect("read");
        let doc: toml_edit::DocumentMut = bumped.parse().expect("toml");
        assert_eq!(
            doc["workspace"]["package"]["version"].as_str(),
            Some("9.1.0")
        );
        let internal: Vec<_> = doc["workspace"]["dependencies"]
            .as_table_like()
            .expect("deps")
            .iter()
            .filter_map(|(name, dep)| {
                let table = dep.as_table_like()?;
                table.get("path")?;
                Some((name.to_owned(), table.get("version")?.as_str()?.to_owned()))
            })
            .collect();
        assert!(internal.len() >= 8, "{internal:?}");
        assert!(internal.iter().all(|(_, v)| v == "9.1.0"), "{internal:?}");
        let changelog = fs_err::read_to_string(outcome.tree.join("CHANGELOG.md")).expect("read");
        let empty_unreleased = "## Unreleased\n\n## 9.1.0 — 2026-11-28\n";
        assert!(changelog.contains(empty_unreleased), "{changelog}");
        let tags = git_out(&outcome.tree, &["tag", "--list"]).expect("tags");
        assert_eq!(tags.trim(), "v9.1.0");
        assert_eq!(
            fs_err::read_to_string(copy.path().join("Cargo.toml")).expect("read"),
            before,
            "the real tree is untouched"
        );
        assert!(
            git_out(copy.path(), &["tag", "--list"])
                .expect("tags")
                .trim()
                .is_empty()
        );
        let _ = fs_err::remove_dir_all(&outcome.tree);
    }

    #[test]
    fn dirty_trees_lower_versions_and_empty_notes_are_refused() {
        let copy = copy_of_workspace();
        let current = current_version(copy.path()).expect("version");
        let err = release(copy.path(), &current, "2026-11-28", DRY).expect_err("not greater");
        assert!(err.to_string().contains("not greater"), "{err}");
        let lower = Version::parse("0.0.1").expect("version");
        assert!(release(copy.path(), &lower, "2026-11-28", DRY).is_err());
        fs_err::write(copy.path().join("stray.txt"), "x").expect("dirty");
        let err = release(copy.path(), &Version::parse("9.0.0").expect("v"), "d", DRY)
            .expect_err("dirty");
        assert!(err.to_string().contains("uncommitted"), "{err}");
        fs_err::remove_file(copy.path().join("stray.txt")).expect("clean");
        let changelog = copy.path().join("CHANGELOG.md");
        fs_err::write(
            &changelog,
            "# Changelog\n\n## Unreleased\n\n## 0.1.0 — 2026-01-01\n- first\n",
        )
        .expect("empty notes");
        run_git(copy.path(), &["commit", "-q", "-am", "empty"]);
        let err = release(copy.path(), &Version::parse("9.0.0").expect("v"), "d", DRY)
            .expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn versions_order_like_semver() {
        let v = |s| Version::parse(s).expect("version");
        assert!(v("0.2.0") > v("0.1.9"));
        assert!(v("1.0.0") > v("1.0.0-rc.1"));
        assert!(v("1.0.0-rc.2") > v("1.0.0-rc.1"));
        assert!(Version::parse("1.0").is_err());
        assert!(Version::parse("v1.0.0").is_err());
    }
}
