//! ElevenLabs' other audio endpoints, one request each: sound effects
//! (`POST /v1/sound-generation`), music (`POST /v1/music`, its length in milliseconds) and
//! dialogue (`POST /v1/text-to-dialogue`, a script of `Voice: line` turns). A catalogue entry
//! names its endpoint as `API:MODEL` (`music:music_v1`); plain model ids are text to speech.

use acgs_core::provider::{Charge, FailureClass, ProviderError, ProviderResult};
use acgs_core::request::{Artifact, Output, Request, Usage};
use acgs_http::{HttpRequest, Method};
use serde_json::{Map, Value, json};

use super::{AUDIO_CAP, ElevenLabsProvider, billed_characters, voice_in};
use crate::protocol::is_voice_id;

/// The most distinct voices one dialogue may use (ElevenLabs' limit).
const MAX_VOICES: usize = 10;

/// Which API an entry's endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// Sound effects from a description.
    SoundEffect,
    /// A song from a prompt.
    Music,
    /// Several voices reading a script.
    Dialogue,
}

/// The API and model id of an `API:MODEL` endpoint; `None` for a text-to-speech model id.
pub(super) fn api_of(endpoint: &str) -> Option<(Api, &str)> {
    let (api, model) = endpoint.split_once(':')?;
    let api = match api {
        "sound-generation" => Api::SoundEffect,
        "music" => Api::Music,
        "text-to-dialogue" => Api::Dialogue,
        _ => return None,
    };
    Some((api, model))
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> &'a str {
    params.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The speaker a line names: `Name: …`, where the name is a few words of letters, digits,
/// spaces, `_`, `-` or `.` (so `10:30`, `https://…` and `Note that: …` in a long sentence
/// are not speakers).
fn speaker(line: &str) -> Option<(&str, &str)> {
    let (name, said) = line.split_once(':')?;
    let name = name.trim();
    let plausible = !name.is_empty()
        && name.len() <= 40
        && name.split_whitespace().count() <= 3
        && name.chars().any(char::is_alphabetic)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
        && !said.starts_with("//");
    plausible.then_some((name, said.trim()))
}

/// A script's turns, in order; a line without a speaker continues the turn before it.
fn turns(script: &str) -> ProviderResult<Vec<(String, String)>> {
    let mut turns: Vec<(String, String)> = Vec::new();
    for (n, line) in script.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match (speaker(line), turns.last_mut()) {
            (Some((voice, said)), _) => turns.push((voice.to_owned(), said.to_owned())),
            (None, Some((_, said))) => {
                said.push(' ');
                said.push_str(line);
            }
            (None, None) => {
                return Err(bad_script(format!(
                    "line {} of the dialogue names no speaker; write `Voice: what they say`",
                    n + 1
                )));
            }
        }
    }
    if turns.is_empty() {
        return Err(bad_script("the dialogue has no lines".into()));
    }
    if let Some((voice, _)) = turns.iter().find(|(_, said)| said.trim().is_empty()) {
        return Err(bad_script(format!(
            "{voice} has a turn with nothing to say"
        )));
    }
    Ok(turns)
}

fn bad_script(message: String) -> ProviderError {
    // A script acgs cannot read is the input's fault, like an unknown voice (exit 2).
    ProviderError::new(
        FailureClass::UnknownName,
        "input.dialogue_script",
        message,
        Charge::Release,
    )
}

