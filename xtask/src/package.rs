//! Packaging checks: every publishable crate carries the metadata crates.io shows, its README and
//! both licence files, and builds on its own from what `cargo package` produced (the other
//! workspace crates are packaged into a local registry, not taken from the tree).

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::ci::{run_cmd_in, say};

/// The licence files every published crate ships.
pub(crate) const LICENCES: [&str; 2] = ["LICENSE-MIT", "LICENSE-APACHE"];

/// Check the metadata, then `cargo package` every publishable crate of the workspace at `root`.
pub(crate) fn check(root: &Path) -> Result<()> {
    let unpublished = metadata(root)?;
    forget_local_packages()?;
    // Packages are verified as if from a registry, whose builds cargo never rechecks for the same
    // version: a fresh target folder keeps an earlier run's builds out.
    let target = root.join("target/package-check");
    let _ = fs_err::remove_dir_all(&target);
    let target = target.to_string_lossy().into_owned();
    let mut args = vec![
        "package",
        "--workspace",
        "--locked",
        "--target-dir",
        &target,
    ];
    for name in &unpublished {
        args.push("--exclude");
        args.push(name);
    }
    run_cmd_in(root, "cargo", &args)
}

/// Check every publishable crate's metadata and files; the names of the unpublished ones.
pub(crate) fn metadata(root: &Path) -> Result<Vec<String>> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(root)
        .output()
        .context("could not start cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut problems = Vec::new();
    let mut unpublished = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            unpublished.push(name);
            continue;
        }
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().unwrap_or(root);
        for field in [
            "description",
            "repository",
            "rust_version",
            "readme",
            "license",
        ] {
            if package[field].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name}: `{field}` is not set"));
            }
        }
        for field in ["keywords", "categories"] {
            if package[field].as_array().is_none_or(Vec::is_empty) {
                problems.push(format!("{name}: `{field}` is empty"));
            }
        }
        if let Some(readme) = package["readme"].as_str()
            && !dir.join(readme).is_file()
        {
            problems.push(format!("{name}: its README {readme} is missing"));
        }
        let includes = included(manifest)?;
        for licence in LICENCES {
            if !dir.join(licence).is_file() {
                problems.push(format!(
                    "{name}: {licence} is missing from {}",
                    dir.display()
                ));
            }
            if includes
                .as_ref()
                .is_some_and(|list| !list.iter().any(|i| i == licence || i == "LICENSE-*"))
            {
                problems.push(format!("{name}: `include` leaves out {licence}"));
            }
        }
    }
    if !problems.is_empty() {
        bail!("packaging checks failed:\n  {}", problems.join("\n  "));
    }
    say(&format!(
        "packaging metadata ok; not published: {}",
        unpublished.join(", ")
    ));
    Ok(unpublished)
}

/// Cargo verifies each package against the others through a local registry whose sources it
/// unpacks under `$CARGO_HOME/registry/src/` and never unpacks again for the same version, so a
/// second run would build stale copies. Remove the unpacked acgs packages of local registries
/// (crates.io's are left alone).
fn forget_local_packages() -> Result<()> {
    let home = std::env::var_os("CARGO_HOME").map_or_else(
        || Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cargo"),
        std::path::PathBuf::from,
    );
    let Ok(registries) = fs_err::read_dir(home.join("registry/src")) else {
        return Ok(());
    };
    for registry in registries.filter_map(Result::ok) {
        if registry
            .file_name()
            .to_string_lossy()
            .starts_with("index.crates.io")
        {
            continue;
        }
        for unpacked in fs_err::read_dir(registry.path())?.filter_map(Result::ok) {
            if unpacked.file_name().to_string_lossy().starts_with("acgs-") {
                fs_err::remove_dir_all(unpacked.path())?;
            }
        }
    }
    Ok(())
}

/// The `include` list of a manifest, if it has one.
fn included(manifest: &Path) -> Result<Option<Vec<String>>> {
    let doc: toml::Table = toml::from_str(&fs_err::read_to_string(manifest)?)?;
    Ok(doc
        .get("package")
        .and_then(|p| p.get("include"))
        .and_then(toml::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        }))
}
