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
        let path = match roots {
            Some(roots) => within_roots(roots, flag, path)?,
            None => path.clone(),
        };
        let input = open_one(field, flag, &path, kind)?;
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

/// The real path of `path` (`..` and symlinks resolved), if it lies inside one of `roots`. The
/// file is then opened by that path and must be the very file checked (see [`open_one`]); a
/// folder swapped for a symlink in the instant between the two is the remaining window.
pub fn within_roots(roots: &[PathBuf], flag: &str, path: &Path) -> Result<PathBuf, EngineError> {
    let shown = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let outside = || EngineError::InputOutsideRoots {
        flag: flag.to_owned(),
        shown: safe_file_name(&shown),
    };
    let real = fs_err::canonicalize(path).map_err(|e| {
        // Why a path outside the roots cannot be read is not the caller's business.
        if roots.iter().any(|r| path.starts_with(r)) {
            invalid(flag, format!("{shown}: {}", e.kind()))
        } else {
            outside()
        }
    })?;
    if roots.iter().any(|root| real.starts_with(root)) {
        Ok(real)
    } else {
        Err(outside())
    }
}

fn open_one(
    field: &str,
    flag: &str,
    path: &std::path::Path,
    kind: MediaKind,
) -> Result<LocalInput, EngineError> {
    let shown = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let fail = |reason: String| invalid(flag, format!("{shown}: {reason}"));
    // Checked before opening too: opening a FIFO would block until something writes to it.
    let before = fs_err::metadata(path).map_err(|e| fail(e.kind().to_string()))?;
    if !before.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let file = fs_err::File::open(path).map_err(|e| fail(e.kind().to_string()))?;
    let meta = file.metadata().map_err(|e| fail(e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if !same_file(&before, &meta) {
        return Err(fail("changed while it was being opened".into()));
    }
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

/// Whether two metadata describe one file (device and inode).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
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
