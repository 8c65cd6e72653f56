//! Files a pipeline names: relative, inside its folder after links are resolved, regular — the
//! same rule for step fields and for input defaults.

use std::path::{Component, Path, PathBuf};

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
