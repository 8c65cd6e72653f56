//! The crate-graph check: every edge between workspace crates must be allowed by
//! `xtask/layers.toml`, and no publishable crate may depend on an unpublished one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::ci::say;

struct Layers {
    allowed: BTreeMap<String, BTreeSet<String>>,
    dev: BTreeSet<String>,
}

fn read_layers(root: &Path) -> Result<Layers> {
    let text = fs_err::read_to_string(root.join("xtask/layers.toml"))
        .context("reading xtask/layers.toml")?;
    let table: toml::Table = toml::from_str(&text).context("parsing xtask/layers.toml")?;
    let names = |v: &toml::Value| -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let allowed = table
        .get("allowed")
        .and_then(toml::Value::as_table)
        .context("layers.toml needs an [allowed] table")?
        .iter()
        .map(|(k, v)| (k.clone(), names(v)))
        .collect();
    let dev = table
        .get("dev")
        .and_then(|d| d.get("allowed"))
        .map(names)
        .unwrap_or_default();
    Ok(Layers { allowed, dev })
}

/// Check the graph; print every violation, fail if there is one.
pub(crate) fn check(root: &Path) -> Result<()> {
    let layers = read_layers(root)?;
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed");
    }
    let meta: Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let packages = meta["packages"]
        .as_array()
        .context("no packages in cargo metadata")?;
    let members: BTreeMap<&str, bool> = packages
        .iter()
        .filter_map(|p| {
            let publishable = !p["publish"].as_array().is_some_and(Vec::is_empty);
            Some((p["name"].as_str()?, publishable))
        })
        .collect();
    let mut violations = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(allowed) = layers.allowed.get(name) else {
            violations.push(format!("{name} is not listed in xtask/layers.toml"));
            continue;
        };
        let used: BTreeSet<&str> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter_map(|d| d["name"].as_str())
            .collect();
        for unused in allowed.iter().filter(|a| !used.contains(a.as_str())) {
            violations.push(format!(
                "{name} → {unused} is allowed but not used: remove it from xtask/layers.toml"
            ));
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !members.contains_key(dep_name) {
                continue;
            }
            let is_dev = dep["kind"].as_str() == Some("dev");
            let ok = allowed.contains(dep_name) || (is_dev && layers.dev.contains(dep_name));
            if !ok {
                let kind = if is_dev {
                    "dev-dependency"
                } else {
                    "dependency"
                };
                violations.push(format!(
                    "{name} → {dep_name} ({kind}) is not an allowed edge"
                ));
            }
            if !is_dev && members.get(name) == Some(&true) && members.get(dep_name) == Some(&false)
            {
                violations.push(format!(
                    "{name} is publishable but depends on unpublished {dep_name}"
                ));
            }
        }
    }
    if violations.is_empty() {
        say(&format!(
            "crate graph: {} workspace crates, every edge allowed",
            members.len()
        ));
        return Ok(());
    }
    for v in &violations {
        say(&format!("crate graph: {v}"));
    }
    bail!("{} crate-graph violation(s)", violations.len())
}
