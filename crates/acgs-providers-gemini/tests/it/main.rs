//! The Gemini provider against the fake Gemini API from acgs-testkit.

use std::time::{Duration, Instant};

use acgs_core::catalog::Params;
use acgs_core::config::ProviderUrls;
use acgs_core::ledger::ReservationId;
use acgs_core::provider::{CancellationToken, Charge, EventSink, FailureClass, Provider};
use acgs_core::request::{Artifact, Authorized, LocalInput, Output, Request, Submitted, Verdict};
use acgs_core::task::ContentType;
use acgs_http::{HttpClient, NetworkPolicy, RetryPolicy};
use acgs_providers_gemini::GeminiProvider;
use acgs_testkit::canary::GEMINI_KEY;
use acgs_testkit::gemini::{Answer, FakeGemini, OPERATION, UPLOADED_FILE, VideoEnd};
use acgs_testkit::media::{mp4, png};
use secrecy::SecretString;
use serde_json::{Value, json};

fn provider(fake: &FakeGemini) -> GeminiProvider {
    let policy = NetworkPolicy {
        allow_loopback: true,
        ca_bundle: None,
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        read_idle_timeout: Duration::from_secs(5),
    };
    let redactor = acgs_core::redact::Redactor::new();
    redactor.add_secret(GEMINI_KEY);
    let http = HttpClient::new(policy, redactor).expect("client");
    let mut urls = ProviderUrls::default();
    urls.set("base_url", fake.uri());
    GeminiProvider::new(http, &urls, &SecretString::from(GEMINI_KEY))
        .expect("provider")
        .with_retry(RetryPolicy {
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
        .with_first_poll(Duration::from_millis(20))
}

fn request(key: &str, params: Value, system: Option<&str>) -> Authorized<Request> {
    let model = acgs_providers_gemini::catalog()
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
            system: system.map(str::to_owned),
            text_events: None,
        },
        Verdict::default(),
        ReservationId("r".into()),
    )
}

async fn generate(p: &GeminiProvider, request: &Authorized<Request>) -> Output {
    match p.submit(request).await.expect("answered") {
        Submitted::Done(output) => output,
        Submitted::Pending(_) => panic!("generateContent answers at once"),
    }
}

fn local(dir: &tempfile::TempDir, name: &str, bytes: &[u8], kind: ContentType) -> LocalInput {
    let path = dir.path().join(name);
    fs_err::write(&path, bytes).expect("write");
    let file = fs_err::File::open(&path).expect("open").into_parts().0;
    LocalInput {
        field: "input".into(),
        file_name: name.into(),
        content_type: kind,
        size: bytes.len() as u64,
        file: std::sync::Arc::new(file),
    }
}

#[tokio::test]
async fn text_sends_the_bounds_and_the_key_header_and_bills_usage() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .answer(Answer::Text("Dusk, and the lamp wakes.".into()))
        .usage(12, 34, 100)
        .start()
        .await;
    let p = provider(&fake);
    let out = generate(
        &p,
        &request(
            "gemini_2_5_flash",
            json!({"prompt": "a haiku about lighthouses", "temperature": 0.4}),
            Some("You are a poet."),
        ),
    )
    .await;
    assert_eq!(
        out.artifacts,
        vec![Artifact::Text {
            text: "Dusk, and the lamp wakes.".into(),
            content_type: ContentType::Text
        }],
        "the thought part is left out"
    );
    assert_eq!(out.usage.input_tokens, Some(12));
    assert_eq!(
        out.usage.output_tokens,
        Some(134),
        "thinking is billed as output"
    );
    let body = &fake.submitted_bodies().await[0];
    assert_eq!(
        body["contents"][0]["parts"][0]["text"],
        "a haiku about lighthouses"
    );
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "You are a poet."
    );
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 8192);
    assert_eq!(
        body["generationConfig"]["thinkingConfig"]["thinkingBudget"],
        1024
    );
    assert_eq!(body["generationConfig"]["temperature"], 0.4);
    assert_eq!(body["safetySettings"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        body["safetySettings"][0]["threshold"],
        "BLOCK_MEDIUM_AND_ABOVE"
    );
    let sent = &fake.requests().await[0];
    assert_eq!(
        sent.headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok()),
        Some(GEMINI_KEY)
    );
    assert!(
        !sent.url.as_str().contains(GEMINI_KEY),
        "the key travels in the header, never the URL"
    );
}

