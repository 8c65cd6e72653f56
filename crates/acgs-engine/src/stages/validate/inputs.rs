//! Stage 2 for local input files: each opened, then checked with fstat (a regular file only),
//! its size capped, its type sniffed from its magic bytes, its facts (size, duration) read.

use std::path::{Path, PathBuf};

use acgs_core::catalog::{FieldKind, ModelSpec, ParamSpec, ParamType};
use acgs_core::request::LocalInput;
use acgs_core::task::{ContentType, MediaKind};

use super::invalid;
use crate::error::EngineError;
use crate::inputs::OpenedInputs;
use crate::request::AssumedMedia;

/// The media field a flag names, or an error naming the model.
fn media_field<'m>(
    model: &'m ModelSpec,
    flag: &str,
) -> Result<(&'m str, &'m ParamSpec), EngineError> {
    model
        .field_for_flag(flag)
        .filter(|(_, s)| s.kind == FieldKind::Media)
        .ok_or_else(|| invalid(flag, format!("`{}` takes no `{flag}` input", model.key)))
}

/// The largest input accepted per media kind.
#[must_use]
pub(crate) const fn input_cap(kind: MediaKind) -> u64 {
    const MIB: u64 = 1024 * 1024;
    match kind {
        MediaKind::Image => 50 * MIB,
        MediaKind::Audio => 500 * MIB,
        MediaKind::Video => 4096 * MIB,
        MediaKind::Text => 4 * MIB,
    }
}

/// Open and check every local input: the flag must name a media field of the model; the file must
/// be a regular file within the size cap whose magic bytes are of the field's media kind, and
/// within the model's duration limit, and — when the caller has `roots` — inside one of them.
/// Required media fields must be given.
pub(crate) fn open_inputs(
    model: &ModelSpec,
    (inputs, roots): (&[(String, PathBuf)], Option<&[PathBuf]>),
    assumed: &[(String, AssumedMedia)],
) -> Result<OpenedInputs, EngineError> {
    let mut opened = OpenedInputs {
        media_tokens: Some(0),
        ..OpenedInputs::default()
    };
    for (flag, media) in assumed {
        let field = media_field(model, flag)?;
        let facts = acgs_media::probe::MediaFacts {
            dimensions: media.pixels,
            seconds: media.seconds,
        };
        opened.add_facts(media.kind, &facts);
        opened.assumed.push(field.0.to_owned());
    }
    for (flag, path) in inputs {
        let (field, spec) = media_field(model, flag)?;
        let kind = spec.media.unwrap_or(MediaKind::Image);
        let input = open_one(field, flag, (path, roots), kind)?;
        let facts = probe_input(&input, flag)?;
        if let (Some(max), Some(secs)) = (spec.max_seconds, facts.seconds)
            && secs > max
        {
            return Err(invalid(
                flag,
                format!("is {secs} s long; `{}` accepts at most {max} s", model.key),
            ));
        }
        opened.add_facts(kind, &facts);
        opened.files.push(input);
    }
    for (name, spec) in &model.params {
        let given = opened.files.iter().filter(|f| &f.field == name).count()
            + opened.assumed.iter().filter(|f| *f == name).count();
        let flag = spec.flag.as_deref().unwrap_or(name);
        match spec.ty {
            ParamType::Media if given > 1 => return Err(invalid(flag, "takes one file")),
            ParamType::MediaList if spec.max_items.is_some_and(|max| given > max as usize) => {
                return Err(invalid(
                    flag,
                    format!("takes at most {} files", spec.max_items.unwrap_or(0)),
                ));
            }
            _ => {}
        }
        if spec.kind == FieldKind::Media && spec.required && given == 0 {
            return Err(invalid(flag, format!("`{}` needs this input", model.key)));
        }
    }
    Ok(opened)
}

/// Open `path` for reading — a regular file, without blocking on a FIFO — and, with `roots`
/// (canonical folders), only if the file opened lies inside one of them. Where it lies is read
/// from the open handle (the kernel's path of what was opened), so `..`, a symlink, or a folder
/// swapped for a symlink while it was being opened cannot lead outside. A file that cannot be
/// opened outside the roots is refused the same as one that lies outside: the caller learns
/// nothing about files it may not read.
pub(crate) fn open_input(
    roots: Option<&[PathBuf]>,
    flag: &str,
    path: &Path,
) -> Result<fs_err::File, EngineError> {
    let shown = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let outside = || EngineError::InputOutsideRoots {
        flag: flag.to_owned(),
        shown: safe_file_name(&shown),
    };
    let within = |p: &Path| roots.is_none_or(|roots| roots.iter().any(|r| p.starts_with(r)));
    let file = acgs_core::files::open_regular(path).map_err(|e| {
        if within(&lexical(path)) {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                std::io::ErrorKind::InvalidInput => "not a regular file".to_owned(),
                kind => kind.to_string(),
            };
            EngineError::InputUnreadable {
                flag: flag.to_owned(),
                shown: safe_file_name(&shown),
                reason,
            }
        } else {
            outside()
        }
    })?;
    if roots.is_some() {
        let real = acgs_core::files::real_path(file.file()).map_err(|_| outside())?;
        if !within(&real) {
            return Err(outside());
        }
    }
    Ok(file)
}

