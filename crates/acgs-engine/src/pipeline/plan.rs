//! Each step's request: references filled from the inputs and finished steps, or — for the
//! estimate, before anything exists — from worst-case stand-ins.
//!
//! A stand-in for model-written text is as long as that model may write (`max_output_tokens`
//! × 4 characters, or a transcript's `guard.max_speech_chars`), cut to what the consuming field
//! accepts; a stand-in image has the size its step asks for (2048 × 2048 when unknown); a video
//! the duration asked for; speech one second per 8 characters of its text. When a step runs it
//! is priced again on what really exists, and refused if that costs more than was reserved.

use std::collections::BTreeMap;
use std::path::PathBuf;

use acgs_core::config::Config;
use acgs_core::pricing::{duration_seconds, image_dimensions};
use acgs_core::task::{ContentType, MediaKind, TaskKind};
use serde_json::Value;

pub(crate) use super::finished::Finished;
use super::refs::{self, OutputKind, Piece, Ref};
use super::{InputType, MediaSource, Pipeline, Step};
use crate::request::{AssumedMedia, GenerationRequest};
use crate::stages::inspect::limit_for;

/// Characters a model token is counted as for text stand-ins.
const CHARS_PER_TOKEN: u64 = 4;
/// Output tokens assumed when a text model's bound is not a literal.
const DEFAULT_OUTPUT_TOKENS: u64 = 8192;
/// Stand-in image size when the step does not say.
const DEFAULT_PIXELS: (u64, u64) = (2048, 2048);
/// Stand-in video length when the step does not say.
const DEFAULT_VIDEO_SECONDS: u64 = 60;
/// Characters of speech per second assumed for stand-in audio (slow speech).
const CHARS_PER_SPEECH_SECOND: u64 = 8;

/// What a run knows when it builds a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// Input values (text, or paths for media inputs).
    pub inputs: BTreeMap<String, String>,
    /// Finished steps.
    pub finished: BTreeMap<String, Finished>,
}

/// A reference's value.
enum Resolved {
    Text(String),
    File(PathBuf),
    Assumed(AssumedMedia),
}

