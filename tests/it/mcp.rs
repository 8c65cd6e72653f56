//! `acgs mcp`, the real binary, with rmcp's client: over stdio (the way desktop clients launch
//! it) and over HTTP with and without the bearer token. The tool behaviour itself is tested in
//! `crates/acgs-mcp/tests`; these show the command wires it up and keeps its promises.

use std::process::Stdio;
use std::time::Duration;

use acgs_e2e::Sandbox;
use acgs_testkit::canary::{FAL_KEY, leaks_in};
use acgs_testkit::fal::FakeFal;
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use super::{ENDPOINT, audit_lines, sandbox_for};

/// A sandbox whose user file allows `work/inputs`, an allowance of one dollar, and the fake.
async fn sandbox() -> (FakeFal, Sandbox) {
    let fake = FakeFal::builder(ENDPOINT)
        .queued(1)
        .in_progress(1)
        .start()
        .await;
    let mut sb = sandbox_for(&fake);
    // acgs mcp takes configuration from the user file only.
    sb.remove_env("ACGS_PROVIDERS__FAL__QUEUE_URL")
        .remove_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK");
    let inputs = sb.work().join("inputs");
    fs_err::create_dir_all(&inputs).expect("inputs");
    sb.user_config(&format!(
        "[default.network]\nallow_http_loopback = true\n[default.providers.fal]\nqueue_url = \"{}\"\n[default.mcp]\nsession_limit = \"1.00\"\nallowed_input_roots = [\"{}\"]\n",
        fake.uri(),
        inputs.display()
    ));
    (fake, sb)
}

fn args(value: Value) -> rmcp::model::JsonObject {
    match value {
        Value::Object(map) => map,
        _ => panic!("arguments are an object"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_stdio_an_agent_estimates_generates_and_is_audited_as_mcp() {
    let (fake, sb) = sandbox().await;
    let command = sb.command(&["mcp"]);
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .expect("acgs mcp starts");
    let client = ().serve(transport).await.expect("handshake");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), 8);
    let estimate = client
        .call_tool(CallToolRequestParams::new("estimate").with_arguments(args(
            json!({"model": "flux_dev", "prompt": "a harbour at dawn"}),
        )))
        .await
        .expect("estimate");
    let worst = estimate.structured_content.expect("doc")["worst_case_usd"].clone();
    let result = client
        .call_tool(CallToolRequestParams::new("generate").with_arguments(args(
            json!({"model": "flux_dev", "prompt": "a harbour at dawn", "max_cost_usd": worst}),
        )))
        .await
        .expect("generate");
    let doc = result.structured_content.expect("doc");
    let path = doc["outputs"][0]["path"].as_str().expect("path").to_owned();
    assert!(fs_err::read(&path).expect("file").starts_with(b"\x89PNG"));
    assert_eq!(fake.submits().await, 1);
    client.cancel().await.expect("client leaves");
    let mut lines = tokio::io::BufReader::new(stderr.expect("stderr")).lines();
    let mut stderr_text = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        stderr_text.push_str(&line);
        stderr_text.push('\n');
    }
    let session = stderr_text
        .split("session ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the session id is printed on stderr")
        .to_owned();
    assert!(
        leaks_in(stderr_text.as_bytes(), FAL_KEY).is_empty(),
        "{stderr_text}"
    );
    let audit = audit_lines(&sb);
    let entry = audit
        .iter()
        .find(|e| e["outcome"] == "success")
        .expect("audited");
    assert_eq!(entry["origin"], "mcp");
    assert_eq!(entry["session"], session.as_str());
    let tail = sb
        .run(&["--json", "audit", "tail", "--session", &session])
        .await
        .json();
    assert_eq!(tail["entries"].as_array().map(Vec::len), Some(1), "{tail}");
}

