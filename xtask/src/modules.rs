//! The module check: inside acgs-core, acgs-engine and acgs-cli, every `crate::…` path a module
//! names (in `use` items or inline) must point at a module of a lower layer than its own, as
//! listed in `xtask/modules.toml`; and no cycle may run between modules that are not nested in
//! one another (a module and its own submodules may use each other). Data types sit below
//! stages, stages below the driver, the driver below pipelines and resume.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::ci::say;

/// A crate's top-level modules by layer, lowest first.
struct CrateLayers {
    crate_name: String,
    src: PathBuf,
    layers: Vec<Vec<String>>,
}

fn read_config(root: &Path) -> Result<Vec<CrateLayers>> {
    let text = fs_err::read_to_string(root.join("xtask/modules.toml"))
        .context("reading xtask/modules.toml")?;
    let table: toml::Table = toml::from_str(&text).context("parsing xtask/modules.toml")?;
    let mut crates = Vec::new();
    for (name, spec) in &table {
        let src = spec
            .get("src")
            .and_then(toml::Value::as_str)
            .with_context(|| format!("[{name}] needs `src`"))?;
        let layers = spec
            .get("layers")
            .and_then(toml::Value::as_array)
            .with_context(|| format!("[{name}] needs `layers`"))?
            .iter()
            .map(|layer| {
                layer
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|m| m.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        crates.push(CrateLayers {
            crate_name: name.clone(),
            src: root.join(src),
            layers,
        });
    }
    Ok(crates)
}

/// Check every configured crate; print every violation, fail if there is one.
pub(crate) fn check(root: &Path) -> Result<()> {
    let mut violations = Vec::new();
    let mut edges = 0;
    for krate in read_config(root)? {
        let (found, count) = violations_in(&krate)?;
        edges += count;
        violations.extend(
            found
                .into_iter()
                .map(|v| format!("{}: {v}", krate.crate_name)),
        );
    }
    if violations.is_empty() {
        say(&format!(
            "modules: {edges} module edges, every one downward"
        ));
        return Ok(());
    }
    for v in &violations {
        say(&format!("modules: {v}"));
    }
    bail!("{} module-layer violation(s)", violations.len())
}

/// The violations of one crate, and how many edges it has.
fn violations_in(krate: &CrateLayers) -> Result<(Vec<String>, usize)> {
    let modules = modules_of(&krate.src)?;
    let layer_of: BTreeMap<&str, usize> = krate
        .layers
        .iter()
        .enumerate()
        .flat_map(|(n, layer)| layer.iter().map(move |m| (m.as_str(), n)))
        .collect();
    let mut violations = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let top = top_of(module);
        if module.is_empty() {
            continue;
        }
        let Some(&from) = layer_of.get(top) else {
            violations.push(format!(
                "module `{top}` is not listed in xtask/modules.toml"
            ));
            continue;
        };
        let text = fs_err::read_to_string(file)?;
        for target in paths_used(module, &strip_tests(&text)) {
            let Some(target) = resolve(&modules, &target).filter(|t| !t.is_empty()) else {
                continue;
            };
            let to_top = top_of(&target);
            if to_top == top {
                if !nested(module, &target) {
                    graph.entry(module.clone()).or_default().insert(target);
                }
                continue;
            }
            match layer_of.get(to_top) {
                Some(&to) if to < from => {}
                Some(_) => violations.push(format!(
                    "`{module}` uses `{target}`: `{to_top}` is not in a lower layer than `{top}`"
                )),
                None => violations.push(format!("module `{to_top}` is not listed")),
            }
        }
    }
    for cycle in cycles(&graph) {
        violations.push(format!("a cycle of modules: {}", cycle.join(" → ")));
    }
    let edges = graph.values().map(BTreeSet::len).sum::<usize>();
    Ok((violations, edges + modules.len()))
}

/// The first segment of a module path.
fn top_of(module: &str) -> &str {
    module.split("::").next().unwrap_or_default()
}

/// Whether one of `a` and `b` contains the other.
fn nested(a: &str, b: &str) -> bool {
    let within =
        |inner: &str, outer: &str| inner == outer || inner.starts_with(&format!("{outer}::"));
    within(a, b) || within(b, a)
}

/// Every module of the crate whose root is `src/lib.rs` or `src/main.rs`: its path
/// (`stages::validate`) and file.
fn modules_of(src: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut modules = BTreeMap::new();
    let mut stack = vec![(String::new(), src.to_owned())];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let joined = |name: &str| {
                if prefix.is_empty() {
                    name.to_owned()
                } else {
                    format!("{prefix}::{name}")
                }
            };
            if path.is_dir() {
                stack.push((joined(&name), path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = match name.as_str() {
                    "lib" | "main" if prefix.is_empty() => String::new(),
                    "mod" => prefix.clone(),
                    _ => joined(&name),
                };
                modules.insert(module, path);
            }
        }
    }
    Ok(modules)
}

/// The text before `#[cfg(test)]` (test modules may use anything).
fn strip_tests(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Every module path `text` (the file of `module`) names with `crate::` or `super::`, made
/// absolute: `use crate::a::{b, c::d}` names `a::b` and `a::c::d`.
fn paths_used(module: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (start, _) in code.match_indices("crate::") {
        let before = code[..start].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        found.extend(expand(&code[start + "crate::".len()..]));
    }
    for (start, _) in code.match_indices("super::") {
        let before = code[..start].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
        for path in expand(&code[start + "super::".len()..]) {
            found.push(if parent.is_empty() {
                path
            } else {
                format!("{parent}::{path}")
            });
        }
    }
    found
}

/// The paths that begin `rest`: a plain path, or a brace group expanded one level deep.
fn expand(rest: &str) -> Vec<String> {
    let head: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let head = head.trim_end_matches(':').to_owned();
    let after = &rest[head.len()..];
    let after = after.trim_start_matches(':');
    if let Some(group) = after.strip_prefix('{') {
        let inner: String = group.chars().take_while(|c| *c != '}').collect();
        return inner
            .split(',')
            .map(|item| {
                item.trim()
                    .split(" as ")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .filter(|item| !item.is_empty() && item != "self")
            .map(|item| {
                if head.is_empty() {
                    item
                } else {
                    format!("{head}::{item}")
                }
            })
            .chain((!head.is_empty()).then_some(head.clone()))
            .collect();
    }
    if head.is_empty() {
        Vec::new()
    } else {
        vec![head]
    }
}

/// The longest module that `path` lies in (`stages::audit::record` → `stages::audit`).
fn resolve(modules: &BTreeMap<String, PathBuf>, path: &str) -> Option<String> {
    let mut candidate = path.to_owned();
    loop {
        if modules.contains_key(&candidate) {
            return Some(candidate);
        }
        match candidate.rsplit_once("::") {
            Some((parent, _)) => candidate = parent.to_owned(),
            None => return None,
        }
    }
}

/// Every cycle of `graph` (one per strongly connected group of two or more modules).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for start in graph.keys() {
        if seen.contains(start) {
            continue;
        }
        if let Some(cycle) = cycle_from(graph, start) {
            seen.extend(cycle.iter().cloned());
            found.push(cycle);
        }
    }
    found
}

/// A cycle through `start`, if there is one (depth-first search).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut visited = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if visited.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(files: &[(&str, &str)], layers: &[&[&str]]) -> (tempfile::TempDir, CrateLayers) {
        let dir = tempfile::tempdir().expect("tmp");
        for (path, text) in files {
            let file = dir.path().join(path);
            fs_err::create_dir_all(file.parent().expect("parent")).expect("dir");
            fs_err::write(file, text).expect("file");
        }
        let krate = CrateLayers {
            crate_name: "demo".into(),
            src: dir.path().to_owned(),
            layers: layers
                .iter()
                .map(|l| l.iter().map(|m| (*m).to_owned()).collect())
                .collect(),
        };
        (dir, krate)
    }

    const LIB: &str = "mod data;\nmod stages;\nmod driver;\n";

    #[test]
    fn downward_edges_pass_and_a_planted_back_edge_fails() {
        let layers: &[&[&str]] = &[&["data"], &["stages"], &["driver"]];
        let good = [
            ("lib.rs", LIB),
            ("data.rs", "pub struct Plan;\n"),
            ("stages/mod.rs", "pub mod price;\npub mod inspect;\n"),
            (
                "stages/price.rs",
                "use crate::data::Plan;\nuse super::inspect::Texts;\n",
            ),
            ("stages/inspect.rs", "pub struct Texts;\n"),
            ("driver.rs", "use crate::{data::Plan, stages::price};\n"),
        ];
        let (_dir, ok) = krate(&good, layers);
        let (violations, edges) = violations_in(&ok).expect("checked");
        assert!(violations.is_empty(), "{violations:?}");
        assert!(edges > 0);

        let mut planted = good.to_vec();
        planted[1] = ("data.rs", "pub struct Plan(crate::driver::Run);\n");
        let (_dir, bad) = krate(&planted, layers);
        let (violations, _) = violations_in(&bad).expect("checked");
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("`data` uses `driver`"),
            "{violations:?}"
        );

        let mut grouped = good.to_vec();
        grouped[2] = (
            "stages/mod.rs",
            "pub mod price;\npub mod inspect;\nuse crate::{data, driver::X};\n",
        );
        let (_dir, bad) = krate(&grouped, layers);
        let (violations, _) = violations_in(&bad).expect("checked");
        assert!(
            violations.iter().any(|v| v.contains("uses `driver`")),
            "{violations:?}"
        );
    }

    #[test]
    fn cycles_between_sibling_modules_fail_but_parents_and_children_may_meet() {
        let layers: &[&[&str]] = &[&["data"], &["stages"], &["driver"]];
        let files = [
            ("lib.rs", LIB),
            ("data.rs", ""),
            ("driver.rs", ""),
            (
                "stages/mod.rs",
                "mod price;\nmod inspect;\npub use price::quote;\nfn helper() {}\n",
            ),
            (
                "stages/price.rs",
                "use super::helper;\nuse super::inspect::x;\n",
            ),
            ("stages/inspect.rs", "use crate::stages::price::quote;\n"),
        ];
        let (_dir, krate) = krate(&files, layers);
        let (violations, _) = violations_in(&krate).expect("checked");
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(
            violations[0].contains("a cycle of modules"),
            "{violations:?}"
        );
        assert!(
            violations[0].contains("stages::price") && violations[0].contains("stages::inspect")
        );
    }

    #[test]
    fn unlisted_modules_and_comments() {
        let files = [
            ("lib.rs", "mod data;\nmod extra;\n"),
            ("data.rs", "// crate::extra is only mentioned\n"),
            ("extra.rs", ""),
        ];
        let (_dir, krate) = krate(&files, &[&["data"]]);
        let (violations, _) = violations_in(&krate).expect("checked");
        assert_eq!(
            violations,
            ["module `extra` is not listed in xtask/modules.toml"]
        );
    }
}
