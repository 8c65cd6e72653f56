//! The MCP server with a real MCP client (rmcp's client side) over an in-memory stream — the
//! codec of the stdio transport — in front of a suite with the real fal provider against the fake
//! fal server, a SQLite ledger and a real audit log. (`tests/it/mcp.rs` drives the `acgs mcp`
//! binary over stdio and HTTP.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::config::{Config, McpConfig};
use acgs_core::ledger::Ledger as _;
use acgs_core::redact::Redactor;
use acgs_engine::{Caller, KeyInfo, Suite};
use acgs_http::{HttpClient, NetworkPolicy};
use acgs_mcp::{AcgsMcp, Session, Settings};
use acgs_storage::audit::AuditLog;
use acgs_storage::ledger_sqlite::SqliteLedger;
use acgs_storage::runs::RunIndex;
use acgs_testkit::canary::{FAL_KEY, GEMINI_KEY};
use acgs_testkit::fal::{FakeFal, FakeFalBuilder, Outcome, SubmitFailure};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ProgressNotificationParam, Request,
};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt as _};
use secrecy::SecretString;
use serde_json::{Value, json};

/// A client that keeps every progress notification.
#[derive(Clone, Default)]
struct Client {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.progress.lock().expect("lock").push(params);
    }
}

/// How the client reaches the server.
#[derive(Debug, Clone, Copy)]
enum Transport {
    /// The stdio codec over an in-memory stream.
    Stdio,
    /// Streamable HTTP on loopback with the bearer token.
    Http,
}

struct World {
    dir: tempfile::TempDir,
    fake: FakeFal,
    ledger: Arc<SqliteLedger>,
    session: Arc<Session>,
    /// The allowed input folder.
    inputs: PathBuf,
    /// flux_dev's worst case for one image.
    worst: Usd,
}

impl World {
    async fn new(endpoint: &str, outcome: Outcome, mcp: impl FnOnce(&mut McpConfig, Usd)) -> Self {
        let fake = FakeFal::builder(endpoint)
            .queued(1)
            .in_progress(1)
            .outcome(outcome);
        Self::with(fake, mcp).await
    }