/// The step's request: references filled from `known`, or with stand-ins where `estimate` allows
/// them. Model-written texts are returned apart (flag, text) so the caller can inspect them
/// (stand-ins are not: they hold nothing a model wrote).
pub(crate) fn request_for(
    pipeline: &Pipeline,
    step: &Step,
    known: &Known,
    estimate: bool,
    config: &Config,
) -> Result<(GenerationRequest, Vec<(String, String)>), String> {
    let mut request = GenerationRequest {
        model: step.model.qualified_key(),
        count: step.count,
        out_stem: None,
        ..GenerationRequest::default()
    };
    let mut model_texts = Vec::new();
    let limit = limit_for(step.model.task, step.model.max_text_chars, config);
    for (flag, pieces) in &step.texts {
        let literal: u64 = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.chars().count() as u64,
                Piece::Ref(_) => 0,
            })
            .sum();
        let room = stand_in_room(
            pipeline,
            pieces,
            known,
            estimate,
            u64::from(limit) - literal.min(u64::from(limit)),
        );
        let mut failure = None;
        let text = refs::render(pieces, |r| {
            match value_of(pipeline, r, known, estimate, room, config) {
                Ok(Resolved::Text(t)) => {
                    // Text a model wrote (not a stand-in for text not written yet).
                    if matches!(r, Ref::Step { step, .. } if known.finished.contains_key(step)) {
                        model_texts.push((flag.clone(), t.clone()));
                    }
                    t
                }
                Ok(_) => {
                    failure = Some(format!("`{flag}` got a file where it takes text"));
                    String::new()
                }
                Err(e) => {
                    failure = Some(e);
                    String::new()
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        request.texts.insert(flag.clone(), text);
    }
    for (flag, source) in &step.media {
        match source {
            MediaSource::Path(path) => request.inputs.push((flag.clone(), path.clone())),
            // An item of a list that turned out shorter is left out.
            MediaSource::Item(r) if item_missing(r, known) => {}
            MediaSource::Item(r) => match value_of(pipeline, r, known, estimate, 0, config)? {
                Resolved::File(path) => request.inputs.push((flag.clone(), path)),
                Resolved::Assumed(media) => request.assumed_inputs.push((flag.clone(), media)),
                Resolved::Text(_) => {
                    return Err(format!("`{flag}` got text where it takes a file"));
                }
            },
            MediaSource::Ref(r) => match value_of(pipeline, r, known, estimate, 0, config)? {
                Resolved::File(path) => request.inputs.push((flag.clone(), path)),
                Resolved::Assumed(media) => request.assumed_inputs.push((flag.clone(), media)),
                Resolved::Text(_) => {
                    return Err(format!("`{flag}` got text where it takes a file"));
                }
            },
        }
    }
    for (name, pieces) in &step.params {
        let mut failure = None;
        let value = refs::render(pieces, |r| {
            match value_of(pipeline, r, known, estimate, u64::MAX, config) {
                Ok(Resolved::Text(t)) => t,
                _ => {
                    failure = Some(format!("parameter `{name}` has no value"));
                    String::new()
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        request.params.push((name.clone(), value));
    }
    request.out_stem = Some(step.id.clone());
    Ok((request, model_texts))
}

/// How long each stand-in in a text field of `pieces` may be: what the field's `room` (its limit
/// less its literal text) leaves once the values already known (inputs, finished steps) are in,
/// shared by the stand-ins.
fn stand_in_room(
    pipeline: &Pipeline,
    pieces: &[Piece],
    known: &Known,
    estimate: bool,
    room: u64,
) -> u64 {
    let (mut used, mut stand_ins) = (0u64, 0u64);
    for r in refs::refs(pieces) {
        match r {
            Ref::Step { step, .. } if !known.finished.contains_key(step) && estimate => {
                stand_ins += 1;
            }
            Ref::Step { step, output, .. } => {
                let text = known.finished.get(step).and_then(|done| {
                    let key = if *output == OutputKind::Srt {
                        "srt"
                    } else {
                        "text"
                    };
                    done.texts.get(key)
                });
                used = used.saturating_add(text.map_or(0, |t| t.chars().count() as u64));
            }
            Ref::Input(name) => {
                let value = known
                    .inputs
                    .get(name)
                    .or_else(|| pipeline.inputs.get(name)?.default.as_ref());
                used = used.saturating_add(value.map_or(0, |v| v.chars().count() as u64));
            }
            Ref::List { .. } | Ref::Item | Ref::Index => {}
        }
    }
    room.saturating_sub(used) / stand_ins.max(1)
}

/// Whether `step` reads an output of a step that has not finished (so its request, made now,
/// holds stand-ins).
pub(crate) fn uses_unfinished(step: &Step, known: &Known) -> bool {
    let unfinished =
        |r: &Ref| matches!(r, Ref::Step { step, .. } if !known.finished.contains_key(step));
    let in_media = step.media.iter().any(|(_, source)| match source {
        MediaSource::Ref(r) | MediaSource::Item(r) => unfinished(r),
        MediaSource::Path(_) => false,
    });
    in_media
        || step
            .texts
            .iter()
            .chain(&step.params)
            .any(|(_, pieces)| refs::refs(pieces).any(unfinished))
}

fn value_of(
    pipeline: &Pipeline,
    r: &Ref,
    known: &Known,
    estimate: bool,
    room: u64,
    config: &Config,
) -> Result<Resolved, String> {
    match r {
        Ref::Input(name) => {
            let spec = pipeline
                .inputs
                .get(name)
                .ok_or_else(|| format!("input `{name}` is not declared"))?;
            let value = known
                .inputs
                .get(name)
                .or(spec.default.as_ref())
                .ok_or_else(|| format!("input `{name}` needs a value (--input {name}=…)"))?;
            Ok(match spec.ty {
                InputType::Text => Resolved::Text(value.clone()),
                _ => Resolved::File(PathBuf::from(value)),
            })
        }
        Ref::Step {
            step,
            output,
            index,
        } => match known.finished.get(step) {
            Some(done) => produced(done, step, *output, *index),
            None if estimate => {
                let upstream = pipeline
                    .step(step)
                    .ok_or_else(|| format!("there is no step `{step}`"))?;
                Ok(stand_in(pipeline, upstream, *output, room, config))
            }
            None => Err(format!("step `{step}` has not finished")),
        },
        Ref::List { .. } | Ref::Item | Ref::Index => {
            Err("a list or an item was left in a checked step".into())
        }
    }
}

/// Whether item `r` of a finished list does not exist: the list turned out shorter than its
/// bound, or the step that would have made it was skipped. A list that cannot be read (not a
/// JSON list of strings, an answer cut short) is not "shorter": its items fail with that reason.
pub(crate) fn item_missing(r: &Ref, known: &Known) -> bool {
    let Ref::Step {
        step,
        output,
        index,
    } = r
    else {
        return false;
    };
    let Some(done) = known.finished.get(step) else {
        return false;
    };
    if done.skipped {
        return true;
    }
    match output {
        OutputKind::Items => done
            .texts
            .get("text")
            .and_then(|text| serde_json::from_str::<Vec<serde_json::Value>>(text).ok())
            .is_some_and(|items| *index >= items.len()),
        _ => produced(done, step, *output, *index).is_err(),
    }
}

/// Whether `step`, one copy of a step that runs once per item, has no item to run for.
pub(crate) fn skips(step: &Step, known: &Known) -> bool {
    step.item.as_ref().is_some_and(|r| item_missing(r, known))
}

/// A finished step's output.
fn produced(
    done: &Finished,
    step: &str,
    output: OutputKind,
    index: usize,
) -> Result<Resolved, String> {
    let missing = || format!("step `{step}` made no {}", output.name());
    match output {
        OutputKind::Items => {
            let text = done.texts.get("text").ok_or_else(missing)?;
            let items: Vec<String> = serde_json::from_str(text)
                .map_err(|_| format!("step `{step}` did not write a JSON list of strings"))?;
            items
                .into_iter()
                .nth(index)
                .filter(|item| !item.trim().is_empty())
                .map(Resolved::Text)
                .ok_or_else(|| format!("step `{step}` wrote no item {index}"))
        }
        OutputKind::Text | OutputKind::Transcript | OutputKind::Srt => {
            let key = if output == OutputKind::Srt {
                "srt"
            } else {
                "text"
            };
            done.texts
                .get(key)
                .cloned()
                .map(Resolved::Text)
                .ok_or_else(missing)
        }
        media => done
            .files
            .iter()
            .filter(|f| {
                f.content_type.media_kind() == media.media() && f.content_type != ContentType::Srt
            })
            .nth(index)
            .map(|f| Resolved::File(f.path.clone()))
            .ok_or_else(missing),
    }
}

/// The worst-case stand-in for an output of `upstream` that does not exist yet.
fn stand_in(
    pipeline: &Pipeline,
    upstream: &Step,
    output: OutputKind,
    room: u64,
    config: &Config,
) -> Resolved {
    let model = &upstream.model;
    match output.media() {
        MediaKind::Text => {
            let chars = text_bound(upstream, config).min(room);
            Resolved::Text("x".repeat(usize::try_from(chars).unwrap_or(0)))
        }
        MediaKind::Image => Resolved::Assumed(AssumedMedia {
            kind: MediaKind::Image,
            pixels: Some(
                literal_param(upstream, "image_size")
                    .or_else(|| model.params.get("image_size")?.default.clone())
                    .as_ref()
                    .and_then(image_dimensions)
                    .unwrap_or(DEFAULT_PIXELS),
            ),
            seconds: None,
        }),
        MediaKind::Video => Resolved::Assumed(AssumedMedia {
            kind: MediaKind::Video,
            pixels: None,
            seconds: Some(video_seconds(pipeline, upstream, 0)),
        }),
        MediaKind::Audio => {
            let chars = speech_chars(pipeline, upstream, config);
            Resolved::Assumed(AssumedMedia {
                kind: MediaKind::Audio,
                pixels: None,
                seconds: Some(chars.div_ceil(CHARS_PER_SPEECH_SECOND).max(1)),
            })
        }
    }
}

/// The longest video `step` can make: the duration it asks for; for a local edit (a join, a
/// cut, a mux) the length of every video it reads, added up, with a second more for each (a
/// "5 s" clip may last 5.04 s, and per-second prices round up) — so a paid step that reads a
/// joined film is priced for all of it.
fn video_seconds(pipeline: &Pipeline, step: &Step, depth: u32) -> u64 {
    if step.model.task != TaskKind::EditVideo {
        return literal_param(step, "duration")
            .or_else(|| step.model.params.get("duration")?.default.clone())
            .as_ref()
            .and_then(duration_seconds)
            .unwrap_or(DEFAULT_VIDEO_SECONDS);
    }
    step.media
        .iter()
        .filter(|(flag, _)| {
            let spec = step.model.field_for_flag(flag).map(|(_, s)| s);
            spec.and_then(|s| s.media) == Some(MediaKind::Video)
        })
        .map(|(_, source)| match source {
            MediaSource::Ref(Ref::Step { step: from, .. })
            | MediaSource::Item(Ref::Step { step: from, .. })
                if depth < 16 =>
            {
                pipeline
                    .step(from)
                    .map_or(DEFAULT_VIDEO_SECONDS, |s| {
                        video_seconds(pipeline, s, depth + 1)
                    })
                    .saturating_add(1)
            }
            _ => DEFAULT_VIDEO_SECONDS,
        })
        .fold(0, u64::saturating_add)
        .max(1)
}

/// The longest text `step` can write.
fn text_bound(step: &Step, config: &Config) -> u64 {
    if step.model.task == TaskKind::SpeechToText {
        return u64::from(config.guard.max_speech_chars);
    }
    let tokens = literal_param(step, "max_output_tokens")
        .or_else(|| step.model.params.get("max_output_tokens")?.default.clone())
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .unwrap_or(DEFAULT_OUTPUT_TOKENS);
    tokens.saturating_mul(CHARS_PER_TOKEN)
}

/// The most characters a speech step can speak: its literal text, or the bound of what feeds it.
fn speech_chars(pipeline: &Pipeline, step: &Step, config: &Config) -> u64 {
    let limit = u64::from(limit_for(
        step.model.task,
        step.model.max_text_chars,
        config,
    ));
    step.texts
        .iter()
        .map(|(_, pieces)| {
            pieces
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.chars().count() as u64,
                    Piece::Ref(Ref::Step { step, .. }) => {
                        pipeline.step(step).map_or(limit, |s| text_bound(s, config))
                    }
                    Piece::Ref(_) => limit,
                })
                .sum::<u64>()
        })
        .sum::<u64>()
        .min(limit)
}

/// A parameter the step sets as a literal.
pub(super) fn literal_param(step: &Step, name: &str) -> Option<Value> {
    let (_, pieces) = step.params.iter().find(|(n, _)| n == name)?;
    match pieces.as_slice() {
        [Piece::Text(text)] => Some(
            serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.clone())),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_shorter_list_skips_an_item_a_broken_one_fails_it() {
        let item = |index| Ref::Step {
            step: "scenes".into(),
            output: OutputKind::Items,
            index,
        };
        let known = |text: &str| {
            let mut done = Finished::default();
            done.texts.insert("text", text.to_owned());
            Known {
                inputs: BTreeMap::new(),
                finished: BTreeMap::from([("scenes".to_owned(), done)]),
            }
        };
        let two = known(r#"["a fox", "a hare"]"#);
        assert!(!item_missing(&item(1), &two));
        assert!(
            item_missing(&item(2), &two),
            "past the end of a shorter list"
        );
        let cut = known(r#"["a fox", "a ha"#);
        assert!(
            !item_missing(&item(1), &cut),
            "an answer cut short is not a shorter list"
        );
        let err = produced(&cut.finished["scenes"], "scenes", OutputKind::Items, 1)
            .err()
            .expect("a broken list fails the item");
        assert!(err.contains("did not write a JSON list"), "{err}");
        let skipped = Known {
            inputs: BTreeMap::new(),
            finished: BTreeMap::from([("scenes".to_owned(), Finished::skipped())]),
        };
        assert!(item_missing(&item(0), &skipped));
    }
}
