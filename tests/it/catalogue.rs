//! Any fal endpoint, guarded: `models search` and `models add` against the fake platform API,
//! then runs of the added model (single command and pipeline step); hostile schemas refused
//! with nothing written.

use acgs_e2e::Sandbox;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome};
use acgs_testkit::fal_platform::{self as platform, Endpoint, FakeFalPlatform};
use acgs_testkit::media::png;
use serde_json::Value;

use super::ok;

const ADDED: &str = "fal-ai/ltx-2/image-to-video";

fn endpoint(id: &str, category: &str, input: Value, price: Option<(&str, f64)>) -> Endpoint {
    Endpoint {
        id: id.into(),
        category: category.into(),
        name: format!("Model {id}"),
        openapi: platform::openapi(id, category, input, platform::video_output_schema()),
        price: price.map(|(u, p)| (u.to_owned(), p)),
    }
}

async fn platform_fake() -> FakeFalPlatform {
    let good = platform::image_to_video_schema;
    FakeFalPlatform::start(vec![
        endpoint(ADDED, "image-to-video", good(), Some(("second", 0.04))),
        endpoint("fal-ai/huge/model", "text-to-image", platform::huge_schema(), Some(("image", 0.01))),
        endpoint("fal-ai/deep/model", "text-to-image", platform::deeply_nested_schema(), Some(("image", 0.01))),
        endpoint("fal-ai/prompt-url/model", "text-to-image", platform::prompt_named_like_url_schema(), Some(("image", 0.01))),
        endpoint("fal-ai/gpu/model", "image-to-video", good(), Some(("gpu_seconds", 0.0005))),
        Endpoint {
            openapi: serde_json::json!({"error": {"code": "expansion_failed", "message": "schema unavailable"}}),
            ..endpoint("fal-ai/broken/model", "image-to-video", good(), Some(("second", 0.04)))
        },
    ])
    .await
}

fn sandbox(platform: &FakeFalPlatform, queue: &FakeFal) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__API_URL", &platform.uri())
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &queue.uri())
        .set_env("ACGS_PROVIDERS__FAL__REST_URL", &queue.uri());
    sb.user_config("# mine\n[default]\nallow_safety_overrides = true\n");
    sb
}

