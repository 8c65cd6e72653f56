//! Keys never leak: every command at `-vv` with text and JSON logs, against providers that echo
//! the key back in their error bodies; and `acgs keys set` reads keys only from stdin.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;

use acgs_e2e::Sandbox;
use acgs_testkit::canary::{ELEVENLABS_KEY, FAL_KEY, GEMINI_KEY, leaks_in};
use acgs_testkit::elevenlabs::{FakeElevenLabs, SpeechFailure};
use acgs_testkit::fal::{FakeFal, SubmitFailure};
use acgs_testkit::gemini::FakeGemini;
use acgs_testkit::media::{png, wav};
use tokio::io::AsyncWriteExt as _;

const KEYS: [&str; 3] = [FAL_KEY, GEMINI_KEY, ELEVENLABS_KEY];

#[tokio::test(flavor = "multi_thread")]
async fn no_command_leaks_a_key_even_when_providers_echo_it() {
    let fal = FakeFal::builder("fal-ai/flux/dev")
        .submit_failure(SubmitFailure::BadKey)
        .echo_keys()
        .start()
        .await;
    let gemini = FakeGemini::builder("gemini-2.5-flash")
        .bad_key()
        .echo_keys()
        .start()
        .await;
    let eleven = FakeElevenLabs::builder()
        .failure(SpeechFailure::InvalidKey)
        .echo_keys()
        .start()
        .await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("GEMINI_API_KEY", GEMINI_KEY)
        .set_env("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fal.uri())
        .set_env("ACGS_PROVIDERS__FAL__REST_URL", &fal.uri())
        .set_env("ACGS_PROVIDERS__GEMINI__BASE_URL", &gemini.uri())
        .set_env("ACGS_PROVIDERS__ELEVENLABS__BASE_URL", &eleven.uri())
        .set_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true")
        .set_env("ACGS_LOG", "trace");
    fs_err::write(sb.work().join("photo.png"), png(640, 480, 3000)).expect("photo");
    fs_err::write(sb.work().join("voice.wav"), wav(2)).expect("voice");
    sb.work_file(
        "p.yaml",
        "version: 1\nsteps:\n  - { id: a, model: flux_dev, prompt: x }\n  - { id: b, model: gemini_2_5_flash, prompt: \"{{ steps.a.image }} no\" }\n",
    );
    sb.work_file(
        "q.yaml",
        "version: 1\nsteps:\n  - { id: a, model: flux_dev, prompt: a fox }\n",
    );
    let pasted = format!("a fox and {FAL_KEY} and {GEMINI_KEY} and {ELEVENLABS_KEY}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["image", "a fox", "--yes"],
        vec!["image", &pasted, "--yes"],
        vec!["video", "waves", "--yes"],
        vec!["upscale", "photo.png", "--yes"],
        vec!["avatar", "photo.png", "--audio", "voice.wav", "--yes"],
        vec!["transcribe", "voice.wav", "--yes"],
        vec!["text", "a haiku", "--yes"],
        vec!["text", &pasted, "--yes"],
        vec!["analyze", "photo.png", "--yes"],
        vec!["speech", "hello there", "--yes"],
        vec!["voices"],
        vec!["voices", "--models"],
        vec!["models"],
        vec!["keys", "status"],
        vec!["guard", "check", &pasted],
        vec!["spend"],
        vec!["audit", "verify"],
        vec!["audit", "tail"],
        vec!["audit", "anchor"],
        vec!["doctor"],
        vec!["validate", "p.yaml"],
        vec!["estimate", "q.yaml"],
        vec!["run", "q.yaml", "--yes"],
        vec!["resume", "20261127T000000Z-abcdef"],
        vec!["init"],
    ];
    let mut outputs = Vec::new();
    for command in &commands {
        for style in [&["-vv"][..], &["-vv", "--json", "--log-format", "json"][..]] {
            let args: Vec<&str> = style.iter().chain(command.iter()).copied().collect();
            let run = sb.run(&args).await;
            outputs.push((args.join(" "), run.stdout));
            outputs.push((args.join(" "), run.stderr));
        }
    }
    assert!(
        outputs
            .iter()
            .any(|(_, o)| o.contains("(received: [REDACTED])")),
        "the providers did echo keys, and they were masked"
    );
    for (command, text) in &outputs {
        for key in KEYS {
            assert!(
                leaks_in(text.as_bytes(), key).is_empty(),
                "`acgs {command}` leaked: {text}"
            );
        }
    }
    for (path, bytes) in sb.all_files() {
        for key in KEYS {
            assert!(
                leaks_in(&bytes, key).is_empty(),
                "leak in {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_set_from_stdin_into_a_private_file_and_deleted() {
    let sb = Sandbox::new();
    let mut child = sb
        .command(&["keys", "set", "FAL_KEY"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{FAL_KEY}\n").as_bytes())
        .await
        .expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("exit");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leaks_in(stdout.as_bytes(), FAL_KEY).is_empty(), "{stdout}");
    let file = sb.root().join("config/acgs/credentials");
    assert_eq!(
        fs_err::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    assert!(
        fs_err::read_to_string(&file)
            .expect("read")
            .contains("[default]"),
        "without --profile a key serves every profile"
    );
    for profile in ["dev", "prod"] {
        let status = sb
            .run(&["--json", "--profile", profile, "keys", "status"])
            .await
            .json();
        assert!(
            status["keys"][0]["source"]
                .as_str()
                .is_some_and(|s| s.ends_with("credentials [default]")),
            "{profile}: {status}"
        );
    }
    let misspelt = sb.run(&["--profile", "prdo", "keys", "status"]).await;
    assert_eq!(misspelt.code, Some(2), "{}", misspelt.stderr);
    assert!(
        misspelt.stderr.contains("config.unknown_profile") && misspelt.stderr.contains("prod"),
        "{}",
        misspelt.stderr
    );
    let argv = sb.run(&["keys", "set", "FAL_KEY", FAL_KEY]).await;
    assert_eq!(
        argv.code,
        Some(2),
        "a key is never taken from the command line"
    );
    let deleted = sb.run(&["keys", "delete", "FAL_KEY"]).await;
    assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
    assert!(
        !fs_err::read_to_string(&file)
            .expect("read")
            .contains("FAL_KEY")
    );
}

#[test]
fn the_container_keeps_keys_out() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile = fs_err::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let last_user = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    assert_ne!(last_user.trim(), "root", "acgs runs unprivileged");
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.starts_with("COPY") && l.contains(".env"))
    );
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.starts_with("ENV") && l.contains("KEY")),
        "no keys baked in"
    );
    let ignore = fs_err::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    for line in [".env", ".env.*", "*.key", "secrets/"] {
        assert!(
            ignore.lines().any(|l| l == line),
            "{line} is kept out of the build context"
        );
    }
}
