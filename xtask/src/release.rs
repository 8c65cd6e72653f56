//! `cargo xtask release <version> [--dry-run] [--no-checks]`: the same release every time.
//!
//! Refuses a dirty tree, a version not greater than the current one, or an empty `Unreleased`
//! changelog section. Then, in a scratch clone of the committed tree, it sets the version across
//! the workspace (`[workspace.package]`, every internal path dependency, `Cargo.lock`), moves
//! `## Unreleased` to `## <version> — <date>` under a new empty one, commits, runs `cargo xtask
//! ci` on that commit (a clean tree, so the packaging checks see what would be published), and
//! tags `v<version>`. Only then is the commit and its tag fetched into the real tree, which a
//! failed check therefore never touches. `--dry-run` stops before that last step and reports what
//! would change; `--no-checks` skips `ci` (for rehearsals of the bookkeeping alone).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use anyhow::{Context as _, Result, bail};
pub(crate) use semver::Version;

use crate::ci::{say, workspace_root};

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
        &Version::parse(version)
            .with_context(|| format!("`{version}` is not a version (MAJOR.MINOR.PATCH[-PRE])"))?,
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
    let tree = scratch_clone(root)?;
    bump(&tree, version)?;
    let changelog = tree.join("CHANGELOG.md");
    let moved = move_unreleased(&fs_err::read_to_string(&changelog)?, version, today)?;
    fs_err::write(&changelog, moved)?;
    // The lock file carries the workspace's own versions.
    if tree.join("Cargo.lock").exists() {
        cargo_in(&tree, &["update", "--workspace", "--offline"])?;
    }
    let tag = format!("v{version}");
    git(&tree, &["add", "-A"])?;
    git_as_release(
        &tree,
        &["commit", "-q", "-m", &format!("Release {version}")],
    )?;
    if options.checks {
        cargo_in(&tree, &["xtask", "ci"])?;
    }
    git_as_release(
        &tree,
        &["tag", "-a", &tag, "-m", &format!("acgs {version}")],
    )?;
    let changed = git_out(&tree, &["diff", "--name-only", "HEAD~1", "HEAD"])?
        .lines()
        .map(str::to_owned)
        .collect();
    let tree = if options.dry_run {
        tree
    } else {
        adopt(root, &tree, &tag)?;
        let _ = fs_err::remove_dir_all(&tree);
        root.to_owned()
    };
    Ok(Outcome {
        from,
        to: version.clone(),
        tag,
        changed,
        tree,
    })
}

/// What CI checks of the release machinery: in a scratch clone of the committed tree, a real
/// release of the next patch version (without its own `ci`, which this run is), then `cargo
/// xtask dist --debug` on the released tree — checksums, completions and man pages checked, the
/// tarball and `acgs --version` carrying the new version. Builds share this run's target folder.
pub(crate) fn rehearse(root: &Path) -> Result<()> {
    let scratch = scratch_clone(root)?;
    let result = rehearse_in(root, &scratch);
    let _ = fs_err::remove_dir_all(&scratch);
    result
}

fn rehearse_in(root: &Path, scratch: &Path) -> Result<()> {
    give_notes(scratch)?;
    let from = current_version(scratch)?;
    let next = Version::new(from.major, from.minor, from.patch + 1);
    let today = jiff::Zoned::now().date().to_string();
    let options = Options {
        dry_run: false,
        checks: false,
    };
    release(scratch, &next, &today, options)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let status = Command::new("cargo")
        .args(["xtask", "dist", "--debug"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(scratch)
        .status()
        .context("could not start cargo")?;
    if !status.success() {
        bail!("`cargo xtask dist --debug` failed on the released tree");
    }
    let dist = scratch.join("target/dist");
    let tarball_named = fs_err::read_dir(&dist)?.filter_map(Result::ok).any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with(&format!("acgs-{next}-"))
    });
    if !tarball_named {
        bail!("the released tree's tarball does not carry version {next}");
    }
    let printed = Command::new(dist.join("acgs")).arg("--version").output()?;
    let printed = String::from_utf8_lossy(&printed.stdout);
    if !printed.contains(&next.to_string()) {
        bail!("the released binary says `{}`, not {next}", printed.trim());
    }
    say(&format!(
        "release rehearsal: {from} → {next} released, dist built and checked"
    ));
    Ok(())
}

