//! Files a pipeline names: relative, inside its folder after links are resolved, regular — the
//! same rule for step fields and for input defaults.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{InputSpec, InputType};

/// `path` (as written in the file) resolved inside `folder`, or why it may not be read.
pub(crate) fn inside(folder: &Path, path: &str) -> Result<PathBuf, String> {
    let relative = Path::new(path.trim());
    if relative.as_os_str().is_empty()
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "`{path}` must be a path inside the pipeline's folder, without `..`; give other files with --input"
        ));
    }
    let root = fs_err::canonicalize(folder)
        .map_err(|e| format!("the pipeline's folder cannot be read: {}", e.kind()))?;
    let full =
        fs_err::canonicalize(root.join(relative)).map_err(|e| format!("`{path}`: {}", e.kind()))?;
    if !full.starts_with(&root) {
        return Err(format!("`{path}` leads outside the pipeline's folder"));
    }
    if !fs_err::metadata(&full).is_ok_and(|m| m.is_file()) {
        return Err(format!("`{path}` is not a regular file"));
    }
    Ok(full)
}

/// The declared inputs, a media input's default held to the rule for paths in the file (and
/// resolved to the file it names); each refused default goes to `problem`.
pub(crate) fn input_defaults(
    declared: &BTreeMap<String, InputSpec>,
    folder: &Path,
    mut problem: impl FnMut(String),
) -> BTreeMap<String, InputSpec> {
    let mut inputs = declared.clone();
    for (name, spec) in &mut inputs {
        let Some(default) = spec.default.as_mut().filter(|_| spec.ty != InputType::Text) else {
            continue;
        };
        match inside(folder, default) {
            Ok(full) => *default = full.display().to_string(),
            Err(reason) => problem(format!("input `{name}`: {reason}")),
        }
    }
    inputs
}