#[tokio::test]
async fn streamed_text_arrives_piece_by_piece_and_ends_as_the_same_answer() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .answer(Answer::Text(
            "Dusk, and the lamp wakes over the water.".into(),
        ))
        .usage(12, 34, 100)
        .start()
        .await;
    let p = provider(&fake);
    let pieces = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let pieces = std::sync::Arc::clone(&pieces);
        EventSink::new(move |e| {
            if e.status == "text" {
                pieces
                    .lock()
                    .expect("lock")
                    .push(e.message.unwrap_or_default());
            }
        })
    };
    let plain = request("gemini_2_5_flash", json!({"prompt": "a haiku"}), None);
    let mut streamed = plain.get().clone();
    streamed.text_events = Some(sink.for_step("run", "main"));
    let streamed = Authorized::by_engine(streamed, Verdict::default(), ReservationId("r".into()));
    let out = generate(&p, &streamed).await;
    let whole = generate(&p, &plain).await;
    assert_eq!(out.artifacts, whole.artifacts, "the same text either way");
    assert_eq!(out.usage, whole.usage, "usage from the last chunk");
    let pieces = pieces.lock().expect("lock").clone();
    assert_eq!(pieces.len(), 3, "{pieces:?}");
    assert_eq!(pieces.concat(), "Dusk, and the lamp wakes over the water.");
    let paths: Vec<String> = fake
        .requests()
        .await
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or_default()))
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with(":streamGenerateContent?alt=sse")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_stream_without_an_end_is_an_error_not_a_short_answer() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(
                    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Half a\"}]}}]}\n\n{\"error\":{\"code\":500}}\n",
                ),
        )
        .mount(&server)
        .await;
    let policy = NetworkPolicy {
        allow_loopback: true,
        ca_bundle: None,
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        read_idle_timeout: Duration::from_secs(5),
    };
    let http = HttpClient::new(policy, acgs_core::redact::Redactor::new()).expect("client");
    let mut urls = ProviderUrls::default();
    urls.set("base_url", server.uri());
    let p = GeminiProvider::new(http, &urls, &SecretString::from(GEMINI_KEY)).expect("provider");
    let mut streamed = request("gemini_2_5_flash", json!({"prompt": "x"}), None)
        .get()
        .clone();
    streamed.text_events = Some(EventSink::none());
    let streamed = Authorized::by_engine(streamed, Verdict::default(), ReservationId("r".into()));
    let Err(error) = p.submit(&streamed).await else {
        panic!("a broken stream is not an answer");
    };
    assert_eq!(error.code, "provider.bad_response");
    assert_eq!(
        error.charge,
        Charge::Estimate,
        "it was sent: it may be billed"
    );
}

#[tokio::test]
async fn small_images_go_inline() {
    let fake = FakeGemini::builder("gemini-2.5-flash").start().await;
    let p = provider(&fake);
    let dir = tempfile::tempdir().expect("tmp");
    let image = p
        .upload(local(
            &dir,
            "shore.png",
            &png(640, 480, 3000),
            ContentType::Png,
        ))
        .await
        .expect("inline");
    assert!(image.url.starts_with("data:image/png;base64,"));
    generate(
        &p,
        &request(
            "gemini_2_5_flash_vision",
            json!({"prompt": "Describe this.", "image": image.url}),
            None,
        ),
    )
    .await;
    let parts = &fake.submitted_bodies().await[0]["contents"][0]["parts"];
    assert_eq!(parts[0]["inlineData"]["mimeType"], "image/png");
    assert_eq!(parts[1]["text"], "Describe this.");
    assert!(
        fake.chunks().is_empty(),
        "nothing went through the Files API"
    );
}