/// Start `acgs mcp --http 127.0.0.1:0` and return the child and its URL.
async fn http_server(sb: &Sandbox) -> (tokio::process::Child, String) {
    let mut child = sb
        .command(&["mcp", "--http", "127.0.0.1:0"])
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            if let Some(url) = line.split("listening on ").nth(1) {
                return url.trim().to_owned();
            }
        }
        panic!("the server stopped before listening")
    })
    .await
    .expect("listening in time");
    (child, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_only_the_token_gets_in() {
    let (fake, sb) = sandbox().await;
    let refused = sb.run(&["mcp", "--http", "127.0.0.1:0"]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("mcp.no_token"),
        "{}",
        refused.stderr
    );
    let created = sb.run(&["mcp", "token"]).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let token = created.stdout.trim().to_owned();
    assert!(token.starts_with("acgs_mcp_"), "{token}");
    let (mut child, url) = http_server(&sb).await;
    // Plain HTTP to loopback; reqwest is built without a default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[expect(
        clippy::disallowed_methods,
        reason = "a probe of acgs's own server, not a provider call"
    )]
    let http = reqwest::Client::new();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"}}});
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(&*format!("Bearer {token}x")),
        Some(&*token),
    ] {
        let mut request = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("answered");
        assert_eq!(response.status(), 401, "{auth:?}");
        assert!(response.headers().contains_key("www-authenticate"));
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(token.clone()),
    );
    let client = ().serve(transport).await.expect("handshake with the token");
    let spend = client
        .call_tool(CallToolRequestParams::new("spend_today").with_arguments(args(json!({}))))
        .await
        .expect("spend_today");
    let doc = spend.structured_content.expect("doc");
    assert_eq!(doc["session_limit_usd"], "1.00");
    let result = client
        .call_tool(CallToolRequestParams::new("generate").with_arguments(args(
            json!({"model": "flux_dev", "prompt": "a lighthouse", "max_cost_usd": "1.00"}),
        )))
        .await
        .expect("generate");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(fake.submits().await, 1);
    client.cancel().await.expect("client leaves");
    child.start_kill().expect("stop");
    let _ = child.wait().await;
    let saved = fs_err::read_to_string(sb.state().join("mcp-token.sha256")).expect("digest");
    assert!(!saved.contains(&token[9..]), "only the digest is stored");
    for (path, bytes) in sb.all_files() {
        assert!(leaks_in(&bytes, FAL_KEY).is_empty(), "{}", path.display());
        assert!(leaks_in(&bytes, &token).is_empty(), "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_loopback_bind_needs_the_user_s_consent() {
    let (_fake, sb) = sandbox().await;
    assert_eq!(sb.run(&["mcp", "token"]).await.code, Some(0));
    let refused = sb.run(&["mcp", "--http", "0.0.0.0:0"]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("mcp.remote_bind"),
        "{}",
        refused.stderr
    );
    let project = sb.work().join("acgs.toml");
    fs_err::write(&project, "[default.mcp]\nallow_remote = true\n").expect("project file");
    let still = sb.run(&["mcp", "--http", "0.0.0.0:0"]).await;
    assert_eq!(still.code, Some(2), "{}", still.stderr);
    assert!(
        still.stderr.contains("config.untrusted_key"),
        "a project file cannot allow it: {}",
        still.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_from_the_client_s_environment_or_config_flag_is_refused() {
    let (fake, mut sb) = sandbox().await;
    sb.set_env("ACGS_MCP__SESSION_LIMIT", "1000");
    let refused = sb.run(&["mcp"]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("mcp.config_outside_user_file")
            && refused.stderr.contains("ACGS_MCP__SESSION_LIMIT"),
        "{}",
        refused.stderr
    );
    sb.remove_env("ACGS_MCP__SESSION_LIMIT");
    sb.work_file("other.toml", "[default.mcp]\nsession_limit = \"1000\"\n");
    let refused = sb.run(&["--config", "other.toml", "mcp"]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("--config"), "{}", refused.stderr);
    assert_eq!(fake.submits().await, 0);
}