impl ElevenLabsProvider {
    /// One request to the entry's API, answered with the audio.
    pub(super) async fn generate_audio(
        &self,
        request: &Request,
        api: Api,
        model_id: &str,
    ) -> ProviderResult<Output> {
        let params = &request.params;
        let copied = |body: &mut Value, names: &[&str]| {
            for name in names {
                if let Some(value) = params.get(*name) {
                    body[*name] = value.clone();
                }
            }
        };
        let (path, body, characters) = match api {
            Api::SoundEffect => {
                let mut body = json!({"text": text(params, "text"), "model_id": model_id});
                copied(&mut body, &["duration_seconds", "prompt_influence", "loop"]);
                ("v1/sound-generation", body, None)
            }
            Api::Music => {
                let seconds = params.get("duration").and_then(Value::as_u64).unwrap_or(30);
                let mut body = json!({"prompt": text(params, "prompt"), "model_id": model_id,
                                      "music_length_ms": seconds.saturating_mul(1000)});
                copied(&mut body, &["force_instrumental"]);
                ("v1/music", body, None)
            }
            Api::Dialogue => {
                let inputs = self.dialogue_inputs(text(params, "text")).await?;
                let characters: usize = inputs
                    .iter()
                    .map(|i| i["text"].as_str().map_or(0, |t| t.chars().count()))
                    .sum();
                let body = json!({"inputs": inputs, "model_id": model_id});
                ("v1/text-to-dialogue", body, Some(characters as u64))
            }
        };
        let format = params
            .get("output_format")
            .and_then(Value::as_str)
            .unwrap_or("mp3_44100_128");
        let mut url = self.url(path)?;
        url.query_pairs_mut().append_pair("output_format", format);
        let response = self
            .call(
                HttpRequest::new(Method::Post, url)
                    .credential(&self.credential)
                    .header("accept", "audio/mpeg")
                    .json(body)
                    .cap(AUDIO_CAP)
                    .submit(),
            )
            .await?;
        let billed = characters.map(|counted| billed_characters(&response, counted));
        Ok(Output {
            artifacts: vec![Artifact::Bytes {
                data: response.body.to_vec(),
                claimed_type: Some("audio/mpeg".into()),
            }],
            usage: Usage {
                characters: billed,
                seconds: (api == Api::Music)
                    .then(|| params.get("duration").and_then(Value::as_u64))
                    .flatten(),
                ..Usage::default()
            },
            request_id: response.header("request-id").map(str::to_owned),
            ..Output::default()
        })
    }

    /// `Voice: line` turns (a line without a speaker continues the last turn), each voice
    /// named or given by id; the account's voices are read once per script.
    pub(super) async fn dialogue_inputs(&self, script: &str) -> ProviderResult<Vec<Value>> {
        let turns = turns(script)?;
        let mut ids: Vec<(String, String)> = Vec::new();
        let mut voices = None;
        let mut inputs = Vec::new();
        for (voice, said) in turns {
            let known = ids.iter().find(|(v, _)| v.eq_ignore_ascii_case(&voice));
            let id = match known {
                Some((_, id)) => id.clone(),
                None if is_voice_id(&voice) => voice.clone(),
                None => {
                    if voices.is_none() {
                        voices = Some(self.voices().await?);
                    }
                    voice_in(&voice, voices.as_deref().unwrap_or_default())?
                }
            };
            if known.is_none() {
                ids.push((voice, id.clone()));
            }
            if ids.len() > MAX_VOICES {
                return Err(bad_script(format!(
                    "a dialogue may use at most {MAX_VOICES} voices"
                )));
            }
            inputs.push(json!({"text": said, "voice_id": id}));
        }
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::{speaker, turns};

    #[test]
    fn speakers_are_names_not_times_or_links() {
        assert_eq!(
            speaker("Rachel: Where were you?"),
            Some(("Rachel", "Where were you?"))
        );
        assert_eq!(
            speaker("Narrator Nine: Once."),
            Some(("Narrator Nine", "Once."))
        );
        assert_eq!(speaker("10:30 works for me"), None);
        assert_eq!(speaker("see https://example.com"), None);
        assert_eq!(speaker("We said this, and then: more"), None);
        let script = "Rachel: Meet at\n10:30 then.\nAdam: Fine: see https://x.y";
        let parsed = turns(script).expect("a script");
        assert_eq!(parsed[0].1, "Meet at 10:30 then.");
        assert_eq!(
            parsed[1],
            ("Adam".to_owned(), "Fine: see https://x.y".to_owned())
        );
        assert!(
            turns("Adam:").is_err(),
            "an empty turn is refused before anything is sent"
        );
    }
}