#[tokio::test]
async fn video_goes_through_the_files_api_in_chunks_and_waits_for_active() {
    let fake = FakeGemini::builder("gemini-2.5-flash").start().await;
    let p = provider(&fake);
    let dir = tempfile::tempdir().expect("tmp");
    let size = 9 * 1024 * 1024;
    let video = p
        .upload(local(&dir, "clip.mp4", &mp4(12, size), ContentType::Mp4))
        .await
        .expect("uploaded");
    assert_eq!(
        video.url,
        format!("{}/v1beta/files/{UPLOADED_FILE}", fake.uri())
    );
    assert_eq!(video.delete_after_run.as_deref(), Some("files/upl-file-1"));
    let chunks = fake.chunks();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0], ("upload".to_owned(), 8 * 1024 * 1024));
    assert_eq!(chunks[1].0, "upload, finalize");
    let polls = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.url.path() == format!("/v1beta/files/{UPLOADED_FILE}"))
        .count();
    assert_eq!(polls, 2, "PROCESSING, then ACTIVE");
    generate(
        &p,
        &request(
            "gemini_2_5_flash_video",
            json!({"prompt": "What happens?", "video": video.url}),
            None,
        ),
    )
    .await;
    let part = &fake.submitted_bodies().await[0]["contents"][0]["parts"][0]["fileData"];
    assert_eq!(part["mimeType"], "video/mp4");
    assert_eq!(part["fileUri"], video.url.as_str());
}

#[tokio::test]
async fn uploaded_files_are_deleted_with_the_key_and_a_gone_one_counts_as_deleted() {
    let fake = FakeGemini::builder("gemini-2.5-flash").start().await;
    let p = provider(&fake);
    p.delete_upload("files/upl-file-1").await.expect("deleted");
    p.delete_upload("files/expired-1")
        .await
        .expect("already gone");
    assert!(p.delete_upload("files/../../v1beta/models").await.is_err());
    assert!(p.delete_upload("models/gemini-2.5-flash").await.is_err());
    assert_eq!(
        fake.deleted_files().await,
        ["files/upl-file-1", "files/expired-1"],
        "odd names are never sent"
    );
    assert!(fake.unexpected().await.is_empty());
}

#[tokio::test]
async fn large_images_use_the_files_api_too() {
    let fake = FakeGemini::builder("gemini-2.5-flash").start().await;
    let p = provider(&fake).with_inline_max(1000);
    let dir = tempfile::tempdir().expect("tmp");
    let image = p
        .upload(local(
            &dir,
            "big.png",
            &png(2048, 2048, 5000),
            ContentType::Png,
        ))
        .await
        .expect("uploaded");
    assert!(image.url.ends_with(UPLOADED_FILE));
    assert_eq!(fake.chunks().len(), 1);
}

#[tokio::test]
async fn safety_blocks_come_with_http_200() {
    for (answer, reason) in [
        (Answer::PromptBlocked, "PROHIBITED_CONTENT"),
        (Answer::OutputBlocked, "SAFETY"),
    ] {
        let fake = FakeGemini::builder("gemini-2.5-flash")
            .answer(answer)
            .start()
            .await;
        let out = generate(
            &provider(&fake),
            &request("gemini_2_5_flash", json!({"prompt": "something"}), None),
        )
        .await;
        assert_eq!(out.safety.blocked.as_deref(), Some(reason));
        assert!(out.artifacts.is_empty());
        assert_eq!(
            out.usage.input_tokens,
            Some(11),
            "the prompt is still billed"
        );
    }
}

#[tokio::test]
async fn image_generation_returns_inline_bytes_counted_as_images() {
    let fake = FakeGemini::builder("gemini-2.5-flash-image")
        .answer(Answer::Image)
        .start()
        .await;
    let out = generate(
        &provider(&fake),
        &request(
            "gemini_2_5_flash_image",
            json!({"prompt": "a fox", "aspect_ratio": "16:9"}),
            None,
        ),
    )
    .await;
    assert!(matches!(
        &out.artifacts[..],
        [Artifact::Bytes { claimed_type: Some(t), .. }] if t == "image/png"
    ));
    assert_eq!(out.usage.images, Some(vec![(1, 1)]));
    let config = &fake.submitted_bodies().await[0]["generationConfig"];
    assert_eq!(config["responseModalities"], json!(["TEXT", "IMAGE"]));
    assert_eq!(config["imageConfig"]["aspectRatio"], "16:9");
}

