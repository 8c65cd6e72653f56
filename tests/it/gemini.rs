//! `acgs text`, `acgs analyze`, `acgs image --model gemini…` and `acgs video --model gemini_veo…`
//! through the real binary against the fake Gemini API.

use acgs_core::ledger::ReservationState;
use acgs_e2e::Sandbox;
use acgs_testkit::canary::{GEMINI_KEY, leaks_in};
use acgs_testkit::gemini::{Answer, FakeGemini};
use acgs_testkit::media::{mp4, png};

use super::{assert_code, audit_lines, ledger_rows, no_partial_files, ok};

fn sandbox_for(fake: &FakeGemini) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_env("GEMINI_API_KEY", GEMINI_KEY)
        .set_env("ACGS_PROVIDERS__GEMINI__BASE_URL", &fake.uri())
        .set_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true");
    sb
}

#[tokio::test(flavor = "multi_thread")]
async fn text_prints_the_answer_and_pays_by_usage() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .answer(Answer::Text("Dusk.\nThe lamp wakes.".into()))
        .usage(12, 34, 100)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let run = sb
        .run(&[
            "text",
            "a haiku about lighthouses",
            "--system",
            "Be terse.",
            "--yes",
        ])
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout, "Dusk.\nThe lamp wakes.\n",
        "stdout is the text itself"
    );
    assert!(
        run.stderr.contains("model gemini_2_5_flash"),
        "{}",
        run.stderr
    );
    let doc = ok(&sb.run(&["--json", "text", "another haiku", "--yes"]).await);
    assert_eq!(doc["text"], "Dusk.\nThe lamp wakes.");
    // 12 input tokens × $0.30/1M (3.6 µ$ → 4) + 134 output tokens × $2.50/1M (335 µ$).
    assert_eq!(doc["actual"], "0.000339");
    let settled = audit_lines(&sb)
        .into_iter()
        .rfind(|e| e["operation"] == "generate" && e["outcome"] == "success")
        .expect("the run's audit entry");
    assert_eq!(
        settled["quantity"]["billed"], "146",
        "12 tokens in and 134 out (thinking included), beside the bound asked for: {settled}"
    );
    assert!(
        settled["quantity"]["requested"]
            .as_u64()
            .is_some_and(|r| r > 146)
    );
    let rows = ledger_rows(&sb).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.state == ReservationState::Settled && r.provider == "gemini")
    );
    let audit = audit_lines(&sb);
    assert!(
        audit.iter().any(|e| e["outcome"] == "success"
            && e["model"] == "gemini_2_5_flash"
            && e["provider"] == "gemini"),
        "{audit:?}"
    );
    let body = &fake.submitted_bodies().await[0];
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be terse.");
    let streamed: Vec<bool> = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.url.path().contains(":"))
        .map(|r| r.url.path().ends_with(":streamGenerateContent"))
        .collect();
    assert_eq!(
        streamed,
        [true, false],
        "a person reads the words as they come; --json gets the whole text at once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn analyze_sends_the_image_inline_with_the_preset() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .answer(Answer::Text("LIGHTHOUSE ROAD".into()))
        .start()
        .await;
    let sb = sandbox_for(&fake);
    fs_err::write(sb.work().join("sign.png"), png(800, 600, 4000)).expect("image");
    let doc = ok(&sb
        .run(&["--json", "analyze", "sign.png", "--preset", "ocr", "--yes"])
        .await);
    assert_eq!(doc["text"], "LIGHTHOUSE ROAD");
    assert_eq!(doc["model"], "gemini_2_5_flash_vision");
    let parts = &fake.submitted_bodies().await[0]["contents"][0]["parts"];
    assert_eq!(parts[0]["inlineData"]["mimeType"], "image/png");
    assert!(
        parts[1]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Transcribe all text")
    );
    let run = sb
        .run(&["analyze", "sign.png", "--preset", "poem", "--yes"])
        .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("no preset `poem`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_video_uploaded_for_analysis_is_deleted_once_answered() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .answer(Answer::Text("A boat crosses the bay.".into()))
        .start()
        .await;
    let sb = sandbox_for(&fake);
    fs_err::write(sb.work().join("clip.mp4"), mp4(12, 4096)).expect("video");
    let doc = ok(&sb.run(&["--json", "analyze", "clip.mp4", "--yes"]).await);
    assert_eq!(doc["text"], "A boat crosses the bay.");
    assert_eq!(fake.deleted_files().await, ["files/upl-file-1"]);
    let requests = fake.requests().await;
    let asked = requests
        .iter()
        .position(|r| r.url.path().ends_with(":generateContent"))
        .expect("asked");
    let deleted = requests
        .iter()
        .position(|r| r.method.as_str() == "DELETE")
        .expect("deleted");
    assert!(asked < deleted, "deleted once answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_safety_block_with_http_200_exits_6_naming_the_reason() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .answer(Answer::PromptBlocked)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let run = sb.run(&["text", "a story", "--yes"]).await;
    assert_code(&run, 6, "provider.blocked_prohibited_content");
    no_partial_files(&sb);
    let rows = ledger_rows(&sb).await;
    assert_eq!(
        rows[0].state,
        ReservationState::Settled,
        "the prompt tokens are billed"
    );
    assert_eq!(
        rows[0].actual.map(|a| a.to_string()).as_deref(),
        Some("0.000003")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn veo_runs_as_an_operation_and_its_media_host_never_sees_the_key() {
    let fake = FakeGemini::builder("veo-3.1-generate-preview")
        .running_polls(1)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let refused = sb
        .run(&[
            "video",
            "waves",
            "--model",
            "gemini_veo_3_1",
            "--param",
            "seed=3",
            "--yes",
        ])
        .await;
    assert_code(&refused, 2, "input.invalid_param");
    assert!(
        refused.stderr.contains("Vertex AI only"),
        "{}",
        refused.stderr
    );
    let doc = ok(&sb
        .run(&[
            "--json",
            "video",
            "waves at dusk",
            "--model",
            "gemini_veo_3_1",
            "--duration",
            "4",
            "--yes",
        ])
        .await);
    assert_eq!(doc["outputs"][0]["content_type"], "video/mp4");
    assert_eq!(doc["estimate"], "1.60", "4 s × $0.40, verified");
    assert_eq!(doc["actual"], "1.60", "4 s × $0.40, the duration asked for");
    assert_eq!(
        fake.submitted_bodies().await[0]["parameters"]["durationSeconds"],
        4
    );
    let media = fake.media_requests().await;
    assert_eq!(media.len(), 1);
    assert!(media[0].headers.get("x-goog-api-key").is_none());
    assert_eq!(ledger_rows(&sb).await[0].state, ReservationState::Settled);
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_images_are_stored_like_fal_ones() {
    let fake = FakeGemini::builder("gemini-2.5-flash-image")
        .answer(Answer::Image)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let doc = ok(&sb
        .run(&[
            "--json",
            "image",
            "a fox",
            "--model",
            "gemini_2_5_flash_image",
            "--yes",
        ])
        .await);
    assert_eq!(doc["outputs"][0]["content_type"], "image/png");
    assert_eq!(doc["actual"], "0.039");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_gemini_key_exits_5_and_the_key_never_leaks() {
    let fake = FakeGemini::builder("gemini-2.5-flash")
        .bad_key()
        .echo_keys()
        .start()
        .await;
    let mut sb = sandbox_for(&fake);
    sb.set_env("ACGS_LOG", "trace");
    let mut outputs = Vec::new();
    for args in [
        &["-vv", "text", "hello", "--yes"][..],
        &[
            "-vv",
            "--json",
            "--log-format",
            "json",
            "text",
            "hello",
            "--yes",
        ][..],
        &["-vv", "text", &format!("my key is {GEMINI_KEY}"), "--yes"][..],
        &["-vv", "keys", "status"][..],
    ] {
        let run = sb.run(args).await;
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    assert!(
        outputs[1].contains("error[provider.auth_failed]"),
        "{}",
        outputs[1]
    );
    assert!(outputs[1].contains("API_KEY_INVALID"));
    assert!(
        outputs.iter().any(|o| o.contains("(received: [REDACTED])")),
        "the echo was masked"
    );
    for text in &outputs {
        assert!(leaks_in(text.as_bytes(), GEMINI_KEY).is_empty(), "{text}");
    }
    for (path, bytes) in sb.all_files() {
        assert!(
            leaks_in(&bytes, GEMINI_KEY).is_empty(),
            "leak in {}",
            path.display()
        );
    }
    let rows = ledger_rows(&sb).await;
    assert!(
        rows.iter().all(|r| r.state == ReservationState::Released),
        "{rows:?}"
    );
}
