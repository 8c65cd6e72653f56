//! Stage 13: store every artifact. Result URLs are fetched through the provider (which attaches
//! its key only on its own base origin); inline bytes and data URIs take the same path: a size cap
//! per task, the sniffed type on the task's allow-list (never SVG, HTML or XML), an atomic 0600
//! write, and the sha256 recorded.

use acgs_core::Provider;
use acgs_core::provider::{Charge, FailureClass, ProviderError};
use acgs_core::redact::Redactor;
use acgs_core::request::Artifact;
use acgs_core::task::{ContentType, MediaKind, TaskKind};
use acgs_storage::output::{RunDir, StoredFile};
use base64::Engine as _;

use crate::error::EngineError;

/// The types a task may write.
#[must_use]
pub(crate) fn allowed_types(task: TaskKind) -> &'static [ContentType] {
    match task.output() {
        MediaKind::Image => &[
            ContentType::Png,
            ContentType::Jpeg,
            ContentType::Webp,
            ContentType::Gif,
        ],
        MediaKind::Video => &[ContentType::Mp4, ContentType::Webm, ContentType::Quicktime],
        MediaKind::Audio => &[
            ContentType::Mp3,
            ContentType::Wav,
            ContentType::Ogg,
            ContentType::Flac,
            ContentType::M4a,
        ],
        MediaKind::Text => &[ContentType::Text, ContentType::Json, ContentType::Srt],
    }
}

/// File stems for the artifacts: `<stem>` alone for one output named by the user, or for text
/// renderings of one result (a transcript's `.txt`, `.json` and `.srt`); else `<stem>-<n>`.
#[must_use]
pub(crate) fn stems_for(stem: &str, artifacts: &[Artifact], user_named: bool) -> Vec<String> {
    let renderings =
        artifacts.len() > 1 && artifacts.iter().all(|a| matches!(a, Artifact::Text { .. }));
    if renderings {
        return vec![stem.to_owned(); artifacts.len()];
    }
    stems(stem, artifacts.len(), user_named)
}

/// File stems for `count` outputs: `<stem>` alone for one output named by the user, else
/// `<stem>-<n>`.
#[must_use]
pub(crate) fn stems(stem: &str, count: usize, user_named: bool) -> Vec<String> {
    if count == 1 && user_named {
        vec![stem.to_owned()]
    } else {
        (1..=count).map(|n| format!("{stem}-{n}")).collect()
    }
}

/// Mask every loaded key in the text a model or provider wrote (a model may echo a key it saw),
/// before it is stored or handed to a later step.
pub(crate) fn redact_texts(artifacts: &mut [Artifact], redactor: &Redactor) {
    for artifact in artifacts {
        if let Artifact::Text { text, .. } = artifact
            && let std::borrow::Cow::Owned(masked) = redactor.redact(text)
        {
            *text = masked;
        }
    }
}

/// Store `artifacts` in `run` under `stems`.
pub(crate) async fn store(
    provider: &dyn Provider,
    artifacts: &[Artifact],
    run: &RunDir,
    task: TaskKind,
    stems: &[String],
) -> Result<Vec<StoredFile>, EngineError> {
    let allowed = allowed_types(task);
    let cap = task.output_cap_bytes();
    let mut stored = Vec::with_capacity(artifacts.len());
    for (artifact, stem) in artifacts.iter().zip(stems) {
        let file = match artifact {
            Artifact::Url { url, .. } if url.starts_with("data:") => {
                let bytes = decode_data_uri(url, cap)?;
                run.write_bytes(stem, &bytes, allowed, None).await?
            }
            Artifact::Url { url, .. } => {
                let mut file = run.create_file()?;
                provider.download(url, &mut file, cap).await?;
                file.finish(stem, allowed, None).await?
            }
            Artifact::Bytes { data, .. } => {
                if data.len() as u64 > cap {
                    return Err(too_large(cap));
                }
                run.write_bytes(stem, data, allowed, None).await?
            }
            Artifact::Text { text, content_type } => {
                run.write_bytes(stem, text.as_bytes(), allowed, Some(*content_type))
                    .await?
            }
        };
        stored.push(file);
    }
    Ok(stored)
}

fn too_large(cap: u64) -> EngineError {
    ProviderError::new(
        FailureClass::Other,
        "network.too_large",
        format!("an output is larger than the {cap}-byte cap for this task"),
        Charge::Estimate,
    )
    .into()
}

/// Decode `data:<mime>;base64,<data>`, refusing more than `cap` bytes before decoding.
fn decode_data_uri(uri: &str, cap: u64) -> Result<Vec<u8>, EngineError> {
    let bad = || -> EngineError {
        ProviderError::new(
            FailureClass::Other,
            "provider.bad_response",
            "the provider returned a malformed data URI",
            Charge::Estimate,
        )
        .into()
    };
    let (meta, data) = uri
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(bad)?;
    if !meta.ends_with(";base64") {
        return Err(bad());
    }
    if (data.len() as u64 / 4).saturating_mul(3) > cap {
        return Err(too_large(cap));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_follow_the_naming_rule() {
        assert_eq!(stems("image", 1, false), vec!["image-1"]);
        assert_eq!(stems("cover", 1, true), vec!["cover"]);
        assert_eq!(stems("cover", 2, true), vec!["cover-1", "cover-2"]);
    }

    #[test]
    fn text_a_model_wrote_is_redacted_before_it_is_stored() {
        let redactor = Redactor::new();
        let key = "sk_live_Zq8Lm3Np7Rt2Vw9Xy4Ab6Cd1"; // acgs:allow-credential
        redactor.add_secret(key);
        let mut artifacts = vec![
            Artifact::Text {
                text: format!("the key was {key}, and part {}", &key[4..20]),
                content_type: ContentType::Text,
            },
            Artifact::Bytes {
                data: b"\x89PNG".to_vec(),
                claimed_type: None,
            },
        ];
        redact_texts(&mut artifacts, &redactor);
        let Artifact::Text { text, .. } = &artifacts[0] else {
            panic!("text first")
        };
        assert!(!text.contains(&key[4..16]), "{text}");
        assert_eq!(text.matches(acgs_core::redact::MASK).count(), 2, "{text}");
    }

    #[test]
    fn data_uris_decode_within_the_cap() {
        assert_eq!(
            decode_data_uri("data:image/png;base64,iVBORw0KGgo=", 100).expect("decodes"),
            b"\x89PNG\r\n\x1a\n"
        );
        assert!(decode_data_uri("data:image/png;base64,iVBORw0KGgo=", 2).is_err());
        assert!(decode_data_uri("data:text/html,<b>x</b>", 100).is_err());
    }

    #[test]
    fn markup_is_never_an_allowed_type() {
        for task in TaskKind::ALL {
            assert!(
                allowed_types(task)
                    .iter()
                    .all(|t| !t.mime().contains("svg") && !t.mime().contains("html"))
            );
        }
    }
}
