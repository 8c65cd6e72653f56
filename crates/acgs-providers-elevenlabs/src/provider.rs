//! [`ElevenLabsProvider`]: text-to-speech (long texts split and stitched into one file),
//! Scribe speech-to-text (a streamed multipart upload), and sound effects, music and dialogue
//! ([`sound`]) behind the [`Provider`] trait, plus the read-only calls behind `acgs voices`.

use std::collections::HashMap;
use std::sync::Mutex;

use acgs_core::ProviderId;
use acgs_core::config::ProviderUrls;
use acgs_core::provider::{
    CancellationToken, Charge, EventSink, FailureClass, HttpFailure, Provider, ProviderError,
    ProviderResult, Stage,
};
use acgs_core::request::{
    Artifact, Authorized, CancelOutcome, JobHandle, LocalInput, Output, RemoteRef, Request,
    Submitted, Usage,
};
use acgs_core::task::TaskKind;
use acgs_http::{
    Credential, HttpClient, HttpError, HttpRequest, Method, RetryPolicy, multipart_form,
    provider_error,
};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::protocol::{
    ModelInfo, Subscription, VoiceList, classify, detail_message, detail_status, is_voice_id,
    speech_body, split_text,
};

mod sound;

const NAME: &str = "ElevenLabs";
/// Where a staged input is referenced until the request that carries it is sent.
const STAGED: &str = "acgs-staged:";
/// Audio bodies are capped at this size per request.
const AUDIO_CAP: u64 = 512 * 1024 * 1024;
/// Per-request limit when neither `/v1/models` nor the catalogue gives one.
const FALLBACK_LIMIT: usize = 2500;

/// The ElevenLabs provider (key in `xi-api-key`, bound to the base origin).
#[derive(Debug)]
pub struct ElevenLabsProvider {
    http: HttpClient,
    base: Url,
    credential: Credential,
    retry: RetryPolicy,
    staged: Mutex<HashMap<String, LocalInput>>,
}

impl ElevenLabsProvider {
    /// A provider talking to the configured base URL with `key`.
    pub fn new(
        http: HttpClient,
        urls: &ProviderUrls,
        key: &SecretString,
    ) -> Result<Self, HttpError> {
        let base = urls
            .url("base_url")
            .and_then(|u| Url::parse(u.trim_end_matches('/')).ok())
            .ok_or_else(|| HttpError::Setup("providers.elevenlabs.base_url is not a URL".into()))?;
        http.check_url(&base)?;
        let credential = Credential::new(&base, "xi-api-key", "", key)?;
        Ok(Self {
            http,
            base,
            credential,
            retry: RetryPolicy::default(),
            staged: Mutex::new(HashMap::new()),
        })
    }