/// `path` with `.` and `..` resolved by name only (no file system access), for deciding which
/// error a file that could not be opened gets.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn open_one(
    field: &str,
    flag: &str,
    (path, roots): (&Path, Option<&[PathBuf]>),
    kind: MediaKind,
) -> Result<LocalInput, EngineError> {
    let shown = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let fail = |reason: String| invalid(flag, format!("{shown}: {reason}"));
    let file = open_input(roots, flag, path)?;
    let meta = file.metadata().map_err(|e| fail(e.kind().to_string()))?;
    let cap = input_cap(kind);
    if meta.len() > cap {
        return Err(fail(format!(
            "larger than the {} MiB allowed for this input",
            cap / (1024 * 1024)
        )));
    }
    let (file, _) = file.into_parts();
    let input = LocalInput {
        field: field.to_owned(),
        file_name: safe_file_name(&shown),
        content_type: ContentType::Text,
        size: meta.len(),
        file: std::sync::Arc::new(file),
    };
    let head = input
        .read_at(0, 64)
        .map_err(|e| fail(e.kind().to_string()))?;
    let sniffed = ContentType::sniff(&head)
        .ok_or_else(|| fail(format!("not a supported {kind:?} file").to_lowercase()))?;
    if sniffed.media_kind() != kind {
        return Err(fail(
            format!("expected {kind:?} but the file is {}", sniffed.mime()).to_lowercase(),
        ));
    }
    Ok(LocalInput {
        content_type: sniffed,
        ..input
    })
}

fn probe_input(
    input: &LocalInput,
    flag: &str,
) -> Result<acgs_media::probe::MediaFacts, EngineError> {
    let mut file: &std::fs::File = &input.file;
    acgs_media::probe::probe_file(input.content_type, &mut file, input.size).map_err(|e| {
        invalid(
            flag,
            format!("could not read {}: {}", input.file_name, e.kind()),
        )
    })
}

/// `[A-Za-z0-9._-]`, at most 64 characters, never empty or hidden.
fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "input".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use acgs_core::UserFacing as _;

    use super::open_input;

    #[test]
    fn only_files_that_really_lie_inside_the_roots_open() {
        let tmp = tempfile::tempdir().expect("tmp");
        let base = fs_err::canonicalize(tmp.path()).expect("real");
        let (inside, outside) = (base.join("in"), base.join("out"));
        fs_err::create_dir_all(&inside).expect("in");
        fs_err::create_dir_all(&outside).expect("out");
        fs_err::write(inside.join("ok.png"), b"png").expect("file");
        fs_err::write(outside.join("secret.png"), b"png").expect("file");
        std::os::unix::fs::symlink(outside.join("secret.png"), inside.join("link.png"))
            .expect("link");
        std::os::unix::fs::symlink(&outside, inside.join("dir")).expect("dir link");
        let roots = [inside.clone()];
        let code = |path: std::path::PathBuf| {
            open_input(Some(&roots), "image", &path)
                .map(|_| "opened")
                .unwrap_or_else(|e| e.code())
        };
        assert_eq!(code(inside.join("ok.png")), "opened");
        assert_eq!(code(inside.join("link.png")), "input.outside_roots");
        assert_eq!(
            code(inside.join("dir").join("secret.png")),
            "input.outside_roots"
        );
        assert_eq!(
            code(inside.join("..").join("out").join("secret.png")),
            "input.outside_roots"
        );
        assert_eq!(
            code(outside.join("missing.png")),
            "input.outside_roots",
            "nothing is said about files outside"
        );
        assert_eq!(code(inside.join("missing.png")), "input.unreadable");
        assert_eq!(
            open_input(None, "image", &inside.join("link.png"))
                .map(|_| ())
                .ok(),
            Some(()),
            "without roots a link is followed, as on the command line"
        );
    }
}
