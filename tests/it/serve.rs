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
    let mut child = sb
        .command(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--max-upload-mib",
            "1",
        ])
        .spawn()
        .expect("starts");
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
    (child, url)
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
        let deadline = Instant::now() + Duration::from_secs(60);
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