    /// Use another retry policy (tests use short delays).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn url(&self, path: &str) -> ProviderResult<Url> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|_| {
            ProviderError::new(
                FailureClass::Other,
                "provider.bad_request",
                "could not build an ElevenLabs URL",
                Charge::Release,
            )
        })
    }

    async fn call(&self, request: HttpRequest<'_>) -> ProviderResult<acgs_http::HttpResponse> {
        self.http
            .execute_retrying(&request, &self.retry, &classify)
            .await
            .map_err(error_of)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> ProviderResult<T> {
        let response = self
            .call(HttpRequest::get(self.url(path)?).credential(&self.credential))
            .await?;
        response.json().map_err(|e| bad_response(&e))
    }

    /// The account's voices (`GET /v1/voices`).
    pub async fn voices(&self) -> ProviderResult<Vec<crate::protocol::Voice>> {
        Ok(self.get_json::<VoiceList>("v1/voices").await?.voices)
    }

    /// One cheap authenticated call (`GET /v1/models`): whether the key is accepted, without
    /// spending anything.
    pub async fn check_key(&self) -> ProviderResult<()> {
        self.models().await.map(|_| ())
    }

    /// The models with their limits and cost multipliers (`GET /v1/models`).
    pub async fn models(&self) -> ProviderResult<Vec<ModelInfo>> {
        self.get_json("v1/models").await
    }

    /// A voice id for `voice` (an id, or a name looked up case-insensitively).
    async fn voice_id(&self, voice: &str) -> ProviderResult<String> {
        if is_voice_id(voice) {
            return Ok(voice.to_owned());
        }
        voice_in(voice, &self.voices().await?)
    }

    /// The per-request character limit: `/v1/models` when the key may read it, else the catalogue's.
    async fn text_limit(&self, model_id: &str, catalogue: Option<u32>) -> usize {
        let listed = self.models().await.ok().and_then(|models| {
            models
                .into_iter()
                .find(|m| m.model_id == model_id)?
                .maximum_text_length_per_request
        });
        listed
            .and_then(|n| usize::try_from(n).ok())
            .or_else(|| catalogue.map(|n| n as usize))
            .unwrap_or(FALLBACK_LIMIT)
    }

    /// Text to speech: one request per piece, each carrying its neighbours, stitched into one file.
    async fn speak(&self, request: &Request) -> ProviderResult<Output> {
        let params = &request.params;
        let text = params
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let voice = params
            .get("voice")
            .and_then(Value::as_str)
            .unwrap_or("21m00Tcm4TlvDq8ikWAM");
        let voice_id = self.voice_id(voice).await?;
        let model_id = &request.model.endpoint;
        let limit = self
            .text_limit(model_id, request.model.max_text_chars)
            .await;
        let pieces = split_text(text, limit);
        let format = params
            .get("output_format")
            .and_then(Value::as_str)
            .unwrap_or("mp3_44100_128");
        let mut url = self.url(&format!("v1/text-to-speech/{voice_id}"))?;
        url.query_pairs_mut().append_pair("output_format", format);
        let mut audio = Vec::new();
        let mut characters = 0u64;
        let mut request_id = None;
        let mut saturated = false;
        for (i, piece) in pieces.iter().enumerate() {
            let previous = i.checked_sub(1).map(|p| pieces[p].as_str());
            let next = pieces.get(i + 1).map(String::as_str);
            let body = speech_body(model_id, params, piece, previous, next);
            let response = self
                .call(
                    HttpRequest::new(Method::Post, url.clone())
                        .credential(&self.credential)
                        .header("accept", "audio/mpeg")
                        .json(body)
                        .cap(AUDIO_CAP)
                        .submit(),
                )
                .await
                .map_err(|e| partly_billed(e, i))?;
            characters += billed_characters(&response, piece.chars().count() as u64);
            saturated |= response.retried.contains(&FailureClass::Saturated);
            request_id = response
                .header("request-id")
                .map(str::to_owned)
                .or(request_id);
            audio.extend_from_slice(&response.body);
        }
        Ok(Output {
            artifacts: vec![Artifact::Bytes {
                data: audio,
                claimed_type: Some("audio/mpeg".into()),
            }],
            usage: Usage {
                characters: Some(characters),
                ..Usage::default()
            },
            request_id,
            saturated,
            ..Output::default()
        })
    }

    /// Speech to text: the staged audio streamed in a multipart form.
    async fn transcribe(&self, request: &Request) -> ProviderResult<Output> {
        let params = &request.params;
        let staged = params
            .get("audio")
            .and_then(Value::as_str)
            .and_then(|r| self.staged.lock().ok()?.remove(r))
            .ok_or_else(|| {
                ProviderError::new(
                    FailureClass::Other,
                    "provider.bad_request",
                    "the audio to transcribe was not staged",
                    Charge::Release,
                )
            })?;
        let flag = |name: &str| {
            params
                .get(name)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        };
        let mut fields: Vec<(&str, String)> = vec![("model_id", request.model.endpoint.clone())];
        for name in ["language_code", "diarize", "tag_audio_events"] {
            if let Some(value) = flag(name) {
                fields.push((name, value));
            }
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = self
            .call(
                HttpRequest::new(Method::Post, self.url("v1/speech-to-text")?)
                    .credential(&self.credential)
                    .with_body(multipart_form(&fields, "file", &staged))
                    .submit(),
            )
            .await?;
        let body: Value = response.json().map_err(|e| bad_response(&e))?;
        let (artifacts, seconds) =
            acgs_media::transcript::scribe_artifacts(&body).ok_or_else(|| {
                bad_response(&HttpError::Decode {
                    target: acgs_http::target_of(&self.base),
                    detail: "the transcript has no text or words".into(),
                })
            })?;
        Ok(Output {
            artifacts,
            usage: Usage {
                seconds: Some(seconds),
                ..Usage::default()
            },
            request_id: response.header("request-id").map(str::to_owned),
            ..Output::default()
        })
    }
}

/// The id of the voice named `voice` (case-insensitively) among `voices`, or an unknown-voice
/// error naming the closest names.
fn voice_in(voice: &str, voices: &[crate::protocol::Voice]) -> ProviderResult<String> {
    if let Some(id) = voices
        .iter()
        .find(|v| v.name.eq_ignore_ascii_case(voice.trim()))
        .map(|v| v.voice_id.clone())
        .filter(|id| is_voice_id(id))
    {
        return Ok(id);
    }
    let names = voices.iter().map(|v| v.name.as_str());
    let close = acgs_core::suggest::closest(voice, names, 3);
    Err(ProviderError::new(
        FailureClass::UnknownName,
        "input.unknown_voice",
        format!(
            "no ElevenLabs voice is named `{}`{}; `acgs voices` lists them",
            voice.chars().take(40).collect::<String>(),
            acgs_core::suggest::did_you_mean(&close)
        ),
        Charge::Release,
    ))
}

/// Characters billed for a request: `character-cost`, else `x-character-count`, else the
/// `counted` characters sent.
fn billed_characters(response: &acgs_http::HttpResponse, counted: u64) -> u64 {
    ["character-cost", "x-character-count"]
        .iter()
        .find_map(|h| response.header(h)?.trim().parse().ok())
        .unwrap_or(counted)
}

/// A failure of a piece after the first: the earlier pieces were billed.
fn partly_billed(mut error: ProviderError, piece: usize) -> ProviderError {
    if piece > 0 {
        error.charge = Charge::Estimate;
        error.message = format!(
            "{} (after {piece} piece(s) of the text were spoken and billed)",
            error.message
        );
    }
    error
}

/// An ElevenLabs failure for the user: the `detail.status` in the code's message, the detail's
/// message for `-v`; a 4xx answer is not billed.
fn error_of(error: HttpError) -> ProviderError {
    let failure = error.failure().cloned();
    let mut out = provider_error(NAME, error, &classify);
    if let Some(failure) = failure {
        if (400..500).contains(&failure.status) {
            out.charge = Charge::Release;
        }
        if let Some(status) = detail_status(&failure.body) {
            out.message = format!("{} ({status})", out.message);
            if out.class == FailureClass::Quota {
                out.message = format!("ElevenLabs says the character quota is used up ({status})");
            }
        }
        if let Some(message) = detail_message(&failure.body) {
            out.detail = Some(message);
        }
    }
    out
}

fn bad_response(e: &HttpError) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.bad_response",
        "ElevenLabs answered with something that is not the expected JSON",
        Charge::Estimate,
    )
    .with_detail(e.to_string())
}

