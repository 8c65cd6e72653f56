//! `acgs keys check`: one cheap authenticated call per provider, the key never shown.

use acgs_e2e::Sandbox;
use acgs_testkit::canary::{ELEVENLABS_KEY, FAL_KEY, GEMINI_KEY, leaks_in};
use acgs_testkit::elevenlabs::{FakeElevenLabs, SpeechFailure};
use acgs_testkit::gemini::FakeGemini;

/// fal's pricing API: 200 for the right key, fal's 401 otherwise.
async fn fal_api() -> wiremock::MockServer {
    let api = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/v1/models/pricing"))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Key {FAL_KEY}").as_str(),
        ))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({"prices": []})),
        )
        .mount(&api)
        .await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(401).set_body_json(
                serde_json::json!({"detail": "No user found for Key ID and Secret"}),
            ),
        )
        .with_priority(u8::MAX)
        .mount(&api)
        .await;
    api
}

#[tokio::test(flavor = "multi_thread")]
async fn each_provider_is_asked_whether_it_accepts_its_key() {
    let fal = fal_api().await;
    let gemini = FakeGemini::builder("gemini-2.5-flash").start().await;
    let eleven = FakeElevenLabs::builder().start().await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__API_URL", &fal.uri())
        .set_env("GEMINI_API_KEY", GEMINI_KEY)
        .set_env("ACGS_PROVIDERS__GEMINI__BASE_URL", &gemini.uri())
        .set_env("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
        .set_env("ACGS_PROVIDERS__ELEVENLABS__BASE_URL", &eleven.uri())
        .set_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true");
    let run = sb.run(&["--json", "keys", "check"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = run.json();
    let rows = doc["keys"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r["checked"] == true && r["ok"] == true),
        "{doc}"
    );
    for key in [FAL_KEY, GEMINI_KEY, ELEVENLABS_KEY] {
        assert!(leaks_in(run.stdout.as_bytes(), key).is_empty());
        assert!(leaks_in(run.stderr.as_bytes(), key).is_empty());
    }

    // A refused key: its row says so, the others still answer, and the exit code is 5.
    sb.set_env(
        "FAL_KEY",
        "d4a1a7c0-ca4a-4ca1-8ca1-ca1ca1ca1ca1:0000000000000000000000000000beef",
    );
    let refused = sb.run(&["keys", "check"]).await;
    assert_eq!(refused.code, Some(5), "{}", refused.stderr);
    assert!(
        refused.stdout.contains("REFUSED  fal") && refused.stdout.contains("ok       gemini"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stderr.contains("did not accept the key"),
        "{}",
        refused.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_asked_for_without_a_key_is_credentials_missing() {
    let eleven = FakeElevenLabs::builder()
        .failure(SpeechFailure::InvalidKey)
        .start()
        .await;
    let mut sb = Sandbox::new();
    sb.set_env("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
        .set_env("ACGS_PROVIDERS__ELEVENLABS__BASE_URL", &eleven.uri())
        .set_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true");
    let missing = sb.run(&["keys", "check", "gemini"]).await;
    assert_eq!(missing.code, Some(5), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("credentials.missing"),
        "{}",
        missing.stderr
    );
    let listed = sb.run(&["--json", "keys", "check"]).await;
    assert_eq!(
        listed.code,
        Some(5),
        "the ElevenLabs key is refused: {}",
        listed.stderr
    );
    let doc = listed.json();
    let fal = &doc["keys"][0];
    assert_eq!(
        (fal["checked"].as_bool(), fal["ok"].is_null()),
        (Some(false), true)
    );
    assert_eq!(doc["keys"][2]["ok"], false);
    assert!(leaks_in(listed.stderr.as_bytes(), ELEVENLABS_KEY).is_empty());
}
