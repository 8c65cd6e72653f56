//! `acgs serve` through the real binary and a real HTTP client, against the fake fal: tokens,
//! isolation between users, idempotency, per-user daily budgets held by the ledger, the guard at
//! the door, size limits, events and the OpenAPI document.

use std::time::{Duration, Instant};

use acgs_e2e::Sandbox;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::FakeFal;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

use super::{ok, sandbox_for, signal};

/// `acgs serve user add NAME --daily DAILY` and a token for them.
async fn user_with_token(sb: &Sandbox, name: &str, daily: &str) -> String {
    ok(&sb
        .run(&["--json", "serve", "user", "add", name, "--daily", daily])
        .await);
    let created = ok(&sb
        .run(&["--json", "serve", "token", "create", "--user", name])
        .await);
    created["token"].as_str().expect("a token").to_owned()
}

/// Start `acgs serve --addr 127.0.0.1:0` and return the child and its base URL.
async fn server(sb: &Sandbox) -> (tokio::process::Child, String) {
    server_with(sb, &[]).await
}

/// [`server`] with more arguments.
async fn server_with(sb: &Sandbox, extra: &[&str]) -> (tokio::process::Child, String) {
    let mut args = vec![
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--max-upload-mib",
        "1",
    ];
    args.extend_from_slice(extra);
    let mut child = sb.command(&args).spawn().expect("starts");
    let url = listening(&mut child).await;
    (child, url)
}