#[async_trait::async_trait]
impl Provider for ElevenLabsProvider {
    fn id(&self) -> ProviderId {
        ProviderId::ElevenLabs
    }

    /// Text to speech checks the subscription's remaining characters; a key without the
    /// `user_read` permission skips the check with a warning.
    async fn preflight(&self, request: &Request) -> ProviderResult<Vec<String>> {
        if request.model.task != TaskKind::TextToSpeech {
            return Ok(Vec::new());
        }
        // A dialogue's script and voices are checked here, before anything is reserved.
        if let Some((sound::Api::Dialogue, _)) = sound::api_of(&request.model.endpoint) {
            let script = request.params.get("text").and_then(Value::as_str);
            self.dialogue_inputs(script.unwrap_or_default()).await?;
        }
        // A misspelt voice is found here, before anything is reserved, with suggestions.
        if let Some(voice) = request.params.get("voice").and_then(Value::as_str) {
            self.voice_id(voice).await?;
        }
        let needed = request
            .params
            .get("text")
            .and_then(Value::as_str)
            .map_or(0, |t| t.chars().count() as u64);
        match self.get_json::<Subscription>("v1/user/subscription").await {
            Ok(subscription) if subscription.remaining() < needed => Err(ProviderError::new(
                FailureClass::Quota,
                "provider.quota_insufficient",
                format!(
                    "ElevenLabs has {} characters left this period; this text needs {needed}",
                    subscription.remaining()
                ),
                Charge::Release,
            )),
            Ok(_) => Ok(Vec::new()),
            Err(e) if e.class == FailureClass::Auth && e.message.contains("missing_permissions") => {
                Ok(vec![
                    "the ElevenLabs key may not read the subscription (user_read), so the character quota was not checked".into(),
                ])
            }
            Err(e) => Err(e),
        }
    }

    async fn submit(&self, request: &Authorized<Request>) -> ProviderResult<Submitted> {
        let req = request.get();
        let output = match (sound::api_of(&req.model.endpoint), req.model.task) {
            (Some((api, model_id)), _) => self.generate_audio(req, api, model_id).await?,
            (None, TaskKind::TextToSpeech) => self.speak(req).await?,
            (None, TaskKind::SpeechToText) => self.transcribe(req).await?,
            (None, other) => {
                return Err(ProviderError::new(
                    FailureClass::Other,
                    "model.wrong_task",
                    format!("ElevenLabs does not do {other}"),
                    Charge::Release,
                ));
            }
        };
        Ok(Submitted::Done(output))
    }

    async fn wait(
        &self,
        _job: &JobHandle,
        events: &EventSink,
        _cancel: CancellationToken,
    ) -> ProviderResult<Output> {
        events.report(Stage::Running, "unsupported", None, None);
        Err(ProviderError::new(
            FailureClass::Other,
            "run.invalid_job",
            "ElevenLabs answers at once; there is no job to wait for",
            Charge::Estimate,
        ))
    }

    async fn cancel(&self, _job: &JobHandle) -> ProviderResult<CancelOutcome> {
        Ok(CancelOutcome::Unsupported)
    }

    /// Inputs travel inside the request (multipart), so uploading stages them.
    async fn upload(&self, input: LocalInput) -> ProviderResult<RemoteRef> {
        let mut staged = self.staged.lock().map_err(|_| {
            ProviderError::new(
                FailureClass::Other,
                "provider.internal",
                "staging the input failed",
                Charge::Release,
            )
        })?;
        let reference = format!("{STAGED}{}", staged.len());
        staged.insert(reference.clone(), input);
        Ok(RemoteRef {
            url: reference,
            delete_after_run: None,
        })
    }

    async fn download(
        &self,
        _url: &str,
        _sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        _cap: u64,
    ) -> ProviderResult<u64> {
        Err(ProviderError::new(
            FailureClass::Other,
            "provider.bad_response",
            "ElevenLabs returns its outputs inline; there is nothing to download",
            Charge::Estimate,
        ))
    }

    fn classify(&self, failure: &HttpFailure) -> FailureClass {
        classify(failure)
    }
}
