//! `acgs audit verify` against edited, deleted, reordered and cut logs, and many writers; `acgs
//! doctor` on prepared folders.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use acgs_e2e::{Run, Sandbox};
use acgs_testkit::canary::{FAL_KEY, leaks_in};
use acgs_testkit::fal::FakeFal;
use acgs_testkit::fleet::FakeFalFleet;

use super::{ENDPOINT, assert_code, sandbox_for};

async fn with_entries(n: usize) -> (FakeFal, Sandbox) {
    let fake = FakeFal::builder(ENDPOINT).start().await;
    let sb = sandbox_for(&fake);
    for i in 0..n {
        let run = sb
            .run(&["image", &format!("a fox, take {i}"), "--yes"])
            .await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    (fake, sb)
}

fn audit_file(sb: &Sandbox) -> std::path::PathBuf {
    sb.state().join("audit.jsonl")
}

fn rewrite(sb: &Sandbox, change: impl FnOnce(Vec<String>) -> Vec<String>) {
    let text = fs_err::read_to_string(audit_file(sb)).expect("audit");
    let lines = change(text.lines().map(str::to_owned).collect());
    fs_err::write(audit_file(sb), lines.join("\n") + "\n").expect("tamper");
}

fn assert_broken_at(run: &Run, line: usize, reason: &str) {
    assert_code(run, 7, "audit.tampered");
    assert!(
        run.stderr.contains(&format!("line {line}")) && run.stderr.contains(reason),
        "expected line {line} ({reason}): {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untouched_log_verifies_and_every_tampering_is_named() {
    let (_fake, sb) = with_entries(4).await;
    let clean = sb.run(&["--json", "audit", "verify"]).await;
    assert_eq!(clean.code, Some(0), "{}", clean.stderr);
    let doc = clean.json();
    assert_eq!(doc["entries"], 4);
    assert_eq!(doc["keyed"], true);
    assert_eq!(doc["anchor"]["seq"], 4, "the ledger keeps the head");
    let original = fs_err::read_to_string(audit_file(&sb)).expect("audit");

    rewrite(&sb, |mut l| {
        l[1] = l[1].replace("\"success\"", "\"refused\"");
        l
    });
    assert_broken_at(&sb.run(&["audit", "verify"]).await, 3, "does not chain");

    fs_err::write(audit_file(&sb), &original).expect("restore");
    rewrite(&sb, |mut l| {
        l.remove(1);
        l
    });
    assert_broken_at(
        &sb.run(&["audit", "verify"]).await,
        2,
        "sequence 3 where 2 was expected",
    );

    fs_err::write(audit_file(&sb), &original).expect("restore");
    rewrite(&sb, |mut l| {
        l.swap(1, 2);
        l
    });
    assert_broken_at(
        &sb.run(&["audit", "verify"]).await,
        2,
        "sequence 3 where 2 was expected",
    );

    fs_err::write(audit_file(&sb), &original).expect("restore");
    rewrite(&sb, |mut l| {
        l.truncate(2);
        l
    });
    assert_broken_at(
        &sb.run(&["audit", "verify"]).await,
        3,
        "entries were removed from its end",
    );

    fs_err::write(audit_file(&sb), &original).expect("restore");
    assert_eq!(sb.run(&["audit", "verify"]).await.code, Some(0));
    let tail = sb.run(&["--json", "audit", "tail", "-n", "2"]).await;
    let entries = tail.json()["entries"].as_array().cloned().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["seq"], 4);
    assert_eq!(entries[1]["origin"], "cli", "{entries:?}");
    let mcp = sb
        .run(&["--json", "audit", "tail", "--origin", "mcp"])
        .await
        .json();
    assert_eq!(
        mcp["entries"],
        serde_json::json!([]),
        "no agent did anything"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_writers_at_once_leave_a_chain_that_verifies() {
    let fleet = FakeFalFleet::start(ENDPOINT, Duration::ZERO).await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fleet.uri());
    let children: Vec<_> = (0..8)
        .map(|i| {
            sb.command(&["image", &format!("a fox number {i}"), "--yes"])
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().await.expect("exit");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let verify = sb.run(&["--json", "audit", "verify"]).await;
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    assert_eq!(verify.json()["entries"], 8);
}

pub(crate) fn git(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs");
    assert!(
        status.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

fn doctor(sb: &Sandbox) -> impl std::future::Future<Output = Run> + '_ {
    sb.run(&["--json", "doctor"])
}

fn finding(run: &Run, code: &str) -> Option<String> {
    run.json()["checks"]
        .as_array()?
        .iter()
        .find(|c| c["code"] == code && c["level"] != "pass")
        .map(|c| {
            format!(
                "{} {}",
                c["level"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_finds_each_problem_and_passes_a_clean_folder() {
    let sb = Sandbox::new();
    let work = sb.work();
    git(&work, &["init", "-q", "."]);
    fs_err::write(
        work.join(".gitignore"),
        ".env\n.env.*\n!.env.example\noutput/\n",
    )
    .expect("ignore");
    fs_err::write(work.join("README.md"), "hello\n").expect("readme");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "clean"]);
    let clean = doctor(&sb).await;
    assert_eq!(clean.code, Some(0), "{}\n{}", clean.stdout, clean.stderr);

    fs_err::write(work.join("settings.py"), format!("FAL = \"{FAL_KEY}\"\n")).expect("leak");
    git(&work, &["add", "settings.py"]);
    git(&work, &["commit", "-q", "-m", "oops"]);
    let committed = doctor(&sb).await;
    assert_eq!(committed.code, Some(7));
    assert!(
        finding(&committed, "doctor.tracked_credential")
            .is_some_and(|f| f.starts_with("fail settings.py:1: a fal_key"))
    );
    assert!(
        leaks_in(committed.stdout.as_bytes(), FAL_KEY).is_empty(),
        "doctor never shows the key"
    );
    git(&work, &["rm", "-q", "settings.py"]);
    git(&work, &["commit", "-q", "-m", "remove"]);
    assert_eq!(
        doctor(&sb).await.code,
        Some(0),
        "the working tree is clean again"
    );
    let history = sb.run(&["--json", "doctor", "--history"]).await;
    assert!(
        finding(&history, "doctor.history_credential")
            .is_some_and(|f| f.starts_with("fail commit")),
        "{}",
        history.stdout
    );

    fs_err::write(work.join(".gitignore"), "output/\n").expect("ignore");
    fs_err::write(work.join(".env"), "LOG=1\n").expect("env");
    fs_err::set_permissions(work.join(".env"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let env = doctor(&sb).await;
    assert!(finding(&env, "doctor.env_not_ignored").is_some_and(|f| f.starts_with("fail")));
    assert!(finding(&env, "doctor.env_permissions").is_some_and(|f| f.contains("0644")));

    fs_err::write(work.join(".gitignore"), ".env\n.env.*\n!.env.example\n").expect("ignore");
    fs_err::remove_file(work.join(".env")).expect("rm");
    fs_err::write(work.join(".env.dev"), format!("FAL_KEY={FAL_KEY}\n")).expect("dev");
    fs_err::write(work.join(".env.prod"), format!("FAL_KEY={FAL_KEY}\n")).expect("prod");
    for name in [".env.dev", ".env.prod"] {
        fs_err::set_permissions(work.join(name), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
    let shared = doctor(&sb).await;
    assert!(
        finding(&shared, "doctor.shared_key").is_some_and(|f| f.starts_with("fail")),
        "{}",
        shared.stdout
    );
    assert!(leaks_in(shared.stdout.as_bytes(), FAL_KEY).is_empty());

    let fingerprint = sb.run(&["--json", "keys", "status"]).await.json()["keys"][0]["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned();
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 200);
    fs_err::write(
        sb.state().join("keys.json"),
        serde_json::json!({"first_seen": {fingerprint: old.to_string()}}).to_string(),
    )
    .expect("ages");
    let aged = doctor(&sb).await;
    assert!(
        finding(&aged, "doctor.key_age")
            .is_some_and(|f| f.starts_with("warn") && f.contains("200 days")),
        "{}",
        aged.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_shows_ffmpeg_and_ffprobe_or_warns_they_are_missing() {
    let mut sb = Sandbox::new();
    let found = doctor(&sb).await;
    let media: Vec<(String, String)> = found.json()["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["code"] == "doctor.media_tools")
        .map(|c| {
            (
                c["level"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(media.len(), 2, "{media:?}");
    assert!(
        media[0].0 == "pass" && media[0].1.contains("ffmpeg version"),
        "{media:?}"
    );
    assert!(
        media[1].0 == "pass" && media[1].1.contains("ffprobe version"),
        "{media:?}"
    );
    let empty = sb.root().join("no-tools");
    fs_err::create_dir_all(&empty).expect("dir");
    sb.set_env("PATH", &empty.display().to_string());
    let missing = doctor(&sb).await;
    assert_eq!(missing.code, Some(0), "a warning, not a failure");
    let warned = finding(&missing, "doctor.media_tools").expect("a warning");
    assert!(
        warned.starts_with("warn ") && warned.contains("not found on PATH"),
        "{warned}"
    );
}
