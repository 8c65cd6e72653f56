//! Transcripts: words with timings, and their SubRip (`.srt`) rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use acgs_core::request::Artifact;
use acgs_core::task::ContentType;

/// One transcribed word (or spacing/event) with its timing in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Word {
    /// The text.
    pub text: String,
    /// Start, ms.
    pub start_ms: u64,
    /// End, ms.
    pub end_ms: u64,
    /// Speaker label, when diarized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// Seconds (as providers send them, e.g. `1.234`) to whole milliseconds, never negative.
#[must_use]
#[allow(clippy::float_arithmetic)] // provider timings are decimal seconds; rounded once here
pub fn seconds_to_ms(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        format!("{:.0}", seconds * 1000.0).parse().unwrap_or(0)
    } else {
        0
    }
}

fn timestamp(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02},{:03}",
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    )
}

/// Longest cue, ms.
const MAX_CUE_MS: u64 = 6000;
/// Longest cue text.
const MAX_CUE_CHARS: usize = 42;

/// Render words as SubRip cues: a new cue after sentence-ending punctuation, a pause over a second,
/// 42 characters or 6 seconds.
#[must_use]
pub fn to_srt(words: &[Word]) -> String {
    let mut cues: Vec<(u64, u64, String)> = Vec::new();
    for word in words.iter().filter(|w| !w.text.trim().is_empty()) {
        let text = word.text.trim();
        let start_new = match cues.last() {
            None => true,
            Some((start, end, current)) => {
                let ends_sentence = current.ends_with(['.', '?', '!']);
                ends_sentence
                    || word.start_ms.saturating_sub(*end) > 1000
                    || current.chars().count() + 1 + text.chars().count() > MAX_CUE_CHARS
                    || word.end_ms.saturating_sub(*start) > MAX_CUE_MS
            }
        };
        if start_new {
            cues.push((word.start_ms, word.end_ms, text.to_owned()));
        } else if let Some((_, end, current)) = cues.last_mut() {
            *end = word.end_ms.max(*end);
            current.push(' ');
            current.push_str(text);
        }
    }
    let mut out = String::new();
    for (i, (start, end, text)) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(*start),
            timestamp(*end),
            text
        );
    }
    out
}

/// An ElevenLabs Scribe result (direct or through fal) (`text` and `words[{text, start, end, type, speaker_id}]`) as three
/// artifacts — the text, the words with millisecond timings as JSON, and SubRip subtitles — and
/// the audio's length in seconds (the last word's end).
#[must_use]
pub fn scribe_artifacts(result: &Value) -> Option<(Vec<Artifact>, u64)> {
    let text = result.get("text")?.as_str()?;
    let words: Vec<Word> = result
        .get("words")?
        .as_array()?
        .iter()
        .filter(|w| w.get("type").and_then(Value::as_str) != Some("spacing"))
        .filter_map(|w| {
            Some(Word {
                text: w.get("text")?.as_str()?.to_owned(),
                start_ms: seconds_to_ms(w.get("start")?.as_f64()?),
                end_ms: seconds_to_ms(w.get("end")?.as_f64()?),
                speaker: w
                    .get("speaker_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect();
    let seconds = words
        .iter()
        .map(|w| w.end_ms)
        .max()
        .unwrap_or(0)
        .div_ceil(1000);
    let json = serde_json::json!({
        "text": text,
        "language_code": result.get("language_code"),
        "words": words,
    });
    let artifacts = vec![
        Artifact::Text {
            text: text.to_owned(),
            content_type: ContentType::Text,
        },
        Artifact::Text {
            text: serde_json::to_string_pretty(&json).unwrap_or_default(),
            content_type: ContentType::Json,
        },
        Artifact::Text {
            text: to_srt(&words),
            content_type: ContentType::Srt,
        },
    ];
    Some((artifacts, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(text: &str, start: u64, end: u64) -> Word {
        Word {
            text: text.into(),
            start_ms: start,
            end_ms: end,
            speaker: None,
        }
    }

    #[test]
    fn cues_break_at_sentences_and_pauses() {
        let words = [
            w("Hello", 0, 400),
            w("world.", 450, 900),
            w("Again", 3000, 3400),
            w(" ", 3400, 3450),
            w("here", 3450, 3900),
        ];
        let srt = to_srt(&words);
        assert_eq!(
            srt,
            "1\n00:00:00,000 --> 00:00:00,900\nHello world.\n\n2\n00:00:03,000 --> 00:00:03,900\nAgain here\n\n"
        );
    }

    #[test]
    fn seconds_convert_to_milliseconds() {
        assert_eq!(seconds_to_ms(1.2346), 1235);
        assert_eq!(seconds_to_ms(0.5), 500);
        assert_eq!(seconds_to_ms(-3.0), 0);
        assert_eq!(seconds_to_ms(f64::NAN), 0);
        assert_eq!(timestamp(3_723_004), "01:02:03,004");
    }
}
