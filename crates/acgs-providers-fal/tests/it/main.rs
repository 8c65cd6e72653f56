//! The fal provider against the fake fal server from acgs-testkit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_core::ProviderId;
use acgs_core::catalog::Params;
use acgs_core::config::ProviderUrls;
use acgs_core::ledger::ReservationId;
use acgs_core::provider::{
    CancellationToken, Charge, EventSink, FailureClass, ProgressEvent, Provider, Stage,
};
use acgs_core::request::{
    Artifact, Authorized, CancelOutcome, LocalInput, Request, Submitted, Verdict,
};
use acgs_core::task::ContentType;
use acgs_http::{HttpClient, NetworkPolicy, RetryPolicy};
use acgs_providers_fal::FalProvider;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome, REQUEST_ID, SubmitFailure, Upload};
use acgs_testkit::media::png;
use secrecy::SecretString;

fn provider(fake: &FakeFal) -> FalProvider {
    let policy = NetworkPolicy {
        allow_loopback: true,
        ca_bundle: None,
        proxy: None,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        read_idle_timeout: Duration::from_secs(5),
    };
    let redactor = acgs_core::redact::Redactor::new();
    redactor.add_secret(FAL_KEY);
    let http = HttpClient::new(policy, redactor).expect("client");
    let mut urls = ProviderUrls::default();
    urls.set("queue_url", fake.uri())
        .set("rest_url", fake.uri());
    FalProvider::new(http, &urls, &SecretString::from(FAL_KEY))
        .expect("provider")
        .with_retry(RetryPolicy {
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
}

fn request() -> Authorized<Request> {
    request_for("flux_dev")
}

fn request_for(key: &str) -> Authorized<Request> {
    let model = acgs_providers_fal::catalog()
        .expect("catalogue")
        .resolve(key)
        .expect("model");
    let mut params = Params::new();
    params.insert("prompt".into(), "a red fox".into());
    params.insert("image_size".into(), "landscape_4_3".into());
    Authorized::by_engine(
        Request {
            run_id: "run".into(),
            step: "image".into(),
            model,
            params,
            system: None,
            text_events: None,
        },
        Verdict::default(),
        ReservationId("r".into()),
    )
}

fn recording_sink() -> (EventSink, Arc<Mutex<Vec<ProgressEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = Arc::clone(&events);
    let sink =
        EventSink::new(move |e| sink_events.lock().expect("lock").push(e)).for_step("run", "image");
    (sink, events)
}

type Waited = (
    Result<acgs_core::request::Output, acgs_core::provider::ProviderError>,
    Vec<ProgressEvent>,
);

async fn submit_and_wait(fake: &FakeFal) -> Waited {
    submit_and_wait_for(fake, "flux_dev").await
}

async fn submit_and_wait_for(fake: &FakeFal, key: &str) -> Waited {
    let p = provider(fake);
    let job = match p.submit(&request_for(key)).await.expect("submitted") {
        Submitted::Pending(job) => job,
        Submitted::Done(_) => panic!("fal queues every job"),
    };
    let (sink, events) = recording_sink();
    let out = p.wait(&job, &sink, CancellationToken::new()).await;
    let events = events.lock().expect("lock").clone();
    (out, events)
}

#[tokio::test]
async fn a_job_goes_from_queue_to_result_with_progress() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .queued(2)
        .in_progress(1)
        .start()
        .await;
    let (out, events) = submit_and_wait(&fake).await;
    let out = out.expect("completed");
    assert_eq!(out.request_id.as_deref(), Some(REQUEST_ID));
    assert!(matches!(&out.artifacts[..], [Artifact::Url { url, .. }] if url.ends_with(".png")));
    assert_eq!(out.usage.images, Some(vec![(1024, 768)]));
    assert!(
        events
            .iter()
            .any(|e| e.stage == Stage::Queued && e.queue_position == Some(0))
    );
    assert!(
        events
            .iter()
            .any(|e| e.message.as_deref() == Some("Generating 28 steps"))
    );
    assert!(
        events
            .iter()
            .all(|e| e.run_id == "run" && e.step == "image")
    );
    assert!(
        fake.unexpected().await.is_empty(),
        "{:?}",
        fake.unexpected().await
    );
}

#[tokio::test]
async fn status_and_result_use_owner_and_app_only_and_the_key_header() {
    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let (out, _) = submit_and_wait(&fake).await;
    out.expect("completed");
    let requests = fake.requests().await;
    let paths: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert!(
        paths.contains(&"POST /fal-ai/flux/dev".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&format!("GET /fal-ai/flux/requests/{REQUEST_ID}/status")),
        "{paths:?}"
    );
    assert!(
        paths.contains(&format!("GET /fal-ai/flux/requests/{REQUEST_ID}")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("/dev/requests")),
        "{paths:?}"
    );
    for r in &requests {
        let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(auth, Some(format!("Key {FAL_KEY}").as_str()));
        assert!(!r.url.as_str().contains(FAL_KEY), "never in the URL");
    }
}

#[tokio::test]
async fn completed_with_error_takes_the_detail_from_the_result() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .outcome(Outcome::CompletedWithError)
        .start()
        .await;
    let (out, _) = submit_and_wait(&fake).await;
    let err = out.expect_err("failed job");
    assert_eq!(err.code, "provider.job_failed");
    assert_eq!(err.class, FailureClass::Rejected);
    assert_eq!(err.charge, Charge::Estimate, "a 422 may be billed");
    assert!(
        err.detail
            .as_deref()
            .unwrap_or_default()
            .contains("image_size")
    );
}

