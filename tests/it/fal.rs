//! fal in full through the binary: every command, resumable jobs, refreshed prices, estimates.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use super::{ledger_rows, ok, signal};
use acgs_core::ledger::ReservationState;
use acgs_e2e::Sandbox;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome};
use acgs_testkit::media::{mp4, png, wav};

fn sandbox_for(fake: &FakeFal) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fake.uri())
        .set_env("ACGS_PROVIDERS__FAL__REST_URL", &fake.uri());
    sb
}

fn write(sb: &Sandbox, name: &str, bytes: &[u8]) -> String {
    fs_err::write(sb.work().join(name), bytes).expect("input");
    name.to_owned()
}

/// The status of the first step of the only run folder, once it has one.
fn step_status(sb: &Sandbox) -> Option<String> {
    let folder = sb.run_folders().into_iter().next()?;
    let text = fs_err::read_to_string(folder.join("manifest.json")).ok()?;
    let manifest: serde_json::Value = serde_json::from_str(&text).ok()?;
    manifest["steps"][0]["status"].as_str().map(str::to_owned)
}

async fn wait_for_status(sb: &Sandbox, status: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    while step_status(sb).as_deref() != Some(status) {
        assert!(
            Instant::now() < deadline,
            "the step never reached `{status}`"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sb.run_folders()[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_video_job_is_finished_by_resume_without_a_second_submit() {
    let fake = FakeFal::builder("fal-ai/kling-video/v2.6/pro/text-to-video")
        .outcome(Outcome::KeepRunning)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let child = sb
        .command(&["video", "a slow orbit around a teapot", "--yes"])
        .spawn()
        .expect("spawn");
    let run_id = wait_for_status(&sb, "submitted").await;
    signal(&child, rustix::process::Signal::KILL);
    let counted = ledger_rows(&sb).await;
    assert_eq!(counted.len(), 1);
    assert_eq!(
        counted[0].state,
        ReservationState::Submitted,
        "the reservation counts while the job runs"
    );
    assert!(
        counted[0].job.is_some(),
        "the ledger keeps the job handle too"
    );
    fake.complete_now().await;
    let doc = ok(&sb.run(&["--json", "resume", &run_id]).await);
    assert_eq!(doc["run_id"], run_id.as_str());
    assert_eq!(doc["outputs"][0]["content_type"], "video/mp4");
    assert_eq!(
        fake.submits().await,
        1,
        "resume re-attached instead of submitting again"
    );
    let rows = ledger_rows(&sb).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, ReservationState::Settled, "settled once");
    let again = ok(&sb.run(&["--json", "resume", &run_id]).await);
    assert_eq!(
        again["outputs"][0]["sha256"], doc["outputs"][0]["sha256"],
        "a finished run is reused after its files are checked"
    );
    assert_eq!(fake.submits().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_video_is_charged_once_and_one_resume_finishes_the_run() {
    let fake = FakeFal::builder("fal-ai/kling-video/v2.6/pro/text-to-video")
        .outcome(Outcome::KeepRunning)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    // An unverified price, so that the worst case carries the margin a cancel must not charge.
    sb.user_config("[default.models.kling_2_6_pro.pricing]\nunit = \"second\"\nrate = \"0.07\"\nquantity_param = \"duration\"\npriced_on = 2026-12-06\nsource = \"a test's own\"\nverified = false\n");
    let child = sb
        .command(&["video", "a slow orbit around a teapot", "--yes"])
        .spawn()
        .expect("spawn");
    let run_id = wait_for_status(&sb, "submitted").await;
    signal(&child, rustix::process::Signal::INT);
    let out = child.wait_with_output().await.expect("exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("cancelled while it ran") && stderr.contains("acgs resume"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Requested") && !stderr.contains("Unsupported"),
        "no internal names: {stderr}"
    );
    let cancelled = ledger_rows(&sb).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].state, ReservationState::Settled);
    let charged = cancelled[0].actual.expect("charged");
    assert!(
        charged.micros() * 2 == cancelled[0].estimate.micros(),
        "the price of what was asked ({charged}), not the worst case with the unverified margin ({})",
        cancelled[0].estimate
    );
    let submits_before = fake.submits().await;
    fake.complete_now().await;
    let doc = ok(&sb.run(&["--json", "resume", &run_id, "--yes"]).await);
    assert_eq!(doc["outputs"][0]["content_type"], "video/mp4");
    assert_eq!(
        fake.submits().await,
        submits_before + 1,
        "one resume sends the job again, without waiting on the cancelled one"
    );
    let rows = ledger_rows(&sb).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.state == ReservationState::Settled
                && r.actual.is_some_and(|a| a < r.estimate)),
        "two settled charges, none at its worst case: {rows:?}"
    );
    let again = ok(&sb.run(&["--json", "resume", &run_id, "--yes"]).await);
    assert_eq!(again["outputs"][0]["sha256"], doc["outputs"][0]["sha256"]);
    assert_eq!(
        fake.submits().await,
        submits_before + 1,
        "nothing sent twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_while_submitting_needs_resubmit() {
    let slow = FakeFal::builder("fal-ai/kling-video/v2.6/pro/text-to-video")
        .outcome(Outcome::Video)
        .submit_delay(Duration::from_secs(120))
        .start()
        .await;
    let mut sb = sandbox_for(&slow);
    let child = sb
        .command(&["video", "a teapot", "--yes"])
        .spawn()
        .expect("spawn");
    let run_id = wait_for_status(&sb, "submitting").await;
    // The manifest says `submitting` just before the ledger does; kill once the request is out.
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.submits().await == 0 {
        assert!(Instant::now() < deadline, "the submit never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, rustix::process::Signal::KILL);
    let run = sb.run(&["resume", &run_id, "--yes"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("error[run.outcome_unknown]") && run.stderr.contains("--resubmit"),
        "{}",
        run.stderr
    );
    assert_eq!(
        ledger_rows(&sb).await[0].state,
        ReservationState::Submitted,
        "the unknown request keeps counting"
    );
    let fast = FakeFal::builder("fal-ai/kling-video/v2.6/pro/text-to-video")
        .outcome(Outcome::Video)
        .start()
        .await;
    sb.set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fast.uri());
    let doc = ok(&sb
        .run(&["--json", "resume", &run_id, "--resubmit", "--yes"])
        .await);
    assert_eq!(doc["run_id"], run_id.as_str());
    let states: Vec<ReservationState> = ledger_rows(&sb).await.iter().map(|r| r.state).collect();
    assert!(
        states.contains(&ReservationState::Abandoned)
            && states.contains(&ReservationState::Settled),
        "{states:?}"
    );
    let audit = fs_err::read_to_string(sb.state().join("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"code\":\"run.resubmit\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_runs_through_the_fake() {
    let video = FakeFal::builder("fal-ai/kling-video/v2.1/standard/image-to-video")
        .outcome(Outcome::Video)
        .sse()
        .start()
        .await;
    let sb = sandbox_for(&video);
    let image = write(&sb, "still.png", &png(1280, 720, 300_000));
    let doc = ok(&sb
        .run(&[
            "--json",
            "video",
            "slow zoom",
            "--image",
            &image,
            "--duration",
            "10",
            "--yes",
        ])
        .await);
    assert_eq!(doc["estimate"], "0.56", "10 s × $0.056, verified");
    assert_eq!(video.uploads().len(), 1, "the still went to the CDN");
    assert_eq!(
        video.queue_requests().await.len(),
        3,
        "submit, stream, result"
    );

    let avatar = FakeFal::builder("fal-ai/bytedance/omnihuman/v1.5")
        .outcome(Outcome::Avatar)
        .start()
        .await;
    let sb = sandbox_for(&avatar);
    let face = write(&sb, "face.png", &png(512, 512, 2000));
    let voice = write(&sb, "voice.wav", &wav(4));
    let doc = ok(&sb
        .run(&["--json", "avatar", &face, "--audio", &voice, "--yes"])
        .await);
    assert_eq!(doc["estimate"], "0.64", "4 s × $0.16, verified");
    assert_eq!(doc["actual"], "0.80", "5 s reported × $0.16");
    let submit = avatar
        .requests()
        .await
        .into_iter()
        .find(|r| r.method == wiremock::http::Method::POST && r.url.path().contains("omnihuman"))
        .expect("submit");
    let body: serde_json::Value = serde_json::from_slice(&submit.body).expect("json");
    assert!(
        body["audio_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("data:audio/wav;base64,"))
    );
    assert!(
        body["image_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("data:image/png;base64,"))
    );

    let scribe = FakeFal::builder("fal-ai/elevenlabs/speech-to-text/scribe-v2")
        .outcome(Outcome::Transcript)
        .start()
        .await;
    let sb = sandbox_for(&scribe);
    let speech = write(&sb, "speech.wav", &wav(3));
    let doc = ok(&sb.run(&["--json", "transcribe", &speech, "--yes"]).await);
    let names: Vec<String> = doc["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            o["path"]
                .as_str()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        vec!["transcript.txt", "transcript.json", "transcript.srt"]
    );
    let folder = &sb.run_folders()[0];
    let manifest = fs_err::read_to_string(folder.join("manifest.json")).expect("manifest");
    assert!(
        manifest.len() < 16 * 1024 && manifest.contains("data:audio/wav;sha256="),
        "the input is recorded by digest, not inlined ({} bytes)",
        manifest.len()
    );
    assert_eq!(
        fs_err::read_to_string(folder.join("transcript.txt")).expect("txt"),
        "Hello world. This is a test."
    );
    assert!(
        fs_err::read_to_string(folder.join("transcript.srt"))
            .expect("srt")
            .contains("00:00:00,000 --> 00:00:01,100")
    );
    assert_eq!(
        doc["text"], "Hello world. This is a test.",
        "--json carries it"
    );
    let printed = sb.run(&["transcribe", &speech, "--yes"]).await;
    assert_eq!(
        printed.stdout.trim(),
        "Hello world. This is a test.",
        "the transcript is printed; the run goes to stderr: {}",
        printed.stderr
    );

    let upscale = FakeFal::builder("fal-ai/topaz/upscale/video")
        .outcome(Outcome::Video)
        .start()
        .await;
    let sb = sandbox_for(&upscale);
    let clip = write(&sb, "clip.mp4", &mp4(7, 300_000));
    let doc = ok(&sb.run(&["--json", "upscale", &clip, "--yes"]).await);
    assert_eq!(doc["model"], "topaz");
    assert_eq!(doc["estimate"], "1.12", "7 s of input × $0.16, verified");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_refused_before_anything_is_sent() {
    let fake = FakeFal::builder("fal-ai/bytedance/omnihuman/v1.5")
        .outcome(Outcome::Avatar)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let face = write(&sb, "face.png", &png(512, 512, 2000));
    let long = write(&sb, "long.wav", &wav(31));
    let svg = write(&sb, "face.svg", acgs_testkit::media::SVG_WITH_SCRIPT);
    let run = sb.run(&["avatar", &face, "--audio", &long, "--yes"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("31 s long") && run.stderr.contains("at most 30 s"),
        "{}",
        run.stderr
    );
    let run = sb.run(&["avatar", &svg, "--audio", &face, "--yes"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let run = sb.run(&["avatar", &face, "--audio", &face, "--yes"]).await;
    assert!(
        run.code == Some(2) && run.stderr.contains("expected audio"),
        "{}",
        run.stderr
    );
    fs_err::create_dir(sb.work().join("dir.png")).expect("dir");
    let run = sb
        .run(&["avatar", "dir.png", "--audio", &long, "--yes"])
        .await;
    assert!(
        run.code == Some(2) && run.stderr.contains("not a regular file"),
        "{}",
        run.stderr
    );
    let fifo = sb.work().join("pipe.png");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        sb.run(&["image", "x", "--edit", "pipe.png", "--yes"]),
    )
    .await
    .expect("a FIFO input is refused, not waited on");
    assert!(
        run.code == Some(2) && run.stderr.contains("not a regular file"),
        "{}",
        run.stderr
    );
    assert!(fake.requests().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshed_prices_change_the_estimate_and_unverified_ones_keep_their_margin() {
    let api = wiremock::MockServer::start().await;
    let price = |endpoint: &str, unit: &str, amount: &str| serde_json::json!({"prices": [{"endpoint_id": endpoint, "unit_price": amount.parse::<f64>().expect("price"), "unit": unit, "currency": "USD"}]});
    for (endpoint, unit, amount) in [
        ("fal-ai/flux/dev", "megapixels", "0.03"),
        ("fal-ai/imagen4/preview", "images", "0.06"),
        ("fal-ai/gpt-image-1.5", "images", "0.25"),
        ("fal-ai/flux/schnell", "megapixels", "-0.003"),
        (
            "fal-ai/bytedance/seedream/v3/text-to-image",
            "images",
            "3.00",
        ),
    ] {
        wiremock::Mock::given(wiremock::matchers::query_param("endpoint_id", endpoint))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(price(endpoint, unit, amount)),
            )
            .mount(&api)
            .await;
    }
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({"prices": []})),
        )
        .with_priority(u8::MAX)
        .mount(&api)
        .await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__API_URL", &api.uri());
    let before = ok(&sb.run(&["--json", "image", "a fox", "--dry-run"]).await);
    assert_eq!(before["estimate"]["amount"], "0.025");
    sb.user_config("# mine\n");
    let config_path = sb.root().join("config/acgs/config.toml");
    fs_err::set_permissions(&config_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let refreshed = ok(&sb.run(&["--json", "models", "--refresh-prices"]).await);
    let mode = fs_err::metadata(&config_path)
        .expect("config")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the user configuration keeps its mode");
    let rows = refreshed["refreshed"].as_array().expect("rows");
    let row = |model: &str| {
        rows.iter()
            .find(|r| r["model"] == model)
            .expect(model)
            .clone()
    };
    assert!(
        row("flux_schnell")["new"].is_null(),
        "a negative price is refused: {rows:?}"
    );
    assert!(
        row("flux_schnell")["note"]
            .as_str()
            .is_some_and(|n| n.contains("zero or less")),
        "{rows:?}"
    );
    let seedream = row("seedream_v3");
    assert!(
        seedream["new"].is_null(),
        "a price 4× off waits for a yes: {seedream}"
    );
    assert!(
        seedream["note"]
            .as_str()
            .is_some_and(|n| n.contains("more than 4×"))
    );
    let accepted = ok(&sb
        .run(&["--json", "--yes", "models", "--refresh-prices"])
        .await);
    let seedream = accepted["refreshed"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["model"] == "seedream_v3")
        .expect("seedream")
        .clone();
    assert_eq!(seedream["new"], "3.00", "with --yes it is written");
    assert!(
        rows.iter()
            .any(|r| r["model"] == "flux_dev" && r["new"] == "0.03")
    );
    let after = ok(&sb.run(&["--json", "image", "a fox", "--dry-run"]).await);
    assert_eq!(
        after["estimate"]["amount"], "0.03",
        "the estimate follows the refreshed price"
    );
    assert_eq!(
        after["price"]["source"]
            .as_str()
            .map(|s| s.starts_with("fal pricing API")),
        Some(true)
    );
    let imagen = ok(&sb
        .run(&[
            "--json",
            "image",
            "a fox",
            "--model",
            "imagen4",
            "--dry-run",
        ])
        .await);
    assert_eq!(
        (
            imagen["estimate"]["amount"].as_str(),
            imagen["estimate"]["margin"].is_null()
        ),
        (Some("0.06"), true)
    );
    let gpt = ok(&sb
        .run(&[
            "--json",
            "image",
            "a fox",
            "--model",
            "gpt_image_1_5",
            "--param",
            "quality=high",
            "--dry-run",
        ])
        .await);
    assert_eq!(
        gpt["price"]["verified"], false,
        "tiered prices stay unverified"
    );
    assert_eq!(
        (
            gpt["estimate"]["amount"].as_str(),
            gpt["estimate"]["margin"].as_str()
        ),
        (Some("0.50"), Some("2.000"))
    );
    let config = fs_err::read_to_string(sb.root().join("config/acgs/config.toml")).expect("config");
    assert!(!config.contains(FAL_KEY));
}

/// Estimates against prices worked out by hand from the catalogue's sources (every model here
/// has a verified price, so none carries the unverified margin).
#[tokio::test(flavor = "multi_thread")]
async fn dry_run_estimates_match_hand_computed_prices() {
    let sb = Sandbox::new();
    let face = write(&sb, "face.png", &png(1024, 1024, 2000));
    let voice = write(&sb, "voice.wav", &wav(12));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["video", "x", "--duration", "10"], "1.40"),
        (vec!["video", "x", "--model", "veo3"], "3.20"),
        (
            vec![
                "video",
                "x",
                "--model",
                "veo3",
                "--param",
                "generate_audio=false",
            ],
            "1.60",
        ),
        (
            vec!["video", "x", "--model", "kling_3_pro", "--duration", "15"],
            "3.36",
        ),
        (
            vec![
                "video",
                "x",
                "--model",
                "sora_2_pro_i2v",
                "--image",
                &face,
                "--duration",
                "8",
                "--param",
                "resolution=720p",
            ],
            "2.40",
        ),
        (
            vec!["video", "x", "--model", "veo3_fast", "--duration", "4"],
            "0.60",
        ),
        (
            vec!["image", "x", "--param", "image_size=square_hd", "-n", "2"],
            "0.10",
        ),
        (vec!["image", "x", "--model", "flux_schnell"], "0.003"),
        (
            vec![
                "image",
                "x",
                "--model",
                "nano_banana_pro",
                "--param",
                "resolution=4K",
            ],
            "0.30",
        ),
        (
            vec!["image", "x", "--edit", &face, "--model", "photon"],
            "0.01",
        ),
        (vec!["avatar", &face, "--audio", &voice], "1.92"),
        (
            vec![
                "avatar",
                &face,
                "--audio",
                &voice,
                "--model",
                "fabric_1_0",
                "--param",
                "resolution=480p",
            ],
            "0.96",
        ),
        (vec!["transcribe", &voice], "0.008"),
    ];
    for (mut args, expected) in cases {
        args.push("--dry-run");
        let mut full = vec!["--json"];
        full.extend(args.iter().copied());
        let doc = ok(&sb.run(&full).await);
        assert_eq!(
            doc["estimate"]["amount"].as_str(),
            Some(expected),
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn detach_leaves_the_job_running_for_resume() {
    let fake = FakeFal::builder("fal-ai/kling-video/v2.6/pro/text-to-video")
        .outcome(Outcome::KeepRunning)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let child = sb
        .command(&["video", "a teapot", "--detach", "--yes"])
        .spawn()
        .expect("spawn");
    let run_id = wait_for_status(&sb, "submitted").await;
    signal(&child, rustix::process::Signal::INT);
    let out = child.wait_with_output().await.expect("exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!("acgs resume {run_id}")),
        "{stderr}"
    );
    let cancels = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.method == wiremock::http::Method::PUT)
        .count();
    assert_eq!(cancels, 0, "a detached job is not cancelled");
    assert_eq!(ledger_rows(&sb).await[0].state, ReservationState::Submitted);
    fake.complete_now().await;
    let doc = ok(&sb.run(&["--json", "resume", &run_id]).await);
    assert_eq!(doc["outputs"][0]["content_type"], "video/mp4");
    assert_eq!(fake.submits().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_settles_at_the_units_fal_billed_in_either_direction() {
    for (billed, actual, overrun) in [("2.5", "0.0625", true), ("0.5", "0.0125", false)] {
        let fake = FakeFal::builder("fal-ai/flux/dev")
            .billable_units(billed)
            .start()
            .await;
        let sb = sandbox_for(&fake);
        let run = sb
            .run(&["--json", "image", "a red fox in snow", "--yes"])
            .await;
        let doc = ok(&run);
        assert_eq!(doc["estimate"], "0.025", "one megapixel asked for");
        assert_eq!(
            doc["actual"], actual,
            "settled at what fal billed ({billed})"
        );
        assert_eq!(
            run.stderr.contains("exceeded the estimate"),
            overrun,
            "{}",
            run.stderr
        );
        let rows = ledger_rows(&sb).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, ReservationState::Settled);
        assert_eq!(
            rows[0].actual.map(|a| a.to_string()).as_deref(),
            Some(actual)
        );
        let folder = sb.run_folders()[0].clone();
        let manifest: serde_json::Value = serde_json::from_str(
            &fs_err::read_to_string(folder.join("manifest.json")).expect("manifest"),
        )
        .expect("json");
        assert_eq!(
            manifest["steps"][0]["quantity"],
            serde_json::json!({"requested": 1, "billed": billed}),
            "both quantities are in the manifest"
        );
        let entry = super::audit_lines(&sb)
            .into_iter()
            .rfind(|e| e["operation"] == "generate" && e["outcome"] == "success")
            .expect("the step's audit entry");
        assert_eq!(entry["quantity"]["requested"], 1);
        assert_eq!(entry["quantity"]["billed"], billed);
        assert_eq!(entry["actual"], actual);
    }
}