/// Make sure the scratch tree has release notes: right after a release its `## Unreleased` is
/// empty, and the rehearsal is of the machinery, not of the notes.
fn give_notes(scratch: &Path) -> Result<()> {
    let path = scratch.join("CHANGELOG.md");
    let changelog = fs_err::read_to_string(&path)?;
    if !unreleased_notes(&changelog)?.trim().is_empty() {
        return Ok(());
    }
    let noted = changelog.replacen(
        "\n## Unreleased\n",
        "\n## Unreleased\n\n- Release rehearsal.\n",
        1,
    );
    fs_err::write(&path, noted)?;
    git_as_release(scratch, &["commit", "-q", "-am", "Notes for the rehearsal"])
}

/// Fast-forward `root` to the release commit made in `scratch`, and fetch its tag.
fn adopt(root: &Path, scratch: &Path, tag: &str) -> Result<()> {
    let from = scratch.to_string_lossy();
    git(root, &["fetch", "-q", &from, "HEAD"])?;
    git(root, &["merge", "-q", "--ff-only", "FETCH_HEAD"])?;
    let refspec = format!("refs/tags/{tag}:refs/tags/{tag}");
    git(root, &["fetch", "-q", &from, &refspec])
}

/// `git` with the release's own identity (a machine without one can still release).
fn git_as_release(dir: &Path, args: &[&str]) -> Result<()> {
    let identity = [
        "-c",
        "user.name=acgs release",
        "-c",
        "user.email=release@localhost",
    ];
    git(dir, &[&identity[..], args].concat())
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
pub(crate) fn current_version(root: &Path) -> Result<Version> {
    let text = fs_err::read_to_string(root.join("Cargo.toml"))?;
    let doc: toml_edit::DocumentMut = text.parse()?;
    let version = doc["workspace"]["package"]["version"]
        .as_str()
        .context("Cargo.toml has no [workspace.package] version")?;
    Ok(Version::parse(version)?)
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

/// A clone of the committed tree in a scratch folder of its own.
pub(crate) fn scratch_clone(root: &Path) -> Result<PathBuf> {
    static CLONES: AtomicU32 = AtomicU32::new(0);
    let n = CLONES.fetch_add(1, AtomicOrdering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("acgs-release-{}-{n}", std::process::id()));
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

    /// A changelog with notes waiting under `## Unreleased`, whatever the real one holds.
    const CHANGELOG: &str =
        "# Changelog\n\n## Unreleased\n\n### Added\n- a thing\n\n## 0.0.1 — 2026-01-01\n- first\n";

    /// A copy of the workspace's manifest and a changelog, committed in a fresh repository.
    fn copy_of_workspace() -> tempfile::TempDir {
        let root = workspace_root();
        let dir = tempfile::tempdir().expect("tmp");
        fs_err::copy(root.join("Cargo.toml"), dir.path().join("Cargo.toml")).expect("manifest");
        fs_err::write(dir.path().join("CHANGELOG.md"), CHANGELOG).expect("changelog");
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
    fn a_real_release_reaches_the_tree_only_as_a_tagged_commit() {
        let copy = copy_of_workspace();
        let head = git_out(copy.path(), &["rev-parse", "HEAD"]).expect("head");
        let next = Version::parse("9.2.0").expect("version");
        let real = Options {
            dry_run: false,
            checks: false,
        };
        let outcome = release(copy.path(), &next, "2026-12-06", real).expect("release");
        assert_eq!(outcome.tree, copy.path());
        assert_eq!(current_version(copy.path()).expect("version"), next);
        let parent = git_out(copy.path(), &["rev-parse", "HEAD~1"]).expect("parent");
        assert_eq!(parent, head, "one commit on top of what was there");
        let tagged = git_out(copy.path(), &["rev-parse", "v9.2.0^{commit}"]).expect("tag");
        let now = git_out(copy.path(), &["rev-parse", "HEAD"]).expect("head");
        assert_eq!(tagged, now);
        assert!(
            git_out(copy.path(), &["status", "--porcelain"])
                .expect("status")
                .trim()
                .is_empty(),
            "nothing left uncommitted"
        );
        let again = release(copy.path(), &Version::parse("9.3.0").expect("v"), "d", real);
        let err = again.expect_err("the notes moved with the release");
        assert!(err.to_string().contains("is empty"), "{err}");
        // What CI's rehearsal does in a tree whose notes went out with a release.
        give_notes(copy.path()).expect("notes");
        let next = Version::parse("9.3.0").expect("v");
        assert!(release(copy.path(), &next, "2026-12-06", real).is_ok());
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
}