    async fn with(fake: FakeFalBuilder, mcp: impl FnOnce(&mut McpConfig, Usd)) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = fake.start().await;
        let inputs = dir.path().join("inputs");
        fs_err::create_dir_all(&inputs).expect("inputs");
        let mut config = Config {
            output_dir: dir.path().join("output"),
            ..Config::default()
        };
        config.network.allow_http_loopback = true;
        config
            .providers
            .set(acgs_core::ProviderId::Fal, "queue_url", fake.uri());
        config
            .providers
            .set(acgs_core::ProviderId::Fal, "rest_url", fake.uri());
        let ledger =
            Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite3")).expect("ledger"));
        let suite = suite(&config, dir.path(), ledger.clone());
        let worst = suite
            .plan(&acgs_engine::GenerationRequest {
                model: "flux_dev".into(),
                texts: [("prompt".to_owned(), "a kite".to_owned())].into(),
                ..Default::default()
            })
            .expect("plan")
            .quote
            .amount;
        let mut mcp_config = McpConfig {
            allowed_input_roots: vec![inputs.clone()],
            ..McpConfig::default()
        };
        mcp(&mut mcp_config, worst);
        let session = Session::start(
            &suite,
            Settings::from_config(&mcp_config).expect("settings"),
        );
        Self {
            dir,
            fake,
            ledger,
            session,
            inputs,
            worst,
        }
    }

    /// A client over `transport`.
    async fn connect_over(
        &self,
        transport: Transport,
    ) -> (RunningService<RoleClient, Client>, Client) {
        match transport {
            Transport::Stdio => self.connect().await,
            Transport::Http => self.connect_http().await,
        }
    }

    /// A client over streamable HTTP on loopback, with the bearer token.
    async fn connect_http(&self) -> (RunningService<RoleClient, Client>, Client) {
        // Plain HTTP to loopback; reqwest is built without a default crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token_file = self.dir.path().join("mcp-token.sha256");
        let token = acgs_mcp::token::create(&token_file).expect("token");
        let options = acgs_mcp::HttpOptions {
            addr: "127.0.0.1:0".parse().expect("addr"),
            token: acgs_mcp::token::load(&token_file).expect("digest"),
            shutdown: tokio_util::sync::CancellationToken::new(),
        };
        let (bound, serving) = acgs_mcp::serve_http(Arc::clone(&self.session), options)
            .await
            .expect("bound");
        tokio::spawn(serving);
        let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{bound}/mcp"))
            .auth_header(secrecy::ExposeSecret::expose_secret(&token).to_owned());
        let client = Client::default();
        let running = client
            .clone()
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("handshake");
        (running, client)
    }

    async fn connect(&self) -> (RunningService<RoleClient, Client>, Client) {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = AcgsMcp::new(Arc::clone(&self.session));
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        let client = Client::default();
        let running = client.clone().serve(client_io).await.expect("handshake");
        (running, client)
    }

    fn audit(&self) -> Vec<Value> {
        let text = fs_err::read_to_string(self.dir.path().join("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

fn suite(config: &Config, dir: &Path, ledger: Arc<SqliteLedger>) -> Suite {
    let redactor = Redactor::new();
    redactor.add_secret(FAL_KEY);
    let http = HttpClient::new(
        NetworkPolicy::from_config(&config.network),
        redactor.clone(),
    )
    .expect("http");
    let fal = acgs_providers_fal::FalProvider::new(
        http,
        &config.providers.urls(acgs_core::ProviderId::Fal),
        &SecretString::from(FAL_KEY),
    )
    .expect("fal");
    Suite::builder()
        .config(config.clone())
        .catalog(acgs_providers_fal::catalog().expect("catalogue"))
        .provider(Arc::new(fal), KeyInfo::default())
        .ledger(ledger)
        .audit(Arc::new(AuditLog::new(
            dir.join("audit.jsonl"),
            None,
            false,
            "tester".into(),
        )))
        .runs(RunIndex::new(dir.join("runs.jsonl")))
        .secrets(redactor)
        .caller(Caller::new("tester"))
        .build()
        .expect("suite")
}

async fn call(
    client: &RunningService<RoleClient, Client>,
    tool: &'static str,
    args: Value,
) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments are an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .expect("the call is answered")
}

/// The structured error code of a failed call.
fn error_code(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let doc = result.structured_content.as_ref().expect("structured");
    doc["error"]["code"].as_str().expect("code").to_owned()
}

fn ok(result: CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{result:?}");
    result.structured_content.expect("structured")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handshake_lists_every_tool_with_a_strict_object_schema() {
    let world = World::new("fal-ai/flux/dev", Outcome::Images, |_, _| {}).await;
    let (client, _) = world.connect().await;
    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("server info");
    assert_eq!(server.name, "acgs");
    assert!(info.capabilities.tools.is_some());
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let expected = [
        "list_models",
        "show_model",
        "estimate",
        "generate",
        "run_pipeline",
        "run_status",
        "resume",
        "spend_today",
    ];
    assert_eq!(names, expected.into_iter().collect());
    for tool in &tools {
        let schema = tool.input_schema.as_ref();
        assert_eq!(schema["type"], "object", "{}", tool.name);
        assert_eq!(schema["additionalProperties"], false, "{}", tool.name);
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 40),
            "{} says what it does",
            tool.name
        );
    }
    let generate = tools
        .iter()
        .find(|t| t.name == "generate")
        .expect("generate");
    let required = generate.input_schema["required"]
        .as_array()
        .expect("required");
    assert!(required.contains(&json!("max_cost_usd")), "{required:?}");
    let models = ok(call(&client, "list_models", json!({"task": "text_to_image"})).await);
    let keys: Vec<&str> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["model"].as_str().expect("key"))
        .collect();
    assert!(keys.contains(&"flux_dev"), "{keys:?}");
    let shown = ok(call(&client, "show_model", json!({"model": "flux_dev"})).await);
    assert_eq!(shown["model"]["endpoint"], "fal-ai/flux/dev");
}

