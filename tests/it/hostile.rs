//! Hostile files and answers against the real binary: what the attack review reproduced, each
//! refused or neutralised (docs/security.md, "what each untrusted file can and cannot do").

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use acgs_e2e::{Run, Sandbox};
use acgs_testkit::canary::{FAL_KEY, GEMINI_KEY};

use super::checks::git;

/// `acgs args…` with a time limit, so that a hang fails the test instead of stalling it.
async fn run_within(sb: &Sandbox, args: &[&str]) -> Run {
    tokio::time::timeout(Duration::from_secs(20), sb.run(args))
        .await
        .expect("acgs did not hang")
}

fn fifo(path: &std::path::Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("fifo");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_input_default_cannot_name_a_file_outside_its_folder() {
    let sb = Sandbox::new();
    for (name, default) in [
        ("absolute.yaml", "/etc/hostname"),
        ("dotdot.yaml", "../secret.png"),
    ] {
        sb.work_file(
            name,
            &format!("version: 1\ninputs:\n  ref: {{ type: image, default: {default} }}\nsteps:\n  - id: a\n    model: kontext\n    image: \"{{{{ inputs.ref }}}}\"\n    prompt: x\n"),
        );
        let run = run_within(&sb, &["validate", name]).await;
        assert_eq!(run.code, Some(2), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("input `ref`"), "{name}: {}", run.stderr);
    }
    std::os::unix::fs::symlink("/etc/hostname", sb.work().join("link.png")).expect("link");
    sb.work_file(
        "link.yaml",
        "version: 1\ninputs:\n  ref: { type: image, default: link.png }\nsteps:\n  - id: a\n    model: kontext\n    image: \"{{ inputs.ref }}\"\n    prompt: x\n",
    );
    let run = run_within(&sb, &["estimate", "link.yaml"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("outside the pipeline's folder"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_never_runs_the_folders_git_configuration() {
    let sb = Sandbox::new();
    let work = sb.work();
    git(&work, &["init", "-q", "."]);
    fs_err::write(work.join("notes.txt"), "one\n").expect("notes");
    fs_err::write(work.join(".gitattributes"), "*.txt diff=evil\n").expect("attributes");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    fs_err::write(work.join("notes.txt"), "two\n").expect("notes");
    git(&work, &["commit", "-q", "-am", "two"]);
    let marker = |n: u8| sb.root().join(format!("ran-{n}"));
    let config = format!(
        "[core]\n\tfsmonitor = \"touch {m1}; false\"\n[diff \"evil\"]\n\ttextconv = \"touch {m2}; cat\"\n\tcommand = \"touch {m3}\"\n[log]\n\tshowSignature = true\n[gpg]\n\tprogram = \"touch {m4}\"\n[core]\n\thooksPath = hooks\n\tpager = \"touch {m5}; cat\"\n",
        m1 = marker(1).display(),
        m2 = marker(2).display(),
        m3 = marker(3).display(),
        m4 = marker(4).display(),
        m5 = marker(5).display(),
    );
    let mut text = fs_err::read_to_string(work.join(".git/config")).expect("config");
    text.push_str(&config);
    fs_err::write(work.join(".git/config"), text).expect("config");
    let run = run_within(&sb, &["--json", "doctor", "--history"]).await;
    assert!(run.code.is_some(), "{}", run.stderr);
    for n in 1..=5 {
        assert!(
            !marker(n).exists(),
            "doctor ran the folder's git configuration ({n})"
        );
    }
    // The planted configuration does run for a plain git (so the test can fail).
    let plain = std::process::Command::new("git")
        .args(["-C"])
        .arg(&work)
        .args(["log", "-p"])
        .output()
        .expect("git");
    assert!(plain.status.success());
    assert!(marker(2).exists(), "plain git runs the textconv driver");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_env_shadowing_your_key_warns_and_is_refused_when_strict() {
    let sb = Sandbox::new();
    let dir = sb.root().join("config/acgs");
    fs_err::create_dir_all(&dir).expect("config");
    fs_err::write(
        dir.join("credentials"),
        format!(
            "[dev]\nGEMINI_API_KEY = \"{GEMINI_KEY}\"\n[prod]\nGEMINI_API_KEY = \"{GEMINI_KEY}\"\n"
        ),
    )
    .expect("credentials");
    fs_err::set_permissions(
        dir.join("credentials"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    sb.work_file(
        ".env",
        "GEMINI_API_KEY=AIzaSyATTACKERattacker0123456789abcdefgh\n", // acgs:allow-credential
    );
    fs_err::set_permissions(
        sb.work().join(".env"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let warned = run_within(&sb, &["keys", "status"]).await;
    assert_eq!(warned.code, Some(0), "{}", warned.stderr);
    assert!(
        warned.stderr.contains("shadows yours") && warned.stderr.contains("credentials"),
        "every command warns: {}",
        warned.stderr
    );
    let strict = run_within(&sb, &["--strict", "keys", "status"]).await;
    assert_eq!(strict.code, Some(2), "{}", strict.stderr);
    let prod = run_within(&sb, &["--profile", "prod", "keys", "status"]).await;
    assert_eq!(prod.code, Some(2), "{}", prod.stderr);
    sb.user_config("[default]\nallow_project_env = true\n");
    let allowed = run_within(&sb, &["--strict", "keys", "status"]).await;
    assert_eq!(allowed.code, Some(0), "{}", allowed.stderr);
    assert!(
        !allowed.stderr.contains("shadows yours"),
        "{}",
        allowed.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_never_follows_a_planted_link() {
    let sb = Sandbox::new();
    let outside = sb.root().join("bashrc");
    fs_err::write(&outside, "export PATH=/usr/bin\n").expect("outside");
    std::os::unix::fs::symlink(&outside, sb.work().join(".gitignore")).expect("link");
    let run = run_within(&sb, &["init"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(
        fs_err::read_to_string(&outside).expect("outside"),
        "export PATH=/usr/bin\n",
        "the link's target is untouched"
    );
    assert!(!sb.work().join("acgs.toml").exists(), "nothing was written");
    fs_err::remove_file(sb.work().join(".gitignore")).expect("rm");
    std::os::unix::fs::symlink(&outside, sb.work().join("acgs.toml")).expect("link");
    let forced = run_within(&sb, &["init", "--force"]).await;
    assert_eq!(forced.code, Some(2), "{}", forced.stderr);
    assert_eq!(
        fs_err::read_to_string(&outside).expect("outside"),
        "export PATH=/usr/bin\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_fifos_and_missing_files_are_refused_without_hanging() {
    let sb = Sandbox::new();
    let pipe = sb.root().join("pipe");
    fifo(&pipe);
    for path in [
        "/dev/zero",
        pipe.to_str().expect("utf-8"),
        "/nonexistent/acgs.toml",
    ] {
        let run = run_within(&sb, &["--config", path, "keys", "status"]).await;
        assert_eq!(run.code, Some(2), "--config {path}: {}", run.stderr);
        assert!(
            run.stderr.contains("input.unreadable"),
            "{path}: {}",
            run.stderr
        );
    }
    fifo(&sb.work().join("acgs.toml"));
    let project = run_within(&sb, &["keys", "status"]).await;
    assert_eq!(project.code, Some(2), "{}", project.stderr);
    fs_err::remove_file(sb.work().join("acgs.toml")).expect("rm");
    fifo(&sb.work().join(".env"));
    let env = run_within(&sb, &["keys", "status"]).await;
    assert_eq!(
        env.code,
        Some(0),
        "a refused .env is a warning: {}",
        env.stderr
    );
    assert!(env.stderr.contains("not a regular file"), "{}", env.stderr);
    fs_err::remove_file(sb.work().join(".env")).expect("rm");
    sb.user_config(&format!(
        "[default.guard]\nblocklists = [\"{}\"]\n",
        pipe.display()
    ));
    let lists = run_within(&sb, &["image", "a fox", "--dry-run"]).await;
    assert_eq!(lists.code, Some(2), "{}", lists.stderr);
    let doctor = run_within(&sb, &["doctor", "/nonexistent"]).await;
    assert_eq!(doctor.code, Some(2), "{}", doctor.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadowed_env_word_is_not_masked_in_output() {
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY);
    sb.work_file(".env", "FAL_KEY_ID=output\n");
    fs_err::set_permissions(
        sb.work().join(".env"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    sb.work_file(
        "p.yaml",
        "version: 1\nsteps:\n  - { id: output, model: flux_dev, prompt: x }\n",
    );
    let run = run_within(&sb, &["--json", "validate", "p.yaml"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json()["steps"][0], "output", "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_too_long_to_store_is_refused_before_anything_is_reserved() {
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", "http://127.0.0.1:9");
    let stem = "a".repeat(60);
    let run = run_within(&sb, &["image", "a fox", "--out", &stem, "-n", "2", "--yes"]).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("64 characters"), "{}", run.stderr);
    assert!(super::ledger_rows(&sb).await.is_empty(), "nothing reserved");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_audit_key_a_rewritten_unkeyed_log_fails_verification() {
    let sb = Sandbox::new();
    // The install's key exists…
    acgs_storage::audit::AuditKey::load_or_create(&sb.root().join("config/acgs/audit-key"))
        .expect("key");
    // …and someone rewrote the whole log without it.
    let forged = acgs_storage::audit::AuditLog::new(
        sb.state().join("audit.jsonl"),
        None,
        false,
        "tester".into(),
    );
    fs_err::create_dir_all(sb.state()).expect("state");
    for op in ["generate", "generate"] {
        acgs_core::audit::AuditSink::record(
            &forged,
            acgs_core::audit::AuditEvent {
                operation: op.into(),
                ..acgs_core::audit::AuditEvent::default()
            },
        )
        .expect("forged");
    }
    let run = run_within(&sb, &["--json", "audit", "verify"]).await;
    assert_eq!(run.code, Some(7), "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("\"intact\": true") && !run.stdout.contains("\"intact\":true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_sequences_in_files_never_reach_the_terminal() {
    let sb = Sandbox::new();
    sb.work_file(
        "evil.yaml",
        "version: 1\nsteps:\n  - id: a\n    model: \"\\e[2J\\e]0;owned\\a flux\"\n    prompt: x\n",
    );
    let run = run_within(&sb, &["validate", "evil.yaml"]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'),
        "{:?}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_mixing_an_input_and_a_model_text_is_estimated() {
    let sb = Sandbox::new();
    sb.work_file(
        "mix.yaml",
        "version: 1\ninputs:\n  subject: { type: text }\nsteps:\n  - id: idea\n    model: gemini_2_5_flash\n    prompt: \"an idea about {{ inputs.subject }}\"\n    params: { max_output_tokens: 2000 }\n  - id: still\n    model: flux_dev\n    prompt: \"{{ inputs.subject }}, {{ steps.idea.text }}\"\n",
    );
    let run = run_within(
        &sb,
        &[
            "estimate",
            "mix.yaml",
            "--input",
            "subject=a lighthouse at dusk",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_finds_other_services_credentials_and_respects_marked_fakes() {
    let sb = Sandbox::new();
    let work = sb.work();
    git(&work, &["init", "-q", "."]);
    let leaks = [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", // acgs:allow-credential
        "GITHUB=ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c", // acgs:allow-credential
        "api_key = \"Zq8Lm3Np7Rt2Vw9Xy4Ab6Cd1Ef5Gh0Jk\"", // acgs:allow-credential
    ];
    fs_err::write(work.join("settings.py"), leaks.join("\n")).expect("leak");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "oops"]);
    let found = run_within(&sb, &["--json", "doctor"]).await;
    assert_eq!(found.code, Some(7), "{}", found.stderr);
    let rules: Vec<String> = found.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["code"] == "doctor.tracked_credential" && c["level"] == "fail")
        .map(|c| c["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    for rule in ["aws_access_key", "github_token", "generic_api_key"] {
        assert!(rules.iter().any(|m| m.contains(rule)), "{rule}: {rules:?}");
    }
    let marked: Vec<String> = leaks
        .iter()
        .map(|l| format!("{l} # acgs:allow-credential (a documented fake)"))
        .collect();
    fs_err::write(work.join("settings.py"), marked.join("\n")).expect("marked");
    git(&work, &["commit", "-q", "-am", "mark the fakes"]);
    let clean = run_within(&sb, &["--json", "doctor"]).await;
    assert!(
        clean.json()["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["code"] == "doctor.tracked_credential" && c["level"] == "pass"),
        "{}",
        clean.stdout
    );
}

/// `acgs args…` with `stdin` piped in.
async fn run_with_stdin(sb: &Sandbox, args: &[&str], stdin: &str) -> Run {
    use tokio::io::AsyncWriteExt as _;
    let mut child = sb
        .command(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("acgs starts");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.as_bytes()).await.expect("write");
    drop(pipe);
    let output = child.wait_with_output().await.expect("acgs ends");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn input_mistakes_are_explained_before_money_moves() {
    let sb = Sandbox::new();
    let missing = sb
        .run(&["video", "waves", "--image", "nope.png", "--dry-run"])
        .await;
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("input.unreadable")
            && missing.stderr.contains("no such file")
            && !missing.stderr.contains("entity not found")
            && !missing.stderr.contains("acgs models --json"),
        "{}",
        missing.stderr
    );
    // A phone photo (HEIC) is an image, not a video.
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(b"\0\0\0\x14ispe\0\0\0\0\0\0\x04\0\0\0\x03\0");
    heic.resize(4096, 0);
    fs_err::write(sb.work().join("photo.heic"), &heic).expect("heic");
    let photo = sb
        .run(&[
            "--json",
            "video",
            "waves",
            "--image",
            "photo.heic",
            "--dry-run",
        ])
        .await;
    assert_eq!(photo.code, Some(0), "{}", photo.stderr);
    assert_eq!(photo.json()["inputs"][0]["content_type"], "image/heic");
    let piped = run_with_stdin(
        &sb,
        &["--json", "text", "--dry-run"],
        "a haiku about rain\n",
    )
    .await;
    assert_eq!(piped.code, Some(0), "{}", piped.stderr);
    assert!(
        piped.stdout.contains("a haiku about rain"),
        "{}",
        piped.stdout
    );
    let dash = run_with_stdin(&sb, &["--json", "text", "-", "--dry-run"], "a limerick").await;
    assert!(
        dash.stdout.contains("a limerick") && !dash.stdout.contains("\"-\""),
        "{}",
        dash.stdout
    );
    let file_dash = run_with_stdin(
        &sb,
        &["--json", "speech", "--file", "-", "--dry-run"],
        "Hello there.",
    )
    .await;
    assert_eq!(file_dash.code, Some(0), "{}", file_dash.stderr);
    assert!(
        file_dash.stdout.contains("Hello there."),
        "{}",
        file_dash.stdout
    );
}
