//! The ElevenLabs provider against the fake ElevenLabs API from acgs-testkit.

use std::time::Duration;

use acgs_core::catalog::Params;
use acgs_core::config::ProviderUrls;
use acgs_core::ledger::ReservationId;
use acgs_core::provider::{Charge, FailureClass, Provider, ProviderError};
use acgs_core::request::{Artifact, Authorized, LocalInput, Output, Request, Submitted, Verdict};
use acgs_core::task::ContentType;
use acgs_http::{HttpClient, NetworkPolicy, RetryPolicy};
use acgs_providers_elevenlabs::ElevenLabsProvider;
use acgs_testkit::canary::ELEVENLABS_KEY;
use acgs_testkit::elevenlabs::{FakeElevenLabs, Quota, RACHEL, SpeechFailure};
use acgs_testkit::media::wav;
use secrecy::SecretString;
use serde_json::{Value, json};

fn provider(fake: &FakeElevenLabs) -> ElevenLabsProvider {
    let policy = NetworkPolicy {
        allow_loopback: true,
        ca_bundle: None,
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        read_idle_timeout: Duration::from_secs(5),
    };
    let redactor = acgs_core::redact::Redactor::new();
    redactor.add_secret(ELEVENLABS_KEY);
    let http = HttpClient::new(policy, redactor).expect("client");
    let mut urls = ProviderUrls::default();
    urls.set("base_url", fake.uri());
    ElevenLabsProvider::new(http, &urls, &SecretString::from(ELEVENLABS_KEY))
        .expect("provider")
        .with_retry(RetryPolicy {
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
}

fn request(key: &str, params: Value) -> Authorized<Request> {
    let model = acgs_providers_elevenlabs::catalog()
        .expect("catalogue")
        .resolve(key)
        .expect("model");
    let mut all: Params = model
        .params
        .iter()
        .filter_map(|(name, spec)| Some((name.clone(), spec.default.clone()?)))
        .collect();
    if let Value::Object(given) = params {
        all.extend(given);
    }
    Authorized::by_engine(
        Request {
            run_id: "run".into(),
            step: "main".into(),
            model,
            params: all,
            system: None,
            text_events: None,
        },
        Verdict::default(),
        ReservationId("r".into()),
    )
}

async fn speak(p: &ElevenLabsProvider, params: Value) -> Result<Output, ProviderError> {
    match p
        .submit(&request("elevenlabs_multilingual_v2", params))
        .await?
    {
        Submitted::Done(output) => Ok(output),
        Submitted::Pending(_) => panic!("speech answers at once"),
    }
}

#[tokio::test]
async fn speech_is_audio_billed_by_the_character_header() {
    let fake = FakeElevenLabs::builder().start().await;
    let p = provider(&fake);
    let out = speak(
        &p,
        json!({"text": "Hello there.", "voice": "rachel", "stability": 0.4, "seed": 7}),
    )
    .await
    .expect("spoken");
    let [Artifact::Bytes { data, claimed_type }] = &out.artifacts[..] else {
        panic!("one audio file: {:?}", out.artifacts)
    };
    assert_eq!(claimed_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(ContentType::sniff(data), Some(ContentType::Mp3));
    assert_eq!(out.usage.characters, Some(12));
    assert_eq!(out.request_id.as_deref(), Some("req-tts-0001"));
    let sent = fake
        .requests()
        .await
        .into_iter()
        .find(|r| r.url.path().starts_with("/v1/text-to-speech/"))
        .expect("speech request");
    assert_eq!(
        sent.url.path(),
        format!("/v1/text-to-speech/{RACHEL}"),
        "the name was looked up"
    );
    assert_eq!(sent.url.query(), Some("output_format=mp3_44100_128"));
    assert_eq!(
        sent.headers.get("xi-api-key").and_then(|v| v.to_str().ok()),
        Some(ELEVENLABS_KEY)
    );
    let body = &fake.speech_bodies().await[0];
    assert_eq!(body["model_id"], "eleven_multilingual_v2");
    assert_eq!(body["voice_settings"]["stability"], 0.4);
    assert_eq!(body["seed"], 7);
    assert!(body.get("previous_text").is_none());
}

#[tokio::test]
async fn long_texts_are_split_at_sentences_and_stitched_into_one_file() {
    let fake = FakeElevenLabs::builder().text_limit(60).start().await;
    let p = provider(&fake);
    let text = "The first sentence is here. The second one follows it. A third comes next. And the fourth closes.";
    let out = speak(&p, json!({"text": text})).await.expect("spoken");
    let bodies = fake.speech_bodies().await;
    assert!(bodies.len() >= 2, "{bodies:?}");
    let pieces: Vec<&str> = bodies.iter().filter_map(|b| b["text"].as_str()).collect();
    assert_eq!(pieces.concat(), text, "nothing lost or repeated");
    assert!(pieces.iter().all(|p| p.chars().count() <= 60));
    assert!(
        pieces[0].ends_with(". "),
        "cut at a sentence end: {:?}",
        pieces[0]
    );
    assert_eq!(bodies[0]["next_text"], pieces[1]);
    assert!(bodies[0].get("previous_text").is_none());
    assert_eq!(bodies[1]["previous_text"], pieces[0]);
    assert_eq!(out.artifacts.len(), 1, "one file");
    assert_eq!(out.usage.characters, Some(text.chars().count() as u64));
}

#[tokio::test]
async fn the_two_401s_are_told_apart() {
    let fake = FakeElevenLabs::builder()
        .failure(SpeechFailure::InvalidKey)
        .start()
        .await;
    let error = speak(&provider(&fake), json!({"text": "hi", "voice": RACHEL}))
        .await
        .expect_err("refused");
    assert_eq!(error.class, FailureClass::Auth);
    assert!(
        error.message.contains("invalid_api_key"),
        "{}",
        error.message
    );
    let fake = FakeElevenLabs::builder()
        .failure(SpeechFailure::QuotaExceeded)
        .start()
        .await;
    let error = speak(&provider(&fake), json!({"text": "hi", "voice": RACHEL}))
        .await
        .expect_err("refused");
    assert_eq!(error.class, FailureClass::Quota, "exit 4, not 5");
    assert_eq!(error.charge, Charge::Release);
    assert!(
        error
            .detail
            .unwrap_or_default()
            .contains("exceeds your quota")
    );
}

#[tokio::test]
async fn validation_details_are_reported() {
    let fake = FakeElevenLabs::builder()
        .failure(SpeechFailure::Validation)
        .start()
        .await;
    let error = speak(&provider(&fake), json!({"text": "hi", "voice": RACHEL}))
        .await
        .expect_err("refused");
    assert_eq!(error.class, FailureClass::Rejected);
    assert_eq!(
        error.detail.as_deref(),
        Some("body.voice_settings.stability: ensure this value is less than or equal to 1.0")
    );
}

#[tokio::test]
async fn concurrency_and_busy_429s_are_retried() {
    for failure in [SpeechFailure::ConcurrentOnce, SpeechFailure::BusyOnce] {
        let fake = FakeElevenLabs::builder().failure(failure).start().await;
        let out = speak(&provider(&fake), json!({"text": "hi", "voice": RACHEL}))
            .await
            .expect("retried");
        assert_eq!(fake.speech_bodies().await.len(), 2, "{failure:?}");
        assert_eq!(
            out.saturated,
            failure == SpeechFailure::ConcurrentOnce,
            "only a concurrency 429 asks the engine to lower its in-flight cap"
        );
    }
    let saturated = acgs_core::provider::HttpFailure {
        status: 429,
        headers: Vec::new(),
        body: r#"{"detail":{"status":"too_many_concurrent_requests","message":"x"}}"#.into(),
    };
    assert_eq!(
        acgs_providers_elevenlabs::protocol::classify(&saturated),
        FailureClass::Saturated,
        "the engine lowers its in-flight cap on this class"
    );
}

#[tokio::test]
async fn unknown_voices_are_refused_before_speaking() {
    let fake = FakeElevenLabs::builder().start().await;
    let error = speak(&provider(&fake), json!({"text": "hi", "voice": "Nobody"}))
        .await
        .expect_err("refused");
    assert_eq!(error.code, "input.unknown_voice");
    assert_eq!(error.class, FailureClass::UnknownName);
    assert!(!error.message.contains("did you mean"), "nothing is close");
    let near = speak(&provider(&fake), json!({"text": "hi", "voice": "Rachl"}))
        .await
        .expect_err("refused");
    assert!(
        near.message.contains("did you mean Rachel?"),
        "{}",
        near.message
    );
    assert!(fake.speech_bodies().await.is_empty());
}

#[tokio::test]
async fn the_quota_is_checked_first_unless_the_key_may_not_read_it() {
    let fake = FakeElevenLabs::builder()
        .quota(Quota::Remaining(5))
        .start()
        .await;
    let req = request(
        "elevenlabs_multilingual_v2",
        json!({"text": "more than five"}),
    );
    let error = provider(&fake)
        .preflight(req.get())
        .await
        .expect_err("too little left");
    assert_eq!(error.class, FailureClass::Quota);
    assert!(
        error.message.contains("5 characters left"),
        "{}",
        error.message
    );
    let fake = FakeElevenLabs::builder()
        .quota(Quota::NoPermission)
        .start()
        .await;
    let warnings = provider(&fake)
        .preflight(req.get())
        .await
        .expect("skipped, not failed");
    assert!(warnings[0].contains("user_read"), "{warnings:?}");
}

#[tokio::test]
async fn voices_and_models_are_listed() {
    let fake = FakeElevenLabs::builder().start().await;
    let p = provider(&fake);
    let voices = p.voices().await.expect("voices");
    assert_eq!(voices[0].name, "Rachel");
    assert_eq!(
        voices[0].labels.get("accent").map(String::as_str),
        Some("american")
    );
    let models = p.models().await.expect("models");
    let flash = models
        .iter()
        .find(|m| m.model_id == "eleven_flash_v2_5")
        .expect("flash");
    assert_eq!(flash.maximum_text_length_per_request, Some(40_000));
    assert_eq!(
        flash
            .model_rates
            .as_ref()
            .map(|r| r.character_cost_multiplier),
        Some(0.5)
    );
}

#[tokio::test]
async fn scribe_streams_a_multipart_upload_and_writes_three_transcripts() {
    let fake = FakeElevenLabs::builder().start().await;
    let p = provider(&fake);
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = wav(3);
    let path = dir.path().join("speech.wav");
    fs_err::write(&path, &bytes).expect("write");
    let input = LocalInput {
        field: "audio".into(),
        file_name: "speech.wav".into(),
        content_type: ContentType::Wav,
        size: bytes.len() as u64,
        file: std::sync::Arc::new(fs_err::File::open(&path).expect("open").into_parts().0),
    };
    let staged = p.upload(input).await.expect("staged");
    let req = request(
        "elevenlabs_scribe_v1",
        json!({"audio": staged.url, "diarize": true}),
    );
    let Submitted::Done(out) = p.submit(&req).await.expect("transcribed") else {
        panic!("Scribe answers at once")
    };
    let types: Vec<ContentType> = out
        .artifacts
        .iter()
        .map(|a| match a {
            Artifact::Text { content_type, .. } => *content_type,
            _ => panic!("text artifacts"),
        })
        .collect();
    assert_eq!(
        types,
        [ContentType::Text, ContentType::Json, ContentType::Srt]
    );
    assert_eq!(out.usage.seconds, Some(3));
    let sent = fake
        .requests()
        .await
        .into_iter()
        .find(|r| r.url.path() == "/v1/speech-to-text")
        .expect("sent");
    let body = String::from_utf8_lossy(&sent.body);
    assert!(body.contains("name=\"model_id\"\r\n\r\nscribe_v1"));
    assert!(body.contains("name=\"diarize\"\r\n\r\ntrue"));
    assert!(
        sent.body
            .windows(bytes.len())
            .any(|w| w == bytes.as_slice()),
        "the audio arrived whole"
    );
}