#[tokio::test(flavor = "multi_thread")]
async fn estimate_then_generate_writes_files_reports_progress_and_is_audited() {
    for transport in [Transport::Stdio, Transport::Http] {
        estimate_then_generate(transport).await;
    }
}

async fn estimate_then_generate(transport: Transport) {
    let world = World::new("fal-ai/flux/dev", Outcome::Images, |_, _| {}).await;
    let (client, handler) = world.connect_over(transport).await;
    let estimate = ok(call(
        &client,
        "estimate",
        json!({"model": "flux_dev", "prompt": "a kite over the sea"}),
    )
    .await);
    assert_eq!(estimate["worst_case_usd"], json!(world.worst.to_string()));
    let result = call(
        &client,
        "generate",
        json!({"model": "flux_dev", "prompt": "a kite over the sea", "max_cost_usd": estimate["worst_case_usd"]}),
    )
    .await;
    let links: Vec<_> = result
        .content
        .iter()
        .filter_map(|c| match c {
            rmcp::model::ContentBlock::ResourceLink(link) => Some(link.clone()),
            _ => None,
        })
        .collect();
    let doc = ok(result);
    let output = &doc["outputs"][0];
    let path = PathBuf::from(output["path"].as_str().expect("path"));
    let bytes = fs_err::read(&path).expect("a real file");
    assert!(bytes.starts_with(b"\x89PNG"), "an image was stored");
    assert!(path.starts_with(world.dir.path().join("output")));
    assert_eq!(output["mime_type"], "image/png");
    assert_eq!(links.len(), 1);
    assert!(links[0].uri.starts_with("file:///"), "{}", links[0].uri);
    assert_eq!(links[0].mime_type.as_deref(), Some("image/png"));
    assert_eq!(doc["session"]["session_limit_usd"], "5.00");
    let progress = handler.progress.lock().expect("lock").clone();
    assert!(
        progress.iter().any(|p| p
            .message
            .as_deref()
            .is_some_and(|m| m.contains("queue position"))),
        "queue positions are reported: {progress:?}"
    );
    // Sent in order; a client may handle notifications concurrently, so compare sorted.
    let mut steps: Vec<f64> = progress.iter().map(|p| p.progress).collect();
    steps.sort_by(f64::total_cmp);
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "each notification has its own, larger value: {steps:?}"
    );
    let run_id = doc["run_id"].as_str().expect("run id");
    let status = ok(call(&client, "run_status", json!({"run_id": run_id})).await);
    assert_eq!(status["steps"][0]["status"], "done");
    assert_eq!(status["steps"][0]["reservation"], "settled");
    assert_eq!(status["resumable"], false);
    let spend = ok(call(&client, "spend_today", json!({})).await);
    assert_eq!(spend["session_id"], world.session.id());
    assert_eq!(spend["session_reserved_usd"], "0.00");
    assert_eq!(spend["session_spent_usd"], doc["cost_usd"]);
    let audit = world.audit();
    let entry = audit
        .iter()
        .find(|e| e["run_id"] == run_id && e["outcome"] == "success")
        .expect("audited");
    assert_eq!(entry["origin"], "mcp");
    assert_eq!(entry["session"], world.session.id());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_from_an_allowed_folder_runs_and_one_outside_is_refused() {
    for transport in [Transport::Stdio, Transport::Http] {
        pipeline_from_allowed_folder(transport).await;
    }
}

