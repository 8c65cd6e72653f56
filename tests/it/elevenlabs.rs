//! `acgs speech`, `acgs voices` and `acgs transcribe --model elevenlabs_scribe_v1` through the
//! real binary against the fake ElevenLabs API.

use acgs_core::ledger::ReservationState;
use acgs_e2e::Sandbox;
use acgs_testkit::canary::{ELEVENLABS_KEY, leaks_in};
use acgs_testkit::elevenlabs::{FakeElevenLabs, Quota, SpeechFailure};
use acgs_testkit::media::wav;

use super::{assert_code, audit_lines, ledger_rows, ok};

fn sandbox_for(fake: &FakeElevenLabs) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_env("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
        .set_env("ACGS_PROVIDERS__ELEVENLABS__BASE_URL", &fake.uri())
        .set_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true");
    sb
}

#[tokio::test(flavor = "multi_thread")]
async fn long_speech_becomes_one_file_paid_by_the_character() {
    let fake = FakeElevenLabs::builder().text_limit(80).start().await;
    let sb = sandbox_for(&fake);
    let text = "The lighthouse keeper climbed the stairs at dusk. The lamp was cold. \
                He trimmed the wick and struck a match. Far out, a ship turned for home.";
    fs_err::write(sb.work().join("story.txt"), text).expect("text");
    let doc = ok(&sb
        .run(&[
            "--json",
            "speech",
            "--file",
            "story.txt",
            "--voice",
            "Adam",
            "--yes",
        ])
        .await);
    assert_eq!(doc["outputs"].as_array().map(Vec::len), Some(1), "one file");
    assert_eq!(doc["outputs"][0]["content_type"], "audio/mpeg");
    let chars = text.chars().count();
    assert_eq!(fake.speech_bodies().await.len(), chars.div_ceil(80).max(2));
    // $0.10 per 1,000 characters, rounded half-up to the micro-dollar.
    let micros = (chars as u64 * 100_000 + 500) / 1000;
    assert_eq!(
        doc["actual"],
        format!("0.{micros:06}").trim_end_matches('0')
    );
    let rows = ledger_rows(&sb).await;
    assert_eq!(rows[0].state, ReservationState::Settled);
    assert_eq!(rows[0].provider, "elevenlabs");
    assert!(
        audit_lines(&sb)
            .iter()
            .any(|e| e["outcome"] == "success" && e["model"] == "elevenlabs_multilingual_v2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_quota_exits_4_and_a_bad_key_5() {
    let fake = FakeElevenLabs::builder()
        .failure(SpeechFailure::QuotaExceeded)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let run = sb.run(&["speech", "hello", "--yes"]).await;
    assert_code(&run, 4, "provider.quota_exhausted");
    assert_eq!(ledger_rows(&sb).await[0].state, ReservationState::Released);
    let fake = FakeElevenLabs::builder()
        .failure(SpeechFailure::InvalidKey)
        .start()
        .await;
    let run = sandbox_for(&fake).run(&["speech", "hello", "--yes"]).await;
    assert_code(&run, 5, "provider.auth_failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quota_is_checked_before_anything_is_reserved() {
    let fake = FakeElevenLabs::builder()
        .quota(Quota::Remaining(3))
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let run = sb
        .run(&["speech", "more than three characters", "--yes"])
        .await;
    assert_code(&run, 4, "provider.quota_insufficient");
    assert!(ledger_rows(&sb).await.is_empty(), "nothing was reserved");
    assert!(fake.speech_bodies().await.is_empty());
    let fake = FakeElevenLabs::builder()
        .quota(Quota::NoPermission)
        .start()
        .await;
    let run = sandbox_for(&fake).run(&["speech", "hello", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("user_read"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn speech_texts_follow_the_speech_limit_not_the_prompt_limit() {
    let fake = FakeElevenLabs::builder().start().await;
    let mut sb = sandbox_for(&fake);
    sb.set_env("ACGS_GUARD__MAX_PROMPT_CHARS", "100");
    let long = "A calm sentence about the sea. ".repeat(10);
    let run = sb.run(&["speech", &long, "--dry-run"]).await;
    assert_eq!(run.code, Some(0), "310 characters pass: {}", run.stderr);
    sb.set_env("ACGS_GUARD__MAX_SPEECH_CHARS", "200");
    let run = sb.run(&["speech", &long, "--dry-run"]).await;
    assert_code(&run, 3, "guard.too_long");
    assert!(run.stderr.contains("the limit is 200"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn scribe_and_voices_through_elevenlabs() {
    let fake = FakeElevenLabs::builder().start().await;
    let sb = sandbox_for(&fake);
    fs_err::write(sb.work().join("speech.wav"), wav(3)).expect("audio");
    let doc = ok(&sb
        .run(&[
            "--json",
            "transcribe",
            "speech.wav",
            "--model",
            "elevenlabs_scribe_v1",
            "--yes",
        ])
        .await);
    let types: Vec<&str> = doc["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .filter_map(|o| o["content_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "text/plain; charset=utf-8",
            "application/json",
            "application/x-subrip"
        ]
    );
    let voices = sb.run(&["voices"]).await;
    assert_eq!(voices.code, Some(0), "{}", voices.stderr);
    assert!(voices.stdout.contains("21m00Tcm4TlvDq8ikWAM") && voices.stdout.contains("Rachel"));
    let models = ok(&sb.run(&["--json", "voices", "--models"]).await);
    assert_eq!(
        models["models"][0]["provider_model"]["model_id"],
        "eleven_multilingual_v2"
    );
    assert_eq!(
        models["models"][0]["model"], "elevenlabs_multilingual_v2",
        "the key --model takes"
    );
    let table = sb.run(&["voices", "--models"]).await;
    assert!(
        table.stdout.contains("elevenlabs_multilingual_v2"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misspelt_voice_is_refused_before_money_moves_with_a_suggestion() {
    let fake = FakeElevenLabs::builder().start().await;
    let sb = sandbox_for(&fake);
    let run = sb
        .run(&["speech", "hello there", "--voice", "Rachle", "--yes"])
        .await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("input.unknown_voice") && run.stderr.contains("did you mean Rachel?"),
        "{}",
        run.stderr
    );
    assert!(ledger_rows(&sb).await.is_empty(), "nothing was reserved");
    assert!(fake.speech_bodies().await.is_empty(), "nothing was sent");
    let far = sb
        .run(&["speech", "hello there", "--voice", "Zyxwv", "--yes"])
        .await;
    assert!(
        far.stderr.contains("input.unknown_voice") && !far.stderr.contains("did you mean"),
        "{}",
        far.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_elevenlabs_key_never_leaks() {
    let fake = FakeElevenLabs::builder()
        .failure(SpeechFailure::InvalidKey)
        .echo_keys()
        .start()
        .await;
    let mut sb = sandbox_for(&fake);
    sb.set_env("ACGS_LOG", "trace");
    let mut outputs = Vec::new();
    for args in [
        &["-vv", "speech", "hello", "--yes"][..],
        &[
            "-vv",
            "--json",
            "--log-format",
            "json",
            "speech",
            "hello",
            "--yes",
        ][..],
        &[
            "-vv",
            "speech",
            &format!("read this: {ELEVENLABS_KEY}"),
            "--yes",
        ][..],
        &["-vv", "voices"][..],
        &["-vv", "keys", "status"][..],
    ] {
        let run = sb.run(args).await;
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    assert!(
        outputs.iter().any(|o| o.contains("(received: [REDACTED])")),
        "the echo was masked"
    );
    for text in &outputs {
        assert!(
            leaks_in(text.as_bytes(), ELEVENLABS_KEY).is_empty(),
            "{text}"
        );
    }
    for (path, bytes) in sb.all_files() {
        assert!(
            leaks_in(&bytes, ELEVENLABS_KEY).is_empty(),
            "leak in {}",
            path.display()
        );
    }
}
