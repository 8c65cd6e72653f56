//! What acgs tells about what it did: `acgs runs` (history, listed, filtered and shown) and
//! `-v` (each request it sent).

use crate::{ENDPOINT, FakeFal, Outcome, ok, sandbox_for};

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_listed_filtered_and_shown() {
    let fake = FakeFal::builder(ENDPOINT)
        .outcome(Outcome::Images)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let empty = ok(&sb.run(&["--json", "runs"]).await);
    assert_eq!(empty["runs"], serde_json::json!([]), "no runs yet");
    let first = ok(&sb
        .run(&["--json", "image", "a fox in the snow", "--yes"])
        .await);
    let second = ok(&sb.run(&["--json", "image", "a heron", "--yes"]).await);
    let listed = ok(&sb.run(&["--json", "runs"]).await);
    let runs = listed["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], second["run_id"], "newest first");
    assert_eq!(runs[1]["prompt"], "a fox in the snow");
    assert_eq!(runs[1]["status"], "done");
    assert_eq!(runs[1]["models"], serde_json::json!(["flux_dev"]));
    assert_eq!(runs[1]["files"], 1);
    assert_eq!(runs[1]["cost"], first["actual"], "{first}");
    let limited = ok(&sb.run(&["--json", "runs", "-n", "1"]).await);
    assert_eq!(limited["runs"].as_array().map(Vec::len), Some(1));
    for filter in [
        &["--status", "failed"][..],
        &["--model", "flux_schnell"][..],
        &["--since", "2999-01-01"][..],
    ] {
        let args = [&["--json", "runs"][..], filter].concat();
        let none = ok(&sb.run(&args).await);
        assert_eq!(none["runs"], serde_json::json!([]), "{filter:?}");
    }
    let matching = ok(&sb
        .run(&["--json", "runs", "--model", "flux_dev", "--status", "done"])
        .await);
    assert_eq!(matching["runs"].as_array().map(Vec::len), Some(2));

    let run_id = first["run_id"].as_str().expect("id");
    let shown = ok(&sb.run(&["--json", "runs", "show", run_id]).await);
    assert_eq!(shown["prompt"], "a fox in the snow");
    assert_eq!(
        shown["steps"][0]["reservation"], "settled",
        "the ledger's word"
    );
    let file = shown["steps"][0]["outputs"][0]["path"]
        .as_str()
        .expect("path");
    assert!(std::path::Path::new(file).is_file(), "{file}");
    let text = sb.run(&["runs"]).await;
    assert!(
        text.stdout.contains(run_id) && text.stdout.contains("a fox in the snow"),
        "{}",
        text.stdout
    );

    // A run folder whose manifest was replaced by garbage is left out, not an error.
    let folder = std::path::Path::new(file).parent().expect("folder");
    fs_err::write(folder.join("manifest.json"), "\u{1b}[31mnot json").expect("forge");
    let after = ok(&sb.run(&["--json", "runs"]).await);
    assert_eq!(after["runs"].as_array().map(Vec::len), Some(1));
    let gone = sb.run(&["runs", "show", run_id]).await;
    assert_eq!(gone.code, Some(2), "{}", gone.stderr);
    assert!(!gone.stderr.contains('\u{1b}'), "{}", gone.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_logs_each_request_with_status_and_latency() {
    let fake = FakeFal::builder(ENDPOINT)
        .outcome(Outcome::Images)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let quiet = sb.run(&["image", "a fox", "--yes"]).await;
    assert!(!quiet.stderr.contains("acgs::http"), "{}", quiet.stderr);
    let loud = sb.run(&["-v", "image", "a fox", "--yes"]).await;
    assert_eq!(loud.code, Some(0), "{}", loud.stderr);
    let requests: Vec<&str> = loud
        .stderr
        .lines()
        .filter(|l| l.contains("acgs::http: request"))
        .collect();
    assert!(
        requests.iter().any(|l| l.contains("method=POST")
            && l.contains(&format!("url={}/{ENDPOINT}", fake.uri()))
            && l.contains("status=200")
            && l.contains("latency_ms=")),
        "{}",
        loud.stderr
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains("method=GET") && l.contains("/requests/")),
        "status polls are logged too: {requests:?}"
    );
    assert!(
        acgs_testkit::canary::leaks_in(loud.stderr.as_bytes(), acgs_testkit::canary::FAL_KEY)
            .is_empty()
    );
}