#[tokio::test]
async fn a_bad_key_is_an_auth_failure_released() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .bad_key()
        .start()
        .await;
    let error = provider(&fake)
        .submit(&request("gemini_2_5_flash", json!({"prompt": "hi"}), None))
        .await
        .expect_err("refused");
    assert_eq!(error.class, FailureClass::Auth);
    assert_eq!(error.code, "provider.auth_failed");
    assert_eq!(
        error.charge,
        Charge::Release,
        "a refused request is not billed"
    );
    assert!(error.message.contains("API_KEY_INVALID"));
}

#[tokio::test]
async fn a_429_waits_for_retry_info() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .rate_limited_once(1)
        .start()
        .await;
    let started = Instant::now();
    generate(
        &provider(&fake),
        &request("gemini_2_5_flash", json!({"prompt": "hi"}), None),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry waited for RetryInfo.retryDelay (1s), not the 10 ms backoff"
    );
    assert_eq!(fake.submitted_bodies().await.len(), 2);
}

async fn veo(
    end: VideoEnd,
) -> (
    FakeGemini,
    Result<Output, acgs_core::provider::ProviderError>,
) {
    let fake = FakeGemini::builder("veo-3.1-generate-preview")
        .video_end(end)
        .running_polls(2)
        .start()
        .await;
    let p = provider(&fake);
    let job = match p
        .submit(&request(
            "gemini_veo_3_1",
            json!({"prompt": "waves at dusk", "duration": 6}),
            None,
        ))
        .await
        .expect("submitted")
    {
        Submitted::Pending(job) => job,
        Submitted::Done(_) => panic!("Veo runs as an operation"),
    };
    assert_eq!(
        job.id(),
        Some(format!("models/veo-3.1-generate-preview/operations/{OPERATION}").as_str())
    );
    let out = p
        .wait(&job, &EventSink::none(), CancellationToken::new())
        .await;
    (fake, out)
}

#[tokio::test]
async fn veo_polls_until_done_and_the_media_host_never_sees_the_key() {
    let (fake, out) = veo(VideoEnd::Uri).await;
    let out = out.expect("done");
    let body = &fake.submitted_bodies().await[0];
    assert_eq!(body["instances"][0]["prompt"], "waves at dusk");
    assert_eq!(body["parameters"]["durationSeconds"], 6);
    assert_eq!(body["parameters"]["aspectRatio"], "16:9");
    let polls = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.url.path().ends_with(OPERATION))
        .count();
    assert_eq!(polls, 3, "two undone answers, then done");
    let [Artifact::Url { url, .. }] = &out.artifacts[..] else {
        panic!("one video URL: {:?}", out.artifacts)
    };
    let p = provider(&fake);
    let mut file = Vec::new();
    let bytes = p
        .download(url, &mut file, 1 << 20)
        .await
        .expect("downloaded");
    assert_eq!(bytes as usize, file.len());
    assert!(file.len() > 4096);
    let media = fake.media_requests().await;
    assert_eq!(media.len(), 1, "the redirect was followed");
    assert!(
        media[0].headers.get("x-goog-api-key").is_none(),
        "the key stays on the API's origin"
    );
}

#[tokio::test]
async fn veo_endings_errors_filters_and_inline_video() {
    let (_, out) = veo(VideoEnd::Error).await;
    let error = out.expect_err("failed");
    assert_eq!(error.code, "provider.job_failed");
    assert!(error.detail.unwrap_or_default().contains("internal error"));
    let (_, out) = veo(VideoEnd::Filtered).await;
    assert_eq!(
        out.expect("done").safety.blocked.as_deref(),
        Some("RAI_FILTERED")
    );
    let (_, out) = veo(VideoEnd::Encoded).await;
    assert!(matches!(
        &out.expect("done").artifacts[..],
        [Artifact::Bytes { .. }]
    ));
}

#[tokio::test]
async fn veo_first_frames_must_be_inline() {
    let fake = FakeGemini::builder("veo-3.1-fast-generate-preview")
        .start()
        .await;
    let error = provider(&fake)
        .submit(&request(
            "gemini_veo_3_1_fast_i2v",
            json!({"prompt": "zoom", "image": format!("{}/v1beta/files/x", fake.uri())}),
            None,
        ))
        .await
        .expect_err("refused before sending");
    assert!(error.message.contains("inline"), "{}", error.message);
    assert!(fake.submitted_bodies().await.is_empty());
    assert!(fake.unexpected().await.is_empty());
}