/// The base URL a starting `acgs serve` prints.
async fn listening(child: &mut tokio::process::Child) -> String {
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stderr") {
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        panic!("the service stopped before listening")
    })
    .await
    .expect("listening in time");
    // Keep reading, so that the service never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    url
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn job_until_final(&self, token: &str, id: &str) -> Value {
        self.job_until_final_within(token, id, 60).await
    }

    async fn job_until_final_within(&self, token: &str, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, job) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/jobs/{id}"),
                    Some(token),
                    None,
                    None,
                )
                .await;
            assert_eq!(status, 200, "{job}");
            if ["done", "failed", "cancelled"].contains(&job["status"].as_str().unwrap_or_default())
            {
                return job;
            }
            assert!(Instant::now() < deadline, "the job never ended: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_reach_only_their_own_jobs_within_their_own_budgets() {
    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let sb = sandbox_for(&fake);
    let ada = user_with_token(&sb, "ada", "0.06").await;
    let bob = user_with_token(&sb, "bob", "1.00").await;
    let revoked = ok(&sb
        .run(&["--json", "serve", "token", "create", "--user", "bob"])
        .await);
    ok(&sb
        .run(&[
            "--json",
            "serve",
            "token",
            "revoke",
            revoked["id"].as_str().expect("id"),
        ])
        .await);
    let (child, base) = server(&sb).await;
    for file in ["server.sqlite3", "server.lock"] {
        let mode = super::mode(&sb.state().join(file));
        assert_eq!(mode & 0o077, 0, "{file} is the owner's only: {mode:o}");
    }
    // Plain HTTP to loopback; reqwest is built without a default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[expect(
        clippy::disallowed_methods,
        reason = "a client of acgs's own service, not a provider call"
    )]
    let http = reqwest::Client::new();
    let api = Api { http, base };
    let post = reqwest::Method::POST;
    let job = json!({"model": "flux_dev", "prompt": "a fox in snow"});

    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics");
    assert!(metrics.headers().contains_key("x-request-id"));
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(
        metrics.contains("acgs_jobs{state=\"queued\"} 0"),
        "{metrics}"
    );
    let (health, _) = api
        .call(reqwest::Method::GET, "/healthz", None, None, None)
        .await;
    assert_eq!(health, 200);
    let (doc_status, doc) = api
        .call(reqwest::Method::GET, "/v1/openapi.json", None, None, None)
        .await;
    assert!(
        doc_status == 200 && doc["paths"]["/v1/jobs"]["post"].is_object(),
        "{doc}"
    );
    for token in [
        None,
        Some("acgs_srv_0000"),
        Some("not-a-token"),
        revoked["token"].as_str(),
    ] {
        let (status, body) = api
            .call(post.clone(), "/v1/jobs", token, Some(job.clone()), None)
            .await;
        assert_eq!(status, 401, "{token:?}: {body}");
    }

    let (first, accepted) = api
        .call(
            post.clone(),
            "/v1/jobs",
            Some(&ada),
            Some(job.clone()),
            Some("k-1"),
        )
        .await;
    assert_eq!(
        (first, accepted["estimate"].as_str()),
        (202, Some("0.025")),
        "{accepted}"
    );
    let id = accepted["id"].as_str().expect("an id").to_owned();
    let (_, again) = api
        .call(
            post.clone(),
            "/v1/jobs",
            Some(&ada),
            Some(job.clone()),
            Some("k-1"),
        )
        .await;
    assert_eq!(again["id"], accepted["id"], "the same key is the same job");
    let (hidden, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}"),
            Some(&bob),
            None,
            None,
        )
        .await;
    assert_eq!(hidden, 404, "bob cannot see ada's job");
    let done = api.job_until_final(&ada, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["actual"].as_str()),
        (Some("done"), Some("0.025")),
        "{done}"
    );
    assert_eq!(done["outputs"].as_array().map(Vec::len), Some(1));
    let events = api
        .http
        .get(format!("{}/v1/jobs/{id}/events", api.base))
        .bearer_auth(&ada)
        .send()
        .await
        .expect("events");
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert!(
        events
            .text()
            .await
            .unwrap_or_default()
            .contains("event: done")
    );
    let name = done["outputs"][0].as_str().expect("a file name").to_owned();
    let file = format!("{}/v1/jobs/{id}/outputs/{name}", api.base);
    let fetched = api
        .http
        .get(&file)
        .bearer_auth(&ada)
        .send()
        .await
        .expect("the file");
    assert_eq!(fetched.status().as_u16(), 200);
    let bytes = fetched.bytes().await.expect("bytes");
    assert!(bytes.starts_with(b"\x89PNG"), "the image itself");
    let theirs = api
        .http
        .get(&file)
        .bearer_auth(&bob)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        theirs.status().as_u16(),
        404,
        "outputs go to their owner only"
    );
    let (escape, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/jobs/{id}/outputs/..%2Fmanifest.json"),
            Some(&ada),
            None,
            None,
        )
        .await;
    assert_eq!(escape, 404, "only a file the job lists");

    // Ada's day holds $0.06: two more jobs of $0.025 fit, the third does not.
    let mut ends = Vec::new();
    for key in ["k-2", "k-3", "k-4"] {
        let (status, queued) = api
            .call(
                post.clone(),
                "/v1/jobs",
                Some(&ada),
                Some(job.clone()),
                Some(key),
            )
            .await;
        assert_eq!(status, 202, "{queued}");
        ends.push(
            api.job_until_final(&ada, queued["id"].as_str().expect("id"))
                .await,
        );
    }
    let done_count = ends.iter().filter(|j| j["status"] == "done").count();
    assert_eq!(done_count, 1, "only what fits in ada's day runs: {ends:?}");
    assert!(
        ends.iter().any(|j| j["error"]["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("budget."))),
        "{ends:?}"
    );
    let (_, spend) = api
        .call(reqwest::Method::GET, "/v1/spend", Some(&ada), None, None)
        .await;
    let scopes = spend["scopes"].as_array().cloned().unwrap_or_default();
    assert!(
        scopes.iter().all(|s| s.to_string().contains("user:ada")),
        "only ada's own: {spend}"
    );
    assert_eq!(fake.submits().await, 2, "each job that fit was sent once");

    let leaked = json!({"model": "flux_dev", "prompt": format!("a fox {FAL_KEY}")});
    let (guarded, refusal) = api
        .call(post.clone(), "/v1/jobs", Some(&bob), Some(leaked), None)
        .await;
    assert_eq!(guarded, 422, "{refusal}");
    let huge = json!({"model": "flux_dev", "prompt": "x".repeat(400 * 1024)});
    let (too_big, _) = api
        .call(post.clone(), "/v1/jobs", Some(&bob), Some(huge), None)
        .await;
    assert_eq!(too_big, 413);
    let unknown = json!({"model": "flux_dev", "prompt": "x", "image": "/etc/passwd"});
    let (refused, _) = api
        .call(post, "/v1/jobs", Some(&bob), Some(unknown), None)
        .await;
    assert_eq!(
        refused, 400,
        "no field names a file of the server's machine"
    );

    let capped = json!({"model": "flux_dev", "prompt": "a fox", "max_cost_usd": "0.01"});
    let (over, refusal) = api
        .call(
            reqwest::Method::POST,
            "/v1/jobs",
            Some(&bob),
            Some(capped),
            None,
        )
        .await;
    assert_eq!(
        over, 402,
        "a worst case above the ceiling is refused at the door: {refusal}"
    );
    let path = format!("/v1/jobs/{id}");
    let (not_bobs, _) = api
        .call(reqwest::Method::DELETE, &path, Some(&bob), None, None)
        .await;
    assert_eq!(not_bobs, 404, "bob cannot cancel ada's job");
    let (ended, still) = api
        .call(reqwest::Method::DELETE, &path, Some(&ada), None, None)
        .await;
    assert_eq!(
        (ended, still["status"].as_str()),
        (202, Some("done")),
        "a finished job stays finished"
    );
    let second = sb.run(&["serve", "--addr", "127.0.0.1:0"]).await;
    assert!(
        second.code == Some(2) && second.stderr.contains("another acgs serve"),
        "one server per set of records: {}",
        second.stderr
    );
    let (after, _) = api
        .call(reqwest::Method::GET, &path, Some(&ada), None, None)
        .await;
    assert_eq!(after, 200, "the first server still serves");

    let counted = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics");
    let counted = counted.text().await.unwrap_or_default();
    assert!(
        counted.contains("acgs_jobs{state=\"done\"} 2") && !counted.contains("ada"),
        "jobs by state, no user names: {counted}"
    );
    // Uploads: kept for their owner, read by their type, capped; a job may use only its own.
    // A multipart form of one file field, as any HTTP client sends it.
    let form = |bytes: Vec<u8>| {
        let mut body = b"--acgs-boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n--acgs-boundary--\r\n");
        body
    };
    let upload = |token: &str, bytes: Vec<u8>| {
        api.http
            .post(format!("{}/v1/files", api.base))
            .bearer_auth(token.to_owned())
            .header(
                "content-type",
                "multipart/form-data; boundary=acgs-boundary",
            )
            // A refused body is not read to its end: its connection is not reused.
            .header("connection", "close")
            .body(form(bytes))
            .send()
    };
    let stored = upload(&bob, acgs_testkit::media::png(640, 480, 200_000))
        .await
        .expect("answer");
    assert_eq!(stored.status().as_u16(), 201);
    let stored: Value =
        serde_json::from_str(&stored.text().await.unwrap_or_default()).expect("json");
    assert_eq!(stored["content_type"], "image/png");
    let file_id = stored["id"].as_str().expect("an id").to_owned();
    let mine = api
        .http
        .get(format!("{}/v1/files/{file_id}", api.base))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        mine.bytes().await.map(|b| b.len()).ok(),
        stored["bytes"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
    );
    let not_ada = api
        .http
        .get(format!("{}/v1/files/{file_id}", api.base))
        .bearer_auth(&ada)
        .send()
        .await
        .expect("answer");
    assert_eq!(not_ada.status().as_u16(), 404);
    let mut endless = b"--acgs-boundary\r\nX-Filler: ".to_vec();
    endless.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let headers = api
        .http
        .post(format!("{}/v1/files", api.base))
        .bearer_auth(&bob)
        .header(
            "content-type",
            "multipart/form-data; boundary=acgs-boundary",
        )
        .header("connection", "close")
        .body(endless)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        headers.status().as_u16(),
        400,
        "a part's headers are not buffered past 16 KiB"
    );
    let text = upload(&bob, b"just some words, not media".to_vec())
        .await
        .expect("answer");
    assert_eq!(text.status().as_u16(), 400, "not a media type acgs knows");
    let huge = upload(&bob, vec![0u8; 3 * 1024 * 1024])
        .await
        .expect("answer");
    assert_eq!(
        huge.status().as_u16(),
        413,
        "over --max-upload-mib, unread past the cap"
    );
    let with_input =
        json!({"model": "kontext", "prompt": "make it night", "inputs": {"image": file_id}});
    let (bobs, estimate) = api
        .call(
            reqwest::Method::POST,
            "/v1/estimate",
            Some(&bob),
            Some(with_input.clone()),
            None,
        )
        .await;
    assert_eq!(bobs, 200, "bob's own upload is an input: {estimate}");
    let (adas, _) = api
        .call(
            reqwest::Method::POST,
            "/v1/estimate",
            Some(&ada),
            Some(with_input),
            None,
        )
        .await;
    assert_eq!(adas, 400, "ada cannot use bob's upload");

    signal(&child, rustix::process::Signal::TERM);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .expect("exits");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains(&ada) && !log.contains(&bob),
        "no token in the log"
    );
}