#[tokio::test]
async fn nsfw_flags_are_reported() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .outcome(Outcome::Nsfw)
        .start()
        .await;
    let (out, _) = submit_and_wait(&fake).await;
    assert_eq!(out.expect("completed").safety.flagged, vec![0]);
}

#[tokio::test]
async fn bad_keys_and_empty_balances_are_told_apart() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .submit_failure(SubmitFailure::BadKey)
        .echo_keys()
        .start()
        .await;
    let err = provider(&fake).submit(&request()).await.expect_err("401");
    assert_eq!(err.class, FailureClass::Auth);
    assert_eq!(err.charge, Charge::Release);
    assert!(
        !format!("{err:?}").contains("deadbeef"),
        "echoed keys are redacted"
    );
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .submit_failure(SubmitFailure::ExhaustedBalance)
        .start()
        .await;
    let err = provider(&fake).submit(&request()).await.expect_err("403");
    assert_eq!(err.class, FailureClass::Quota);
    assert_eq!(acgs_core::UserFacing::kind(&err).exit_code(), 4);
}

#[tokio::test]
async fn a_rate_limited_submit_is_retried_once() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .submit_failure(SubmitFailure::RateLimitedOnce { retry_after: 0 })
        .start()
        .await;
    let submitted = provider(&fake).submit(&request()).await.expect("retried");
    assert!(matches!(submitted, Submitted::Pending(_)));
    assert_eq!(fake.submits().await, 2);
}

#[tokio::test]
async fn cancel_sends_a_put_to_the_root() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .outcome(Outcome::KeepRunning)
        .start()
        .await;
    let p = provider(&fake);
    let Submitted::Pending(job) = p.submit(&request()).await.expect("submitted") else {
        panic!("pending expected")
    };
    assert_eq!(job.provider, ProviderId::Fal);
    let token = CancellationToken::new();
    let waiting = {
        let token = token.clone();
        async move {
            let sink = EventSink::none();
            p.wait(&job, &sink, token)
                .await
                .map(|_| ())
                .map_err(|e| e.code)
        }
    };
    token.cancel();
    assert_eq!(waiting.await, Err("run.interrupted"));
    let p = provider(&fake);
    let Submitted::Pending(job) = p.submit(&request()).await.expect("submitted") else {
        panic!("pending expected")
    };
    assert_eq!(
        p.cancel(&job).await.expect("cancel"),
        CancelOutcome::Requested
    );
    let cancels = fake
        .requests()
        .await
        .iter()
        .filter(|r| {
            r.method == wiremock::http::Method::PUT
                && r.url.path() == format!("/fal-ai/flux/requests/{REQUEST_ID}/cancel")
        })
        .count();
    assert_eq!(cancels, 1);
}