async fn submitted_bodies(fake: &FakeFal) -> Vec<Value> {
    fake.requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == format!("/{ADDED}"))
        .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_added_endpoint_runs_guarded_as_a_command_and_a_pipeline_step() {
    let platform = platform_fake().await;
    let queue = FakeFal::builder(ADDED)
        .outcome(Outcome::Video)
        .start()
        .await;
    let sb = sandbox(&platform, &queue);
    let found = ok(&sb
        .run(&[
            "--json",
            "models",
            "search",
            "image to video",
            "--limit",
            "1",
        ])
        .await);
    assert_eq!(found["models"].as_array().map(Vec::len), Some(1), "{found}");
    let more = ok(&sb
        .run(&["--json", "models", "search", "image to video"])
        .await);
    assert_eq!(
        more["models"].as_array().map(Vec::len),
        Some(3),
        "every match, over two pages: {more}"
    );

    let added = ok(&sb
        .run(&[
            "--json",
            "models",
            "add",
            &format!("fal:{ADDED}"),
            "--as",
            "ltx2",
        ])
        .await);
    assert_eq!(added["added"]["task"], "image_to_video");
    let shown = ok(&sb.run(&["--json", "models", "show", "ltx2"]).await);
    let params = &shown["model"]["params"];
    assert_eq!(params["prompt"]["kind"], "text");
    assert_eq!(params["image_url"]["kind"], "media");
    assert_eq!(params["duration"]["kind"], "priced");
    assert_eq!(params["enable_safety_checker"]["kind"], "safety");
    assert_eq!(params["num_inference_steps"]["max"], 50.0);
    let price = &shown["model"]["pricing"];
    // fal lists one rate, and `resolution` may change it: the estimate keeps the margin.
    assert_eq!(
        (price["rate"].as_str(), price["verified"].as_bool()),
        (Some("0.04"), Some(false))
    );
    let config = fs_err::read_to_string(sb.root().join("config/acgs/config.toml")).expect("config");
    assert!(
        config.contains("# mine") && config.contains("[default.models.ltx2]"),
        "{config}"
    );
    let refreshed = ok(&sb.run(&["--json", "models", "--refresh-prices"]).await);
    let row = refreshed["refreshed"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["model"] == "ltx2").cloned())
        .expect("the added entry is refreshed too");
    assert_eq!(row["new"].as_str(), Some("0.04"), "{row}");
    assert!(
        row["note"]
            .as_str()
            .is_some_and(|n| n.contains("resolution")),
        "kept unverified, naming what may move the rate: {row}"
    );

    fs_err::write(sb.work().join("fox.png"), png(1280, 720, 300_000)).expect("input");
    let video = [
        "--json",
        "video",
        "a fox runs",
        "--image",
        "fox.png",
        "--model",
        "ltx2",
    ];
    let plan = ok(&sb.run(&[&video[..], &["--dry-run"]].concat()).await);
    assert_eq!(
        plan["estimate"]["amount"], "0.48",
        "6 s × $0.04 × 2, the margin of a rate resolution may move: {plan}"
    );

    let off = sb
        .run(
            &[
                &video[..],
                &["--param", "enable_safety_checker=false", "--yes"],
            ]
            .concat(),
        )
        .await;
    assert_eq!(
        off.code,
        Some(2),
        "even with allow_safety_overrides: {}",
        off.stderr
    );
    let leaked = format!("a fox runs {FAL_KEY}");
    let guarded = sb
        .run(&[
            "video", &leaked, "--image", "fox.png", "--model", "ltx2", "--yes",
        ])
        .await;
    assert_eq!(guarded.code, Some(3), "{}", guarded.stderr);
    assert!(
        submitted_bodies(&queue).await.is_empty(),
        "nothing sent before the run"
    );

    let run = ok(&sb.run(&[&video[..], &["--yes"]].concat()).await);
    assert_eq!(
        (run["estimate"].as_str(), run["actual"].as_str()),
        (Some("0.48"), Some("0.24"))
    );
    let bodies = submitted_bodies(&queue).await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["enable_safety_checker"], true);
    assert_eq!(bodies[0]["prompt"], "a fox runs");
    assert!(
        bodies[0]["image_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http")),
        "{}",
        bodies[0]
    );
    assert_eq!(queue.uploads().len(), 1, "the still was uploaded");

    sb.work_file(
        "added.yaml",
        "version: 1\ninputs:\n  still: { type: image }\nsteps:\n  - id: clip\n    model: ltx2\n    image: \"{{ inputs.still }}\"\n    prompt: \"the fox in motion\"\n    params: { duration: 8 }\n",
    );
    let piped = ok(&sb
        .run(&[
            "--json",
            "run",
            "added.yaml",
            "--input",
            "still=fox.png",
            "--yes",
        ])
        .await);
    assert_eq!(piped["actual"], "0.32", "8 s × $0.04: {piped}");
    assert_eq!(
        piped["steps"][0]["outputs"].as_array().map(Vec::len),
        Some(1)
    );
    let bodies = submitted_bodies(&queue).await;
    assert_eq!((bodies.len(), bodies[1]["duration"].as_u64()), (2, Some(8)));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_or_unmappable_schemas_are_refused_with_nothing_written() {
    let platform = platform_fake().await;
    let queue = FakeFal::builder(ADDED).start().await;
    let sb = sandbox(&platform, &queue);
    let config = sb.root().join("config/acgs/config.toml");
    let before = fs_err::read_to_string(&config).expect("config");
    for (id, says) in [
        ("fal-ai/huge/model", "input fields"),
        ("fal-ai/deep/model", "nested"),
        ("fal-ai/prompt-url/model", "described as a prompt"),
        ("fal-ai/gpu/model", "gpu_seconds"),
        ("fal-ai/broken/model", "schema unavailable"),
    ] {
        let run = sb.run(&["models", "add", &format!("fal:{id}")]).await;
        assert_eq!(run.code, Some(2), "{id}: {}", run.stderr);
        assert!(
            run.stderr.contains("catalog.unmappable") && run.stderr.contains(says),
            "{id}: {}",
            run.stderr
        );
    }
    for bad in ["fal:../x", "fal:owner", "flux", "fal:a/b?c=d"] {
        let run = sb.run(&["models", "add", bad]).await;
        assert_eq!(run.code, Some(2), "{bad}: {}", run.stderr);
    }
    let marked = sb
        .run(&[
            "models",
            "add",
            "fal:fal-ai/prompt-url/model",
            "--mark",
            "prompt_url=text",
        ])
        .await;
    assert_eq!(
        marked.code,
        Some(2),
        "a required text field named otherwise: {}",
        marked.stderr
    );
    assert_eq!(
        fs_err::read_to_string(&config).expect("config"),
        before,
        "nothing written"
    );
    sb.user_config("[prod.models.ltx9]\nname = \"mine in prod\"\n");
    let elsewhere = sb
        .run(&[
            "models",
            "add",
            "fal:fal-ai/ltx-2/image-to-video",
            "--as",
            "ltx9",
        ])
        .await;
    assert!(
        elsewhere.code == Some(2) && elsewhere.stderr.contains("already"),
        "a key another profile uses: {}",
        elsewhere.stderr
    );
    let taken = sb
        .run(&[
            "models",
            "add",
            "fal:fal-ai/ltx-2/image-to-video",
            "--as",
            "flux_dev",
        ])
        .await;
    assert!(
        taken.code == Some(2) && taken.stderr.contains("already"),
        "{}",
        taken.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_reports_drift_per_model_from_fal_billing_events() {
    let platform = platform_fake().await;
    let queue = FakeFal::builder("fal-ai/flux/dev").start().await;
    let mut sb = sandbox(&platform, &queue);
    let run = ok(&sb.run(&["--json", "image", "a fox", "--yes"]).await);
    let rows = super::ledger_rows(&sb).await;
    let Some(acgs_core::job::JobRef::Queue { request_id }) =
        rows[0].job.as_ref().map(|j| j.job.clone())
    else {
        panic!("a queue job: {rows:?}");
    };
    let settled = run["actual"].as_str().expect("settled").to_owned();
    let today = jiff::Zoned::now().date().to_string();
    let denied = sb.run(&["spend", "reconcile", "--since", &today]).await;
    assert_eq!(
        denied.code,
        Some(5),
        "an ordinary key gets 403: {}",
        denied.stderr
    );
    // fal billed a cent more than the ledger settled.
    let settled_micros = acgs_core::Usd::parse(&settled).expect("usd").micros();
    platform.bill(
        &request_id,
        "fal-ai/flux/dev",
        2.0,
        0.025,
        settled_micros + 10_000,
    );
    sb.set_env("FAL_ADMIN_KEY", platform::ADMIN_KEY);
    let report = ok(&sb
        .run(&["--json", "spend", "reconcile", "--since", &today])
        .await);
    let model = &report["models"][0];
    assert_eq!(
        (model["model"].as_str(), model["requests"].as_u64()),
        (Some("flux_dev"), Some(1)),
        "{report}"
    );
    assert_eq!(model["drift"], "+$0.01", "{report}");
    let audit = fs_err::read_to_string(sb.state().join("audit.jsonl")).expect("audit");
    let entry = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|e| e["operation"] == "spend.reconcile")
        .expect("a reconcile entry");
    assert_eq!(
        (entry["code"].as_str(), entry["model"].as_str()),
        (Some("spend.drift"), Some("flux_dev"))
    );
    assert!(
        !audit.contains(platform::ADMIN_KEY),
        "the admin key is never written"
    );
    let asked = platform.requests().await;
    assert!(
        asked
            .iter()
            .any(|r| r.contains(&format!("request_id={request_id}"))),
        "{asked:?}"
    );
}
