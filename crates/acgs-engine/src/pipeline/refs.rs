//! References in step fields: `{{ inputs.NAME }}`, `{{ steps.ID.OUTPUT }}` and
//! `{{ steps.ID.images[N] }}`, substituted in one pass (values are never rescanned).

use acgs_core::task::{MediaKind, TaskKind};

/// An output a step can be referenced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The (first) image.
    Image,
    /// One image of several: `images[N]`.
    Images,
    /// The video.
    Video,
    /// The audio.
    Audio,
    /// The text a model wrote (or a transcript's text).
    Text,
    /// A transcript's text.
    Transcript,
    /// A transcript's subtitles.
    Srt,
}

impl OutputKind {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "image" => Self::Image,
            "images" => Self::Images,
            "video" => Self::Video,
            "audio" => Self::Audio,
            "text" => Self::Text,
            "transcript" => Self::Transcript,
            "srt" => Self::Srt,
            _ => return None,
        })
    }

    /// The name in references.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Images => "images",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Text => "text",
            Self::Transcript => "transcript",
            Self::Srt => "srt",
        }
    }

    /// What kind of thing it is.
    #[must_use]
    pub const fn media(self) -> MediaKind {
        match self {
            Self::Image | Self::Images => MediaKind::Image,
            Self::Video => MediaKind::Video,
            Self::Audio => MediaKind::Audio,
            Self::Text | Self::Transcript | Self::Srt => MediaKind::Text,
        }
    }
}

/// The outputs a step of `task` can be referenced by.
#[must_use]
pub(super) const fn outputs_of(task: TaskKind) -> &'static [OutputKind] {
    match task {
        TaskKind::TextToImage
        | TaskKind::ImageToImage
        | TaskKind::UpscaleImage
        | TaskKind::VideoFrame
        | TaskKind::SplitImage => &[OutputKind::Image, OutputKind::Images],
        TaskKind::TextToVideo
        | TaskKind::ImageToVideo
        | TaskKind::Avatar
        | TaskKind::UpscaleVideo
        | TaskKind::EditVideo => &[OutputKind::Video],
        TaskKind::TextToSpeech => &[OutputKind::Audio],
        TaskKind::SpeechToText => &[OutputKind::Text, OutputKind::Transcript, OutputKind::Srt],
        TaskKind::TextGeneration | TaskKind::ImageUnderstanding | TaskKind::VideoUnderstanding => {
            &[OutputKind::Text]
        }
    }
}

/// What a reference points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// A declared input.
    Input(String),
    /// An earlier step's output.
    Step {
        /// The step id.
        step: String,
        /// Which output.
        output: OutputKind,
        /// For `images[N]`.
        index: usize,
    },
}

/// A field value: literal text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A reference.
    Ref(Ref),
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn parse_ref(inner: &str) -> Result<Ref, String> {
    let bad = || {
        format!(
            "`{{{{ {inner} }}}}` is not a reference (use inputs.NAME, steps.ID.OUTPUT or steps.ID.images[N])"
        )
    };
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["inputs", name] if is_name(name) => Ok(Ref::Input((*name).to_owned())),
        ["steps", step, output] if is_name(step) => {
            let (output, index) = match output.strip_suffix(']').and_then(|o| o.split_once('[')) {
                Some(("images", n)) => (OutputKind::Images, n.parse().map_err(|_| bad())?),
                Some(_) => return Err(bad()),
                None => match OutputKind::parse(output) {
                    Some(OutputKind::Images) | None => return Err(bad()),
                    Some(kind) => (kind, 0),
                },
            };
            Ok(Ref::Step {
                step: (*step).to_owned(),
                output,
                index,
            })
        }
        _ => Err(bad()),
    }
}

/// Split a field value into literal text and references.
pub(super) fn parse(value: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "a `{{` is never closed with `}}`".to_owned())?;
        pieces.push(Piece::Ref(parse_ref(after[..close].trim())?));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// The references in `pieces`.
pub(super) fn refs(pieces: &[Piece]) -> impl Iterator<Item = &Ref> {
    pieces.iter().filter_map(|p| match p {
        Piece::Ref(r) => Some(r),
        Piece::Text(_) => None,
    })
}

/// Fill the references in one pass; what a reference gives is never read for references again.
pub(super) fn render(pieces: &[Piece], mut value_of: impl FnMut(&Ref) -> String) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.clone(),
            Piece::Ref(r) => value_of(r),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_and_render_in_one_pass() {
        let pieces =
            parse("Photo of {{ inputs.product }} after {{steps.still.image}}").expect("ok");
        assert_eq!(pieces.len(), 4);
        let out = render(&pieces, |r| match r {
            Ref::Input(_) => "{{ steps.x.text }}".into(),
            Ref::Step { .. } => "IMG".into(),
        });
        assert_eq!(
            out, "Photo of {{ steps.x.text }} after IMG",
            "values are not rescanned"
        );
        assert_eq!(
            parse("{{ steps.shots.images[2] }}").expect("ok"),
            vec![Piece::Ref(Ref::Step {
                step: "shots".into(),
                output: OutputKind::Images,
                index: 2
            })]
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        for bad in [
            "{{ inputs.product",
            "{{ env.HOME }}",
            "{{ steps.a.b.c }}",
            "{{ steps.A.image }}",
            "{{ steps.a.picture }}",
            "{{ steps.a.video[1] }}",
            "{{ inputs }}",
            "{{ steps.a.images }}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