async fn pipeline_from_allowed_folder(transport: Transport) {
    let world = World::new("fal-ai/flux/dev", Outcome::Images, |_, _| {}).await;
    let (client, _) = world.connect_over(transport).await;
    let yaml = "version: 1\ninputs:\n  subject: {type: text}\nsteps:\n  - id: day\n    model: flux_dev\n    prompt: \"{{ inputs.subject }} by day\"\n  - id: night\n    model: flux_dev\n    prompt: \"{{ inputs.subject }} by night\"\n";
    let inside = world.inputs.join("two.yaml");
    fs_err::write(&inside, yaml).expect("pipeline");
    let outside = world.dir.path().join("two.yaml");
    fs_err::write(&outside, yaml).expect("pipeline");
    let estimate = ok(call(
        &client,
        "estimate",
        json!({"pipeline": inside, "inputs": {"subject": "a lighthouse"}}),
    )
    .await);
    let total = estimate["worst_case_usd"].clone();
    let refused = call(
        &client,
        "run_pipeline",
        json!({"pipeline": outside, "inputs": {"subject": "a lighthouse"}, "max_cost_usd": total}),
    )
    .await;
    assert_eq!(error_code(&refused), "input.outside_roots");
    let doc = ok(call(
        &client,
        "run_pipeline",
        json!({"pipeline": inside, "inputs": {"subject": "a lighthouse"}, "max_cost_usd": total}),
    )
    .await);
    assert_eq!(doc["failed_steps"], 0);
    for step in doc["steps"].as_array().expect("steps") {
        let path = step["outputs"][0]["path"].as_str().expect("path");
        assert!(fs_err::read(path).expect("file").starts_with(b"\x89PNG"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_call_cancels_the_job_and_leaves_nothing_held() {
    for transport in [Transport::Stdio, Transport::Http] {
        cancelled_call(transport).await;
    }
}

async fn cancelled_call(transport: Transport) {
    let world = World::new("fal-ai/flux/dev", Outcome::KeepRunning, |_, _| {}).await;
    let (client, _) = world.connect_over(transport).await;
    let Value::Object(args) =
        json!({"model": "flux_dev", "prompt": "a slow kite", "max_cost_usd": "1.00"})
    else {
        unreachable!()
    };
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(
                CallToolRequestParams::new("generate").with_arguments(args),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("sent");
    for _ in 0..200 {
        if world.fake.submits().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(world.fake.submits().await, 1, "the job was submitted");
    handle
        .cancel(Some("the user changed their mind".into()))
        .await
        .expect("cancelled");
    let mut cancelled = false;
    for _ in 0..200 {
        let audit = world.audit();
        if audit.iter().any(|e| e["outcome"] == "cancelled") {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        cancelled,
        "the cancellation is audited: {:?}",
        world.audit()
    );
    let queue = world.fake.queue_requests().await;
    assert!(
        queue
            .iter()
            .any(|r| r.starts_with("PUT") && r.ends_with("/cancel")),
        "the provider job was cancelled: {queue:?}"
    );
    let rows = world.ledger.reservations(None).await.expect("rows");
    assert!(
        rows.iter()
            .all(|r| !matches!(r.state, acgs_core::ledger::ReservationState::Held)),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_parallel_generates_never_pass_the_allowance() {
    let world = World::new("fal-ai/flux/dev", Outcome::Images, |mcp, worst| {
        mcp.session_limit = Usd::from_micros(worst.micros() * 5);
    })
    .await;
    let (client, _) = world.connect().await;
    let client = Arc::new(client);
    let mut calls = Vec::new();
    for i in 0..16 {
        let client = Arc::clone(&client);
        calls.push(tokio::spawn(async move {
            call(
                &client,
                "generate",
                json!({"model": "flux_dev", "prompt": format!("kite number {i}"), "max_cost_usd": "1.00"}),
            )
            .await
        }));
    }
    let mut succeeded = 0;
    for handle in calls {
        let result = handle.await.expect("task");
        if result.is_error == Some(true) {
            assert_eq!(error_code(&result), "budget.scope_limit");
        } else {
            succeeded += 1;
        }
    }
    assert!((3..=5).contains(&succeeded), "{succeeded} succeeded");
    let scope = world
        .ledger
        .scope_spend(&format!("mcp-session:{}", world.session.id()))
        .await
        .expect("scope");
    assert_eq!(scope.reserved, Usd::ZERO, "nothing is left reserved");
    assert!(
        scope.total() <= Usd::from_micros(world.worst.micros() * 5),
        "{scope:?}"
    );
    assert_eq!(world.fake.submits().await, succeeded);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_arguments_are_structured_errors_and_spend_nothing() {
    let world = World::new("fal-ai/flux-kontext/dev", Outcome::Images, |_, _| {}).await;
    let (client, _) = world.connect().await;
    let secret_dir = world.dir.path().join("secret");
    fs_err::create_dir_all(&secret_dir).expect("dir");
    let secret = secret_dir.join("photo.png");
    fs_err::write(&secret, acgs_testkit::media::PNG_1X1).expect("png");
    let allowed = world.inputs.join("photo.png");
    fs_err::write(&allowed, acgs_testkit::media::PNG_1X1).expect("png");
    let link = world.inputs.join("link.png");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    let dotdot = world.inputs.join("..").join("secret").join("photo.png");
    let kontext = |image: &Path| json!({"model": "kontext", "prompt": "make it blue", "files": {"image": image}, "max_cost_usd": "1.00"});
    let flux =
        |prompt: &str| json!({"model": "flux_dev", "prompt": prompt, "max_cost_usd": "1.00"});
    let cases = [
        ("generate", kontext(&secret), "input.outside_roots"),
        ("generate", kontext(&dotdot), "input.outside_roots"),
        ("generate", kontext(&link), "input.outside_roots"),
        (
            "generate",
            kontext(Path::new("/nonexistent/x.png")),
            "input.outside_roots",
        ),
        (
            "generate",
            json!({"model": "kontext", "prompt": "make it blue", "files": {"image": allowed}, "max_cost_usd": "0.001"}),
            "budget.max_cost_below_estimate",
        ),
        (
            "generate",
            json!({"model": "flux_dev", "prompt": "a kite", "max_cost_usd": "1.00", "budget_override": true}),
            "mcp.invalid_arguments",
        ),
        (
            "generate",
            json!({"model": "flux_dev", "prompt": "a kite"}),
            "mcp.invalid_arguments",
        ),
        (
            "generate",
            flux(&"a".repeat(10 * 1024 * 1024)),
            "guard.too_long",
        ),
        (
            "generate",
            flux(&format!("use my key {GEMINI_KEY} please")),
            "guard.credential_in_text",
        ),
        (
            "generate",
            flux(&format!("the fal key is {FAL_KEY}")),
            "guard.credential_in_text",
        ),
        ("nonexistent_tool", json!({}), "mcp.unknown_tool"),
    ];
    for (tool, args, code) in cases {
        let result = call(&client, tool, args.clone()).await;
        let text = serde_json::to_string(&result).expect("json");
        assert_eq!(
            error_code(&result),
            code,
            "{tool} {:.200}",
            args.to_string()
        );
        assert!(
            !text.contains(&FAL_KEY[..20]),
            "no key crosses the boundary"
        );
        assert!(
            !text.contains(&GEMINI_KEY[..20]),
            "no key crosses the boundary"
        );
        assert!(
            !text.contains("secret/photo"),
            "the outside path is not echoed: {text:.300}"
        );
    }
    assert_eq!(world.fake.submits().await, 0, "nothing was sent");
    assert!(
        world
            .ledger
            .reservations(None)
            .await
            .expect("rows")
            .is_empty(),
        "nothing was reserved"
    );
    let allowed_call = call(&client, "generate", kontext(&allowed)).await;
    let doc = ok(allowed_call);
    assert_eq!(
        doc["model"], "kontext",
        "a file inside the allowed folder is sent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_above_confirm_above_is_refused_with_what_the_user_can_do() {
    let world = World::new("fal-ai/flux/dev", Outcome::Images, |mcp, worst| {
        mcp.confirm_above = Usd::from_micros(worst.micros() - 1);
    })
    .await;
    let (client, _) = world.connect().await;
    let result = call(
        &client,
        "generate",
        json!({"model": "flux_dev", "prompt": "a kite", "max_cost_usd": "1.00"}),
    )
    .await;
    assert_eq!(error_code(&result), "budget.confirmation_required");
    let hint = result.structured_content.expect("doc")["error"]["hint"].clone();
    assert!(
        hint.as_str().is_some_and(|h| h.contains("confirm_above")),
        "{hint}"
    );
    assert_eq!(world.fake.submits().await, 0);
    let audit = world.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["outcome"] == "refused" && e["origin"] == "mcp"),
        "the refusal is audited: {audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_echoes_the_key_gets_neither_its_body_nor_the_key_to_the_agent() {
    for failure in [None, Some(SubmitFailure::BadKey)] {
        let mut fake = FakeFal::builder("fal-ai/flux/dev")
            .queued(1)
            .in_progress(1)
            .echo_keys();
        if let Some(failure) = failure {
            fake = fake.submit_failure(failure);
        }
        let world = World::with(fake, |_, _| {}).await;
        let (client, handler) = world.connect().await;
        let result = call(
            &client,
            "generate",
            json!({"model": "flux_dev", "prompt": "a kite", "max_cost_usd": "1.00"}),
        )
        .await;
        if failure.is_some() {
            assert_eq!(error_code(&result), "provider.auth_failed", "{result:?}");
        }
        let mut seen = serde_json::to_string(&result).expect("json");
        for p in handler.progress.lock().expect("lock").iter() {
            seen.push_str(p.message.as_deref().unwrap_or_default());
        }
        let leaks = acgs_testkit::canary::leaks_in(seen.as_bytes(), FAL_KEY);
        assert!(leaks.is_empty(), "{leaks:?} in {seen:.400}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_may_feed_a_step_s_output_to_the_next_but_status_stays_in_the_session() {
    let world = World::new("fal-ai/flux-kontext/dev", Outcome::Images, |_, _| {}).await;
    let (client, _) = world.connect().await;
    let photo = world.inputs.join("photo.png");
    fs_err::write(&photo, acgs_testkit::media::PNG_1X1).expect("png");
    let yaml = "version: 1\ninputs:\n  photo: {type: image}\nsteps:\n  - id: blue\n    model: kontext\n    prompt: make it blue\n    image: \"{{ inputs.photo }}\"\n  - id: bluer\n    model: kontext\n    prompt: make it bluer\n    image: \"{{ steps.blue.image }}\"\n";
    let file = world.inputs.join("chain.yaml");
    fs_err::write(&file, yaml).expect("pipeline");
    let doc = ok(call(
        &client,
        "run_pipeline",
        json!({"pipeline": file, "inputs": {"photo": photo}, "max_cost_usd": "1.00"}),
    )
    .await);
    assert_eq!(doc["failed_steps"], 0, "{doc}");
    assert_eq!(
        world.fake.submits().await,
        2,
        "the second step read the first one's output"
    );
    let run_id = doc["run_id"].as_str().expect("run id");
    let status = ok(call(&client, "run_status", json!({"run_id": run_id})).await);
    assert_eq!(status["steps"].as_array().map(Vec::len), Some(2));
    for other in ["20261206T000000Z-abcdef", "../../etc"] {
        let refused = call(&client, "run_status", json!({"run_id": other})).await;
        assert_eq!(error_code(&refused), "mcp.run_not_in_session");
        let refused = call(
            &client,
            "resume",
            json!({"run_id": other, "max_cost_usd": "1.00"}),
        )
        .await;
        assert_eq!(error_code(&refused), "mcp.run_not_in_session");
    }
    let refusals = world
        .audit()
        .into_iter()
        .filter(|e| e["code"] == "mcp.run_not_in_session" && e["origin"] == "mcp")
        .count();
    assert_eq!(refusals, 4, "every refusal is audited");
}