#[tokio::test]
async fn results_download_through_the_provider() {
    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let (out, _) = submit_and_wait(&fake).await;
    let out = out.expect("completed");
    let Artifact::Url { url, .. } = &out.artifacts[0] else {
        panic!("url artifact")
    };
    let mut bytes = Vec::new();
    let n = provider(&fake)
        .download(url, &mut bytes, 1 << 20)
        .await
        .expect("downloaded");
    assert_eq!(
        n,
        u64::try_from(acgs_testkit::media::PNG_1X1.len()).expect("len")
    );
    assert_eq!(bytes, acgs_testkit::media::PNG_1X1);
}

#[tokio::test]
async fn videos_come_from_the_video_field() {
    for key in ["kling_2_1", "veo3", "topaz"] {
        let endpoint = acgs_providers_fal::catalog()
            .expect("catalogue")
            .resolve(key)
            .expect("model")
            .endpoint
            .clone();
        let fake = FakeFal::builder(&endpoint)
            .outcome(Outcome::Video)
            .start()
            .await;
        let (out, _) = submit_and_wait_for(&fake, key).await;
        let out = out.expect("completed");
        assert!(
            matches!(&out.artifacts[..], [Artifact::Url { url, .. }] if url.ends_with(".mp4")),
            "{key}"
        );
        assert!(
            fake.unexpected().await.is_empty(),
            "{key}: {:?}",
            fake.unexpected().await
        );
    }
}

#[tokio::test]
async fn avatars_report_their_duration_as_usage() {
    let fake = FakeFal::builder("fal-ai/bytedance/omnihuman/v1.5")
        .outcome(Outcome::Avatar)
        .start()
        .await;
    let (out, _) = submit_and_wait_for(&fake, "omnihuman_v1_5").await;
    let out = out.expect("completed");
    assert_eq!(out.usage.seconds, Some(5), "4.2 s rounded up");
    assert_eq!(out.artifacts.len(), 1);
}

#[tokio::test]
async fn transcripts_become_text_json_and_subtitles() {
    let fake = FakeFal::builder("fal-ai/elevenlabs/speech-to-text/scribe-v2")
        .outcome(Outcome::Transcript)
        .start()
        .await;
    let (out, _) = submit_and_wait_for(&fake, "scribe_v2").await;
    let out = out.expect("completed");
    let types: Vec<ContentType> = out
        .artifacts
        .iter()
        .filter_map(|a| match a {
            Artifact::Text { content_type, .. } => Some(*content_type),
            _ => None,
        })
        .collect();
    assert_eq!(
        types,
        vec![ContentType::Text, ContentType::Json, ContentType::Srt]
    );
    let Artifact::Text { text: srt, .. } = &out.artifacts[2] else {
        panic!("srt")
    };
    assert!(
        srt.starts_with("1\n00:00:00,000 --> 00:00:01,100\nHello world.\n\n2\n00:00:01,300"),
        "{srt}"
    );
    let Artifact::Text { text: json, .. } = &out.artifacts[1] else {
        panic!("json")
    };
    assert!(
        json.contains("\"start_ms\": 1300") && json.contains("speaker_1"),
        "{json}"
    );
    assert_eq!(out.usage.seconds, Some(3));
}

#[tokio::test]
async fn sse_needs_three_requests_however_long_the_job_runs() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .queued(3)
        .in_progress(5)
        .sse()
        .start()
        .await;
    let (out, events) = submit_and_wait(&fake).await;
    out.expect("completed");
    let requests = fake.queue_requests().await;
    assert_eq!(
        requests,
        vec![
            "POST /fal-ai/flux/dev".to_owned(),
            format!("GET /fal-ai/flux/requests/{REQUEST_ID}/status/stream"),
            format!("GET /fal-ai/flux/requests/{REQUEST_ID}"),
        ]
    );
    assert!(events.iter().any(|e| e.stage == Stage::Queued));
    assert!(
        events
            .iter()
            .any(|e| e.message.as_deref() == Some("Loading model"))
    );
}