/// Micro-dollars of a `"0.025"` amount.
fn micros(amount: &Value) -> i64 {
    acgs_core::Usd::parse(amount.as_str().unwrap_or("0"))
        .expect("an amount")
        .micros()
}

/// Start `acgs worker` processes, each running `jobs` at once on leases of 3 s, handing its
/// jobs over `drain` seconds after a signal.
fn workers(sb: &Sandbox, n: usize, jobs: &str, drain: &str) -> Vec<tokio::process::Child> {
    (0..n)
        .map(|_| {
            let mut child = sb
                .command(&[
                    "worker",
                    "--jobs",
                    jobs,
                    "--lease-secs",
                    "3",
                    "--drain-secs",
                    drain,
                ])
                .spawn()
                .expect("a worker starts");
            // Read what it says, so that it never blocks on a full pipe.
            let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            child
        })
        .collect()
}

/// One API process and three workers on a real PostgreSQL: 20 users × 10 jobs, a worker killed
/// (`kill -9`) in the middle of its jobs, and a fourth stopped by a signal at once (no drain
/// time), which hands its jobs over. Every job ends done (or, if it was stopped while its
/// request was on the wire, refused as unknown rather than sent again); no provider job is
/// submitted twice; no user passes their day, nor the service its own; nothing stays reserved.
#[tokio::test(flavor = "multi_thread")]
async fn workers_on_postgres_share_the_queue_and_take_over_a_killed_one() {
    let Some(url) = super::budget::postgres_database().await else {
        return;
    };
    let fleet = acgs_testkit::fleet::FakeFalFleet::start_running(
        "fal-ai/flux/dev",
        Duration::ZERO,
        Duration::from_millis(1500),
    )
    .await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fleet.uri())
        .set_env("ACGS_LEDGER__URL", &url)
        .set_env("ACGS_COST_MANAGEMENT__DAILY_LIMIT", "5.50")
        .set_env("ACGS_RATE_LIMITS__FAL__PER_MINUTE", "6000");
    let mut tokens = Vec::new();
    for u in 0..20 {
        tokens.push(user_with_token(&sb, &format!("user{u}"), "0.30").await);
    }
    let mut api_child = sb
        .command(&["serve", "--addr", "127.0.0.1:0", "--workers", "0"])
        .spawn()
        .expect("starts");
    let base = listening(&mut api_child).await;
    let mut crew = workers(&sb, 3, "8", "30");
    let mut quitter = workers(&sb, 1, "8", "0").remove(0);
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[expect(
        clippy::disallowed_methods,
        reason = "a client of acgs's own service, not a provider call"
    )]
    let api = Api {
        http: reqwest::Client::new(),
        base,
    };
    let mut ids = Vec::new();
    for (u, token) in tokens.iter().enumerate() {
        for n in 0..10 {
            let body = json!({"model": "flux_dev", "prompt": format!("job {u}-{n}")});
            let (status, job) = api
                .call(
                    reqwest::Method::POST,
                    "/v1/jobs",
                    Some(token),
                    Some(body),
                    None,
                )
                .await;
            assert_eq!(status, 202, "{job}");
            ids.push((u, job["id"].as_str().expect("an id").to_owned()));
        }
    }
    // Kill one worker while it holds jobs whose provider requests are in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fleet.accepted().len() < 30 {
        assert!(Instant::now() < deadline, "the workers never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&crew[0], rustix::process::Signal::KILL);
    let _ = crew[0].wait().await;
    signal(&quitter, rustix::process::Signal::TERM);
    let quit = tokio::time::timeout(Duration::from_secs(20), quitter.wait())
        .await
        .expect("hands over at once")
        .expect("status");
    assert!(quit.success(), "{quit}");

    let (mut done, mut unknown) = (0_usize, 0_i64);
    for (u, id) in &ids {
        let job = api.job_until_final_within(&tokens[*u], id, 180).await;
        match (job["status"].as_str(), job["error"]["code"].as_str()) {
            (Some("done"), _) => done += 1,
            (Some("failed"), Some("run.outcome_unknown")) => unknown += 1,
            _ => panic!("a job did not finish: {job}"),
        }
    }
    assert!(
        done + usize::try_from(unknown).unwrap_or(0) == 200 && unknown <= 16,
        "{done} done, {unknown} unknown"
    );
    let mut sent = std::collections::BTreeMap::<String, usize>::new();
    for params in fleet.accepted() {
        *sent
            .entry(params["prompt"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert!(
        sent.values().all(|n| *n == 1),
        "a provider job was sent twice"
    );
    assert!(
        sent.len() >= done,
        "every done job was sent: {}",
        sent.len()
    );

    // Only a job whose outcome is unknown still counts (at its estimate, until an operator
    // writes it off): everything else was settled.
    let mut reserved = 0;
    for token in &tokens {
        let (status, spend) = api
            .call(reqwest::Method::GET, "/v1/spend", Some(token), None, None)
            .await;
        assert_eq!(status, 200, "{spend}");
        let scopes = spend["scopes"].as_array().expect("scopes");
        assert!(!scopes.is_empty(), "{spend}");
        // The day is limited; the week and month are counted with no limit.
        for scope in scopes {
            let held = micros(&scope["spend"]["reserved"]);
            let counted = micros(&scope["spend"]["settled"]) + held;
            if scope["limit"].is_null() {
                continue;
            }
            assert!(
                counted <= micros(&scope["limit"]),
                "a user passed a limit: {scope}"
            );
            reserved += held;
        }
    }
    assert_eq!(reserved, unknown * 25_000, "what stays reserved");
    let today = ok(&sb.run(&["--json", "spend"]).await);
    assert_eq!(
        micros(&today["today"]["reserved"]),
        unknown * 25_000,
        "{today}"
    );
    assert!(micros(&today["today"]["settled"]) <= 5_500_000, "{today}");
    // The database drops every connection: each process notices and stops with an error,
    // for its supervisor to start it again, rather than failing every call from then on.
    let name = url.rsplit('/').next().unwrap_or_default();
    let admin = std::env::var("ACGS_TEST_POSTGRES_URL").expect("the server");
    let dropped = tokio::process::Command::new("psql")
        .args([
            admin.as_str(),
            "-q",
            "-c",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ),
        ])
        .status()
        .await
        .expect("psql runs");
    assert!(dropped.success());
    for mut child in crew.into_iter().skip(1).chain([api_child]) {
        let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
            .await
            .expect("stops once its connection is gone")
            .expect("status");
        assert!(!status.success(), "{status}");
    }
}

/// The API of a service on `base`, with a plain HTTP client.
fn api_at(base: String) -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[expect(
        clippy::disallowed_methods,
        reason = "a client of acgs's own service, not a provider call"
    )]
    let http = reqwest::Client::new();
    Api { http, base }
}

async fn stop(mut child: tokio::process::Child) {
    signal(&child, rustix::process::Signal::TERM);
    let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("stops in time")
        .expect("status");
    assert!(status.success(), "{status}");
}

/// A job's callback: refused at the door for inside addresses unless the operator allows
/// loopback; when allowed, posted once the job ends, signed in the Standard Webhooks format
/// with the owner's secret, and sent again after a failed delivery.
#[tokio::test(flavor = "multi_thread")]
async fn callbacks_are_signed_retried_and_never_sent_inside() {
    use base64::Engine as _;
    use hmac::Mac as _;

    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let sb = sandbox_for(&fake);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    let receiver = wiremock::MockServer::start().await;
    let hook = format!("{}/hook", receiver.uri());
    let job = |url: &str| json!({"model": "flux_dev", "prompt": "a fox", "callback_url": url});
    let post = reqwest::Method::POST;

    let (child, base) = server_with(&sb, &["--user-rate", "8"]).await;
    let api = api_at(base);
    for inside in [
        hook.as_str(),
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "ftp://example.com/hook",
    ] {
        let (status, body) = api
            .call(
                post.clone(),
                "/v1/jobs",
                Some(&ada),
                Some(job(inside)),
                None,
            )
            .await;
        assert_eq!(status, 400, "{inside}: {body}");
        assert!(body.to_string().contains("callback_url"), "{body}");
    }
    // Eight requests a minute: a burst of twenty is cut short, with a time to come back.
    let mut limited = None;
    for _ in 0..20 {
        let answer = api
            .http
            .get(format!("{}/v1/spend", api.base))
            .bearer_auth(&ada)
            .send()
            .await
            .expect("an answer");
        if answer.status().as_u16() == 429 {
            limited = answer.headers().get("retry-after").cloned();
            break;
        }
    }
    assert!(limited.is_some(), "the user's rate was never enforced");
    stop(child).await;

    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&receiver)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let (child, base) = server_with(&sb, &["--allow-private-callbacks"]).await;
    let api = api_at(base);
    let (status, accepted) = api
        .call(post.clone(), "/v1/jobs", Some(&ada), Some(job(&hook)), None)
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("an id").to_owned();
    let done = api.job_until_final(&ada, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let received = loop {
        let received = receiver.received_requests().await.unwrap_or_default();
        if received.len() >= 2 {
            break received;
        }
        assert!(Instant::now() < deadline, "the callback was not sent again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, secret) = api
        .call(
            reqwest::Method::GET,
            "/v1/callback-secret",
            Some(&ada),
            None,
            None,
        )
        .await;
    let secret = secret["secret"].as_str().expect("a secret");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("base64");
    for request in &received {
        let header = |name: &str| request.headers[name].to_str().expect("a header").to_owned();
        let (msg, ts) = (header("webhook-id"), header("webhook-timestamp"));
        let body = String::from_utf8_lossy(&request.body);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
        mac.update(format!("{msg}.{ts}.{body}").as_bytes());
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            header("webhook-signature"),
            expected,
            "signed with ada's secret"
        );
        assert_eq!(msg, format!("msg_{id}"), "one message id for every attempt");
        let event: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            (event["type"].as_str(), event["data"]["id"].as_str()),
            (Some("job.done"), Some(id.as_str()))
        );
    }
    stop(child).await;
}

/// fal's webhooks: jobs are submitted with the service's public callback URL; a delivery
/// signed by any published key is taken (twice too), and a tampered, stale, unsigned or
/// foreign-signed one is refused and audited. A callback never settles anything: the job is
/// done by its fetched result.
#[tokio::test(flavor = "multi_thread")]
async fn fal_webhooks_are_verified_against_the_published_keys() {
    use acgs_testkit::fal_webhook::{Signer, serve_jwks};

    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let keys = wiremock::MockServer::start().await;
    let (old, current, stranger) = (Signer::generate(), Signer::generate(), Signer::generate());
    let jwks = serve_jwks(&keys, &[&old, &current]).await;
    let mut sb = sandbox_for(&fake);
    sb.set_env("ACGS_PROVIDERS__FAL__JWKS_URL", &jwks);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    let (child, base) = server_with(&sb, &["--public-url", "https://acgs.example.com/"]).await;
    let api = api_at(base);
    let (status, accepted) = api
        .call(
            reqwest::Method::POST,
            "/v1/jobs",
            Some(&ada),
            Some(json!({"model": "flux_dev", "prompt": "a fox"})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("an id").to_owned();
    assert_eq!(api.job_until_final(&ada, &id).await["status"], "done");
    let submit = fake
        .requests()
        .await
        .into_iter()
        .find(|r| r.method == wiremock::http::Method::POST)
        .expect("a submit");
    assert_eq!(
        submit.url.query(),
        Some("fal_webhook=https%3A%2F%2Facgs.example.com%2Fv1%2Fwebhooks%2Ffal"),
    );

    let now = jiff::Timestamp::now().as_second();
    let body = br#"{"error": null, "gateway_request_id": "req-1", "payload": {"images": []}, "request_id": "req-1", "status": "OK"}"#;
    let failed = br#"{"error": "Invalid status code: 422", "gateway_request_id": "req-2", "payload": null, "payload_error": "not serializable", "request_id": "req-2", "status": "ERROR"}"#;
    let deliver = |headers: Vec<(String, String)>, body: &'static [u8]| {
        let mut request = api
            .http
            .post(format!("{}/v1/webhooks/fal", api.base))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let answer = request.send().await.expect("an answer");
            let status = answer.status().as_u16();
            let doc: Value = answer.json().await.unwrap_or(Value::Null);
            (
                status,
                doc["error"]["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let signed = current.headers("req-1", now, body);
    assert_eq!(
        deliver(signed.clone(), body).await.0,
        200,
        "signed by a published key"
    );
    assert_eq!(
        deliver(signed.clone(), body).await.0,
        200,
        "a duplicate is harmless"
    );
    assert_eq!(
        deliver(old.headers("req-2", now, failed), failed).await.0,
        200,
        "an ERROR delivery, by the older key"
    );
    let tampered = br#"{"error": null, "gateway_request_id": "req-1", "payload": {"images": [1]}, "request_id": "req-1", "status": "OK"}"#;
    for (headers, body, code) in [
        (signed.clone(), &tampered[..], "webhook.bad_signature"),
        (
            current.headers("req-1", now - 600, body),
            &body[..],
            "webhook.stale",
        ),
        (signed[1..].to_vec(), &body[..], "webhook.unsigned"),
        (
            stranger.headers("req-1", now, body),
            &body[..],
            "webhook.bad_signature",
        ),
    ] {
        assert_eq!(deliver(headers, body).await, (401, code.to_owned()));
    }
    stop(child).await;
    let refused = super::audit_lines(&sb)
        .into_iter()
        .filter(|e| e.to_string().contains("serve.fal_webhook"))
        .count();
    assert_eq!(refused, 4, "every refusal is audited");
}

/// Budgets per tag and per week hold as the service runs jobs, a tag without a budget is
/// refused at the door, and admins — only they — manage users, tokens and limits over HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn tag_and_week_budgets_hold_and_admins_manage_them() {
    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let sb = sandbox_for(&fake);
    ok(&sb
        .run(&[
            "--json", "serve", "user", "add", "ada", "--daily", "1.00", "--weekly", "0.08",
        ])
        .await);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    ok(&sb
        .run(&[
            "--json", "serve", "user", "add", "root", "--daily", "0", "--admin",
        ])
        .await);
    let created = ok(&sb
        .run(&["--json", "serve", "token", "create", "--user", "root"])
        .await);
    let root = created["token"].as_str().expect("a token").to_owned();
    let limits = ok(&sb
        .run(&[
            "--json", "serve", "limit", "set", "tag:film", "daily", "0.05",
        ])
        .await);
    assert_eq!(limits["limits"][0]["scope"], "tag:film", "{limits}");
    let (child, base) = server(&sb).await;
    let api = api_at(base);
    let (post, get) = (reqwest::Method::POST, reqwest::Method::GET);

    let job = |tags: Value| json!({"model": "flux_dev", "prompt": "a fox", "tags": tags});
    let (status, body) = api
        .call(
            post.clone(),
            "/v1/jobs",
            Some(&ada),
            Some(job(json!(["nope"]))),
            None,
        )
        .await;
    assert_eq!(status, 400, "a tag with no budget: {body}");
    let mut ends = Vec::new();
    for tags in [
        json!(["film"]),
        json!(["film"]),
        json!(["film"]),
        json!([]),
        json!([]),
    ] {
        let (status, accepted) = api
            .call(post.clone(), "/v1/jobs", Some(&ada), Some(job(tags)), None)
            .await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().expect("an id").to_owned();
        let end = api.job_until_final(&ada, &id).await;
        ends.push((end["status"].clone(), end["error"]["message"].clone()));
    }
    assert_eq!(ends[0].0, "done");
    assert_eq!(ends[1].0, "done");
    assert_eq!(
        ends[2].0, "failed",
        "the film tag's day is spent: {:?}",
        ends[2]
    );
    assert!(
        ends[2].1.to_string().contains(":tag:film:"),
        "{:?}",
        ends[2]
    );
    assert_eq!(ends[3].0, "done", "{:?}", ends[3]);
    assert_eq!(ends[4].0, "failed", "ada's week is spent: {:?}", ends[4]);
    assert!(
        ends[4].1.to_string().contains(":user:ada:20"),
        "{:?}",
        ends[4]
    );
    assert!(ends[4].1.to_string().contains("-W"), "{:?}", ends[4]);
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    for line in [
        format!("acgs_scope_spend_micro_usd{{scope=\"tag:film\",period=\"{today}\"}} 50000"),
        format!("acgs_scope_limit_micro_usd{{scope=\"tag:film\",period=\"{today}\"}} 50000"),
        "acgs_provider_job_seconds_count{provider=\"fal\"} 5".to_owned(),
        "acgs_provider_job_errors_total{provider=\"fal\",code=\"budget.scope_limit\"} 2".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(!metrics.contains("ada"), "the open route names no user");

    let (status, _) = api
        .call(get.clone(), "/v1/admin/limits", Some(&ada), None, None)
        .await;
    assert_eq!(status, 403, "ada is no admin");
    let put = reqwest::Method::PUT;
    let (status, bob) = api
        .call(
            put.clone(),
            "/v1/admin/users/bob",
            Some(&root),
            Some(json!({"daily": "2.00", "weekly": "5"})),
            None,
        )
        .await;
    assert_eq!(
        (status, bob["weekly"].as_str()),
        (200, Some("5.00")),
        "{bob}"
    );
    let (status, token) = api
        .call(
            post.clone(),
            "/v1/admin/users/bob/tokens",
            Some(&root),
            Some(json!({"days": 1})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let bob_token = token["token"].as_str().expect("a token");
    let (status, spend) = api
        .call(get.clone(), "/v1/spend", Some(bob_token), None, None)
        .await;
    assert_eq!(status, 200, "{spend}");
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/admin/tokens/{}", token["id"].as_str().expect("id")),
            Some(&root),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(get.clone(), "/v1/spend", Some(bob_token), None, None)
        .await;
    assert_eq!(status, 401, "revoked over HTTP");
    let (status, again) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/admin/tokens/{}", token["id"].as_str().expect("id")),
            Some(&root),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (404, Some("server.unknown_token")),
        "{again}"
    );
    let (status, limits) = api
        .call(
            put,
            "/v1/admin/limits/service/monthly",
            Some(&root),
            Some(json!({"amount": "100"})),
            None,
        )
        .await;
    assert_eq!(
        (status, limits["limits"].as_array().map(Vec::len)),
        (200, Some(2)),
        "{limits}"
    );
    // A limit set now starts from what the month already spent: three jobs at $0.025.
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let month = jiff::Timestamp::now().strftime("%Y-%m").to_string();
    let line = format!("acgs_scope_spend_micro_usd{{scope=\"service\",period=\"{month}\"}} 75000");
    assert!(metrics.contains(&line), "{line} in {metrics}");
    assert!(
        metrics.contains(&format!(
            "acgs_scope_limit_micro_usd{{scope=\"service\",period=\"{month}\"}} 100000000"
        )),
        "{metrics}"
    );
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            "/v1/admin/limits/tag:..%2Fx/daily",
            Some(&root),
            Some(json!({"amount": "1"})),
            None,
        )
        .await;
    assert_eq!(status, 400, "a scope that is not plain");
    let changes: Vec<(String, String)> = super::audit_lines(&sb)
        .into_iter()
        .filter(|e| {
            e["operation"]
                .as_str()
                .is_some_and(|o| o.starts_with("serve.admin."))
        })
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or_default().to_owned(),
                e["user"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes.len(),
        4,
        "a user, a token created and revoked, a limit: {changes:?}"
    );
    assert!(
        changes.iter().all(|(_, user)| user == "root"),
        "{changes:?}"
    );
    assert!(
        !super::audit_lines(&sb)
            .iter()
            .any(|e| e.to_string().contains(bob_token)),
        "no token in the log"
    );
    stop(child).await;
}

/// A pipeline over HTTP: priced whole at the door (its ceiling holds), run as one job by a
/// worker, its steps' files served to its owner; a broken file is refused with its problems.
#[tokio::test(flavor = "multi_thread")]
async fn pipelines_run_as_one_job_over_http() {
    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let sb = sandbox_for(&fake);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    let (child, base) = server(&sb).await;
    let api = api_at(base);
    let post = reqwest::Method::POST;
    let file = "version: 1\ninputs:\n  subject: { type: text }\nsteps:\n\
                - { id: still, model: flux_dev, prompt: \"a still of {{ inputs.subject }}\" }\n\
                - { id: other, model: flux_dev, prompt: \"another {{ inputs.subject }}\" }\n";
    let body =
        |max: &str| json!({"pipeline": file, "inputs": {"subject": "a fox"}, "max_cost_usd": max});
    let (status, refused) = api
        .call(
            post.clone(),
            "/v1/pipelines",
            Some(&ada),
            Some(body("0.03")),
            None,
        )
        .await;
    assert_eq!(
        status, 402,
        "two steps at $0.025 pass a $0.03 ceiling: {refused}"
    );
    let (status, broken) = api
        .call(post.clone(), "/v1/pipelines", Some(&ada), Some(json!({"pipeline": "version: 1\nsteps: []\nsettings: { cost_management: { daily_limit: 9999 } }\n"})), None)
        .await;
    assert_eq!(status, 422, "{broken}");
    let (status, priced) = api
        .call(
            post.clone(),
            "/v1/estimate",
            Some(&ada),
            Some(body("1.00")),
            None,
        )
        .await;
    assert_eq!(
        (
            status,
            priced["estimate"].as_str(),
            priced["steps"].as_array().map(Vec::len)
        ),
        (200, Some("0.05"), Some(2)),
        "{priced}"
    );
    // A file longer than a job's body limit (256 KiB) is still a pipeline's to send.
    let long = format!("{file}# {}\n", "x".repeat(300 * 1024));
    let (status, priced) = api
        .call(
            post.clone(),
            "/v1/estimate",
            Some(&ada),
            Some(json!({"pipeline": long, "inputs": {"subject": "a fox"}})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{priced}");
    let (status, accepted) = api
        .call(
            post.clone(),
            "/v1/pipelines",
            Some(&ada),
            Some(body("1.00")),
            Some("p-1"),
        )
        .await;
    assert_eq!(
        (status, accepted["estimate"].as_str()),
        (202, Some("0.05")),
        "{accepted}"
    );
    let id = accepted["id"].as_str().expect("an id").to_owned();
    let done = api.job_until_final(&ada, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["actual"].as_str()),
        (Some("done"), Some("0.05")),
        "{done}"
    );
    let outputs = done["outputs"].as_array().expect("outputs").clone();
    assert_eq!(outputs.len(), 2, "{done}");
    for name in outputs {
        let url = format!(
            "{}/v1/jobs/{id}/outputs/{}",
            api.base,
            name.as_str().expect("a name")
        );
        let fetched = api
            .http
            .get(&url)
            .bearer_auth(&ada)
            .send()
            .await
            .expect("a file");
        assert_eq!(fetched.status().as_u16(), 200);
    }
    let submitted: Vec<String> = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        submitted.iter().any(|b| b.contains("a still of a fox")),
        "{submitted:?}"
    );
    let (_, again) = api
        .call(
            post,
            "/v1/pipelines",
            Some(&ada),
            Some(body("1.00")),
            Some("p-1"),
        )
        .await;
    assert_eq!(again["id"], accepted["id"], "one job per key");
    stop(child).await;
}

/// Cancelling a running job goes through the guarded path: the provider job is cancelled, the
/// reservation follows the charge table, and the job's record shows its run and what the
/// ledger settled, as its events do.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_running_job_shows_what_it_cost() {
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .outcome(acgs_testkit::fal::Outcome::KeepRunning)
        .start()
        .await;
    let sb = sandbox_for(&fake);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    let (child, base) = server(&sb).await;
    let api = api_at(base);
    let (status, accepted) = api
        .call(
            reqwest::Method::POST,
            "/v1/jobs",
            Some(&ada),
            Some(json!({"model": "flux_dev", "prompt": "a fox"})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("an id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.submits().await == 0 {
        assert!(Instant::now() < deadline, "never submitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/jobs/{id}"),
            Some(&ada),
            None,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let ended = api.job_until_final(&ada, &id).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    let run_id = ended["run_id"].as_str().expect("its run").to_owned();
    let rows = super::ledger_rows(&sb).await;
    let row = rows
        .iter()
        .find(|r| r.run_id == run_id)
        .expect("its reservation");
    assert!(
        row.actual.is_some(),
        "a cancelled running fal job is charged: {row:?}"
    );
    assert_eq!(
        ended["actual"].as_str(),
        row.actual.map(|a| a.to_string()).as_deref(),
        "the record shows what the ledger settled: {ended}"
    );
    assert!(
        fake.queue_requests()
            .await
            .iter()
            .any(|r| r.ends_with("/cancel")),
        "the provider job was cancelled"
    );
    stop(child).await;
}

/// A client that sends its body too slowly is answered `408` after 30 s, not waited for.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let fake = FakeFal::builder("fal-ai/flux/dev").start().await;
    let sb = sandbox_for(&fake);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    let (child, base) = server(&sb).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ada}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"mo"
    );
    stream.write_all(head.as_bytes()).await.expect("sent");
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("reads");
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept waiting");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_secs(29),
        "cut off after 30 s, not before"
    );
    stop(child).await;
}

/// What a run left in the ledger and the audit log, without what names the run, the entrance
/// or the time: (state, provider, model, estimate, actual) per reservation, and (operation,
/// outcome, code, provider, model, estimate, actual, quantity) per audit entry of the run.
async fn trace(sb: &Sandbox, run_id: &str) -> (Vec<String>, Vec<String>) {
    let ledger = super::ledger_rows(sb)
        .await
        .into_iter()
        .filter(|r| r.run_id == run_id)
        .map(|r| {
            format!(
                "{:?} {} {} {} {:?}",
                r.state, r.provider, r.model, r.estimate, r.actual
            )
        })
        .collect();
    let audit = super::audit_lines(sb)
        .into_iter()
        .filter(|e| e["run_id"] == run_id)
        .map(|e| {
            let keep = [
                "operation",
                "outcome",
                "code",
                "provider",
                "model",
                "estimate",
                "actual",
                "quantity",
                "step",
            ];
            keep.iter()
                .map(|k| format!("{k}={}", e[*k]))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (ledger, audit)
}

/// One road: the same request through the command line and through the service leaves the
/// same ledger rows and the same audit entries, on success and on a provider failure; only the
/// entrance (`origin`), the user and the ids differ.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_leaves_what_the_command_line_leaves() {
    for outcome in [
        acgs_testkit::fal::Outcome::Images,
        acgs_testkit::fal::Outcome::CompletedWithError,
    ] {
        let fake = FakeFal::builder("fal-ai/flux/dev")
            .outcome(outcome)
            .start()
            .await;
        let sb = sandbox_for(&fake);
        let cli = sb
            .run(&[
                "--json",
                "image",
                "a fox in snow",
                "--model",
                "flux_dev",
                "--yes",
            ])
            .await;
        let cli_run = cli_run_id(&sb).await;
        let ada = user_with_token(&sb, "ada", "1.00").await;
        let (child, base) = server(&sb).await;
        let api = api_at(base);
        let (status, accepted) = api
            .call(
                reqwest::Method::POST,
                "/v1/jobs",
                Some(&ada),
                Some(json!({"model": "flux_dev", "prompt": "a fox in snow"})),
                None,
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        let ended = api
            .job_until_final(&ada, accepted["id"].as_str().expect("an id"))
            .await;
        let service_run = ended["run_id"].as_str().expect("a run").to_owned();
        stop(child).await;
        let (from_cli, from_service) = (trace(&sb, &cli_run).await, trace(&sb, &service_run).await);
        assert!(
            !from_cli.0.is_empty() && !from_cli.1.is_empty(),
            "{outcome:?}: {}",
            cli.stderr
        );
        assert_eq!(from_cli, from_service, "{outcome:?}");
        let origins: Vec<String> = super::audit_lines(&sb)
            .into_iter()
            .filter(|e| e["run_id"] == service_run)
            .map(|e| e["origin"].to_string())
            .collect();
        assert!(origins.iter().all(|o| o == "\"service\""), "{origins:?}");
    }
}

/// The run id of the only run the command line made in `sb`.
async fn cli_run_id(sb: &Sandbox) -> String {
    let rows = super::ledger_rows(sb).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].run_id.clone()
}

/// With a public URL, a worker on another machine submits fal jobs with the service's webhook
/// and waits by slow polling; the callback the API verifies reaches that worker through the
/// database and wakes its wait at once, long before its next poll.
#[tokio::test(flavor = "multi_thread")]
async fn a_callback_the_api_takes_wakes_a_worker_elsewhere() {
    use acgs_testkit::fal_webhook::{Signer, serve_jwks};

    let Some(url) = super::budget::postgres_database().await else {
        return;
    };
    let fake = FakeFal::builder("fal-ai/flux/dev")
        .outcome(acgs_testkit::fal::Outcome::KeepRunning)
        .start()
        .await;
    let keys = wiremock::MockServer::start().await;
    let signer = Signer::generate();
    let jwks = serve_jwks(&keys, &[&signer]).await;
    let mut sb = sandbox_for(&fake);
    sb.set_env("ACGS_PROVIDERS__FAL__JWKS_URL", &jwks)
        .set_env("ACGS_LEDGER__URL", &url);
    let ada = user_with_token(&sb, "ada", "1.00").await;
    let public = "https://acgs.example.com";
    let mut api_child = sb
        .command(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "0",
            "--public-url",
            public,
        ])
        .spawn()
        .expect("starts");
    let base = listening(&mut api_child).await;
    let mut worker = sb
        .command(&["worker", "--jobs", "2", "--public-url", public])
        .spawn()
        .expect("a worker starts");
    let mut lines = tokio::io::BufReader::new(worker.stderr.take().expect("stderr")).lines();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let api = api_at(base);
    let (status, accepted) = api
        .call(
            reqwest::Method::POST,
            "/v1/jobs",
            Some(&ada),
            Some(json!({"model": "flux_dev", "prompt": "a fox"})),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let polls = || async {
        fake.queue_requests()
            .await
            .iter()
            .filter(|r| r.ends_with("/status"))
            .count()
    };
    // Eight polls in, the next is about 4.3 s away (250 ms, growing by half each time).
    let deadline = Instant::now() + Duration::from_secs(60);
    while polls().await < 8 {
        assert!(Instant::now() < deadline, "the worker never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = polls().await;
    fake.complete_now().await;
    let body = br#"{"error": null, "gateway_request_id": "g", "payload": {}, "request_id": "r", "status": "OK"}"#;
    let now = jiff::Timestamp::now().as_second();
    let mut delivery = api
        .http
        .post(format!("{}/v1/webhooks/fal", api.base))
        .body(&body[..]);
    for (name, value) in signer.headers(acgs_testkit::fal::REQUEST_ID, now, body) {
        delivery = delivery.header(name, value);
    }
    let answer = delivery.send().await.expect("an answer");
    assert_eq!(answer.status().as_u16(), 200);
    let woken = Instant::now() + Duration::from_millis(2000);
    while polls().await == before {
        assert!(Instant::now() < woken, "the worker was not woken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.job_until_final(&ada, accepted["id"].as_str().expect("an id"))
        .await;
    // The callback ended nothing by itself: the worker fetched the result and checked it.
    let result = format!("/requests/{}", acgs_testkit::fal::REQUEST_ID);
    assert!(
        fake.queue_requests()
            .await
            .iter()
            .any(|r| r.starts_with("GET") && r.ends_with(&result)),
        "the result was fetched"
    );
    signal(&worker, rustix::process::Signal::TERM);
    let _ = worker.wait().await;
    stop(api_child).await;
}
