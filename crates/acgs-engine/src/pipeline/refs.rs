//! References in step fields: `{{ inputs.NAME }}`, `{{ steps.ID.OUTPUT }}`, one item of a list
//! (`{{ steps.ID.images[N] }}`, `items[N]`, `videos[N]`), a whole list (`{{ steps.ID.images }}`,
//! `items`, `videos`) and, in a step that runs once per item, `{{ item }}` and `{{ index }}`;
//! substituted in one pass (values are never rescanned).

use acgs_core::task::{MediaKind, TaskKind};

/// An output a step can be referenced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The (first) image.
    Image,
    /// One image of several: `images[N]`, or all of them.
    Images,
    /// One video of a step that ran once per item (`videos[N]`), or all of them.
    Videos,
    /// One string of the JSON list a text step wrote (`items[N]`), or all of them.
    Items,
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
            "videos" => Self::Videos,
            "items" => Self::Items,
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
            Self::Videos => "videos",
            Self::Items => "items",
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
            Self::Video | Self::Videos => MediaKind::Video,
            Self::Audio => MediaKind::Audio,
            Self::Text | Self::Transcript | Self::Srt | Self::Items => MediaKind::Text,
        }
    }

    /// Whether it names a list (and so takes `[N]`, or stands for every item).
    #[must_use]
    pub const fn is_list(self) -> bool {
        matches!(self, Self::Images | Self::Videos | Self::Items)
    }

    /// One item of a step that ran once per item: `videos` → `video`, `images` → `image`,
    /// `items` → `text`.
    #[must_use]
    pub(super) const fn single(self) -> Self {
        match self {
            Self::Images => Self::Image,
            Self::Videos => Self::Video,
            Self::Items => Self::Text,
            other => other,
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
        | TaskKind::EditVideo
        | TaskKind::VideoToVideo
        | TaskKind::AddSound => &[OutputKind::Video],
        TaskKind::TextToSpeech | TaskKind::TextToAudio => &[OutputKind::Audio],
        TaskKind::SpeechToText => &[OutputKind::Text, OutputKind::Transcript, OutputKind::Srt],
        TaskKind::TextGeneration => &[OutputKind::Text, OutputKind::Items],
        TaskKind::ImageUnderstanding | TaskKind::VideoUnderstanding => &[OutputKind::Text],
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
        /// For `images[N]`, `items[N]`, `videos[N]`.
        index: usize,
    },
    /// Every item of a list (`steps.ID.images`): only in `each` and in list fields, and
    /// replaced by its items when the file is checked.
    List {
        /// The step id.
        step: String,
        /// Which list.
        output: OutputKind,
    },
    /// The item a step that runs once per item runs for (replaced when the file is checked).
    Item,
    /// That item's number, from 1 (replaced by the number when the file is checked).
    Index,
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
            "`{{{{ {inner} }}}}` is not a reference (use inputs.NAME, steps.ID.OUTPUT, steps.ID.images[N], item or index)"
        )
    };
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["item"] => Ok(Ref::Item),
        ["index"] => Ok(Ref::Index),
        ["inputs", name] if is_name(name) => Ok(Ref::Input((*name).to_owned())),
        ["steps", step, output] if is_name(step) => {
            let step = (*step).to_owned();
            let (name, index) = match output.strip_suffix(']').and_then(|o| o.split_once('[')) {
                Some((name, n)) => (name, Some(n.parse::<usize>().map_err(|_| bad())?)),
                None => (*output, None),
            };
            let output = OutputKind::parse(name).ok_or_else(bad)?;
            match (output.is_list(), index) {
                (true, Some(index)) => Ok(Ref::Step {
                    step,
                    output,
                    index,
                }),
                (true, None) => Ok(Ref::List { step, output }),
                (false, None) => Ok(Ref::Step {
                    step,
                    output,
                    index: 0,
                }),
                (false, Some(_)) => Err(bad()),
            }
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
            _ => "IMG".into(),
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
        assert_eq!(
            parse("{{ steps.clips.videos }}, {{ item }} #{{ index }}").expect("ok"),
            vec![
                Piece::Ref(Ref::List {
                    step: "clips".into(),
                    output: OutputKind::Videos
                }),
                Piece::Text(", ".into()),
                Piece::Ref(Ref::Item),
                Piece::Text(" #".into()),
                Piece::Ref(Ref::Index),
            ]
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
            "{{ steps.a.text[0] }}",
            "{{ items }}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