#[tokio::test]
async fn a_stream_that_breaks_off_falls_back_to_polling() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .outcome(Outcome::KeepRunning)
        .sse()
        .start()
        .await;
    let p = provider(&fake);
    let Submitted::Pending(job) = p.submit(&request()).await.expect("submitted") else {
        panic!("pending")
    };
    let sink = EventSink::none();
    let waiting = p.wait(&job, &sink, CancellationToken::new());
    let finished = tokio::time::timeout(Duration::from_millis(800), waiting).await;
    assert!(finished.is_err(), "still running");
    let polls = fake
        .queue_requests()
        .await
        .iter()
        .filter(|r| r.ends_with("/status"))
        .count();
    assert!(polls >= 1, "polling took over after the stream ended");
}

fn local_input(
    dir: &tempfile::TempDir,
    name: &str,
    bytes: &[u8],
    sparse_len: Option<u64>,
) -> LocalInput {
    let path = dir.path().join(name);
    fs_err::write(&path, bytes).expect("write");
    if let Some(len) = sparse_len {
        fs_err::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len)
            .expect("grow");
    }
    let file = fs_err::File::open(&path).expect("open").into_parts().0;
    let size = file.metadata().expect("meta").len();
    LocalInput {
        field: "image_url".into(),
        file_name: name.into(),
        content_type: ContentType::Png,
        size,
        file: std::sync::Arc::new(file),
    }
}

#[tokio::test]
async fn small_inputs_go_inline_and_larger_ones_to_the_cdn_with_a_short_lifetime() {
    let fake = FakeFal::builder("fal-ai/flux-kontext/dev").start().await;
    let p = provider(&fake);
    let dir = tempfile::tempdir().expect("tmp");
    let small = p
        .upload(local_input(&dir, "small.png", &png(64, 64, 1000), None))
        .await
        .expect("inline");
    assert!(
        small.url.starts_with("data:image/png;base64,iVBORw0KGgo"),
        "{}",
        &small.url[..40]
    );
    assert!(fake.uploads().is_empty());
    let medium = p
        .upload(local_input(
            &dir,
            "medium.png",
            &png(2000, 2000, 300_000),
            None,
        ))
        .await
        .expect("cdn");
    assert!(
        medium
            .url
            .starts_with(&format!("{}/files/uploaded/", fake.uri()))
    );
    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].bytes, 300_000);
    assert_eq!(
        uploads[0].lifecycle.as_deref(),
        Some(acgs_providers_fal::upload::LIFECYCLE)
    );
    let auth = uploads[0].authorization.clone().unwrap_or_default();
    assert!(
        auth.starts_with("Bearer cdn-token-"),
        "the CDN gets its token: {auth}"
    );
    assert!(!auth.contains(FAL_KEY), "never the fal key");
    let token_requests: Vec<_> = fake
        .requests()
        .await
        .into_iter()
        .filter(|r| r.url.path() == "/storage/auth/token")
        .collect();
    assert_eq!(token_requests.len(), 1);
    assert_eq!(
        token_requests[0].url.query(),
        Some("storage_type=fal-cdn-v3")
    );
}

#[tokio::test]
async fn inputs_above_100_mib_go_in_parts() {
    let fake = FakeFal::builder("fal-ai/flux-kontext/dev").start().await;
    let p = provider(&fake);
    let dir = tempfile::tempdir().expect("tmp");
    let big = local_input(
        &dir,
        "big.png",
        &png(8000, 8000, 64),
        Some(101 * 1024 * 1024),
    );
    let remote = p.upload(big).await.expect("multipart");
    let uploads = fake.uploads();
    let parts: Vec<&Upload> = uploads
        .iter()
        .filter(|u| u.path.contains("/multipart/up-"))
        .collect();
    assert_eq!(uploads[0].path, "/files/upload/multipart");
    assert_eq!(
        parts.len(),
        12,
        "11 parts of at most 10 MiB and the completion"
    );
    assert!(parts.iter().take(11).all(|u| u.bytes <= 10 * 1024 * 1024));
    assert!(parts.last().is_some_and(|u| u.path.ends_with("/complete")));
    assert!(remote.url.contains("/files/uploaded/big-"));
}
