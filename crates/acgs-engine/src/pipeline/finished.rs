//! What a finished step leaves for the steps after it: its stored files, and the text of its
//! text outputs — known from the answer itself when it is only text, so that dependents start
//! before its files are written.

use std::collections::BTreeMap;

use acgs_core::request::Artifact;
use acgs_core::task::ContentType;
use acgs_storage::output::StoredFile;

/// What a finished step left: its files, and the text of its text outputs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Finished {
    /// Stored files, in order.
    pub files: Vec<StoredFile>,
    /// The text of its text outputs, by output (`text`, `srt`).
    pub texts: BTreeMap<&'static str, String>,
    /// The step did not run: its item was missing from a list shorter than its bound.
    pub skipped: bool,
}

impl Finished {
    /// A step skipped because its item does not exist: it made nothing.
    pub(crate) fn skipped() -> Self {
        Self {
            skipped: true,
            ..Self::default()
        }
    }

    /// What later steps can use of an answer made only of text, known before its files are
    /// written; `None` when it holds media (later steps need their files).
    pub(crate) fn from_text_answer(artifacts: &[Artifact]) -> Option<Self> {
        let mut texts = BTreeMap::new();
        for artifact in artifacts {
            let Artifact::Text { text, content_type } = artifact else {
                return None;
            };
            if let Some(key) = text_key(*content_type) {
                texts.entry(key).or_insert_with(|| text.clone());
            }
        }
        Some(Self {
            files: Vec::new(),
            texts,
            skipped: false,
        })
    }

    /// What later steps can use of a step's stored files: the files, and the text of its text
    /// files.
    pub(crate) fn from_files(files: &[StoredFile]) -> Self {
        let mut texts = BTreeMap::new();
        for file in files {
            if let Some(key) = text_key(file.content_type)
                && !texts.contains_key(key)
                && let Ok(text) = fs_err::read_to_string(&file.path)
            {
                texts.insert(key, text);
            }
        }
        Self {
            files: files.to_vec(),
            texts,
            skipped: false,
        }
    }
}

/// The output a text of `content_type` gives later steps (the first of each kind counts): a text
/// or JSON is `text`, a subtitle file `srt`.
fn text_key(content_type: ContentType) -> Option<&'static str> {
    match content_type {
        ContentType::Text | ContentType::Json => Some("text"),
        ContentType::Srt => Some("srt"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::task::TaskKind;
    use acgs_storage::output::OutputRoot;

    fn text(text: &str, content_type: ContentType) -> Artifact {
        Artifact::Text {
            text: text.to_owned(),
            content_type,
        }
    }

    #[tokio::test]
    async fn a_text_answer_gives_later_steps_what_its_stored_files_give() {
        let answer = [
            text("a caption", ContentType::Text),
            text("{\"caption\":\"a caption\"}", ContentType::Json),
            text("1\n00:00:00,000 --> 00:00:01,000\nhi\n", ContentType::Srt),
        ];
        let early = Finished::from_text_answer(&answer).expect("an answer of text only");
        let tmp = tempfile::tempdir().expect("tmp");
        let run = OutputRoot::open(tmp.path())
            .and_then(|root| root.create_run("r1"))
            .expect("run folder");
        let allowed = crate::stages::store::allowed_types(TaskKind::SpeechToText);
        let mut files = Vec::new();
        for (n, artifact) in answer.iter().enumerate() {
            let Artifact::Text { text, content_type } = artifact else {
                unreachable!("the answer is text")
            };
            let stored = run
                .write_bytes(
                    &format!("t-{n}"),
                    text.as_bytes(),
                    allowed,
                    Some(*content_type),
                )
                .await
                .expect("stored");
            files.push(stored);
        }
        let stored = Finished::from_files(&files);
        assert_eq!(early.texts, stored.texts);
        assert_eq!(early.texts["text"], "a caption", "the first text is `text`");
        assert!(early.texts["srt"].contains("-->"));
        assert!(early.files.is_empty() && stored.files.len() == 3);
    }

    #[test]
    fn an_answer_with_media_waits_for_its_files() {
        let image = Artifact::Bytes {
            data: b"\x89PNG\r\n\x1a\n".to_vec(),
            claimed_type: None,
        };
        let url = Artifact::Url {
            url: "https://cdn.example/clip.mp4".into(),
            claimed_type: None,
        };
        assert!(
            Finished::from_text_answer(&[text("a caption", ContentType::Text), image]).is_none()
        );
        assert!(Finished::from_text_answer(&[url]).is_none());
    }
}
