//! `acgs serve` under load, through the real binary on loopback against the fake fal fleet;
//! results in docs/benchmarks.md.
//!
//! `cargo bench -p acgs-e2e --bench serve` measures:
//! - `POST /v1/jobs` at an open-loop 500 requests/s for 10 s (5,000 jobs from 100 users), while
//!   4 in-process workers run the jobs: p50, p99 and worst latency (target p99 ≤ 10 ms);
//! - one process holding 1,000 provider jobs in flight (each runs 60 s at the fake): its
//!   resident memory once all 1,000 are submitted (target ≤ 200 MiB).

#![allow(clippy::print_stdout)] // a bench binary reports on stdout

use std::time::{Duration, Instant};

use acgs_e2e::Sandbox;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fleet::FakeFalFleet;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;

async fn tokens(sb: &Sandbox, users: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for u in 0..users {
        let name = format!("user{u}");
        let added = sb
            .run(&["serve", "user", "add", &name, "--daily", "1000"])
            .await;
        assert_eq!(added.code, Some(0), "{}", added.stderr);
        let made = sb
            .run(&["--json", "serve", "token", "create", "--user", &name])
            .await;
        tokens.push(made.json()["token"].as_str().expect("a token").to_owned());
    }
    tokens
}

async fn serve(sb: &Sandbox, workers: &str) -> (tokio::process::Child, String) {
    let mut child = sb
        .command(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            workers,
            "--user-rate",
            "1000000",
        ])
        .spawn()
        .expect("starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines.next_line().await.expect("stderr").expect("listening");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

fn sandbox(fleet: &FakeFalFleet) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fleet.uri())
        .set_env("ACGS_COST_MANAGEMENT__DAILY_LIMIT", "100000")
        .set_env("ACGS_RATE_LIMITS__FAL__PER_MINUTE", "1000000")
        .set_env("ACGS_RATE_LIMITS__FAL__IN_FLIGHT", "2000");
    sb
}

#[expect(
    clippy::disallowed_methods,
    reason = "a client of acgs's own service, not a provider call"
)]
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post_job(http: &reqwest::Client, base: &str, token: &str, prompt: String) -> u16 {
    http.post(format!("{base}/v1/jobs"))
        .bearer_auth(token)
        .json(&json!({"model": "flux_dev", "prompt": prompt}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn jobs_at_500_per_second() {
    let fleet = FakeFalFleet::start("fal-ai/flux/dev", Duration::ZERO).await;
    let sb = sandbox(&fleet);
    let tokens = tokens(&sb, 100).await;
    let (mut child, base) = serve(&sb, "4").await;
    let http = client();
    // Warm the connection pool and the server's caches.
    for token in tokens.iter().take(8) {
        post_job(&http, &base, token, "warm".into()).await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::new();
    for n in 0..5000_usize {
        tick.tick().await;
        let (http, base, token) = (http.clone(), base.clone(), tokens[n % 100].clone());
        sent.push(tokio::spawn(async move {
            let start = Instant::now();
            let status = post_job(&http, &base, &token, format!("job {n}")).await;
            (status, start.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let mut refused = 0;
    for request in sent {
        let (status, took) = request.await.expect("a request");
        if status != 202 {
            refused += 1;
        }
        latencies.push(took);
    }
    latencies.sort();
    let at = |q: usize| latencies[(latencies.len() * q / 1000).min(latencies.len() - 1)];
    println!(
        "POST /v1/jobs at 500/s for 10 s: {} requests, {refused} not 202; p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        at(500),
        at(990),
        latencies.last().copied().unwrap_or_default()
    );
    let _ = child.kill().await;
}

/// The resident and peak memory of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs_err::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn a_thousand_jobs_in_flight() {
    let fleet =
        FakeFalFleet::start_running("fal-ai/flux/dev", Duration::ZERO, Duration::from_secs(60))
            .await;
    let sb = sandbox(&fleet);
    let tokens = tokens(&sb, 20).await;
    let (mut child, base) = serve(&sb, "1000").await;
    let pid = child.id().expect("a pid");
    let http = client();
    let (idle, _) = memory_kib(pid);
    let start = Instant::now();
    for n in 0..1000_usize {
        let status = post_job(&http, &base, &tokens[n % 20], format!("job {n}")).await;
        assert_eq!(status, 202);
    }
    while fleet.accepted().len() < 1000 {
        assert!(
            start.elapsed() < Duration::from_secs(55),
            "only {} submitted",
            fleet.accepted().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let submitted = start.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, peak) = memory_kib(pid);
    let metrics: Value = json!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("acgs_jobs{"))
            .collect::<Vec<_>>()
    );
    println!(
        "1,000 provider jobs in flight in one process (all submitted after {submitted:?}): resident {} MiB (idle {} MiB), peak {} MiB; {metrics}",
        rss / 1024,
        idle / 1024,
        peak / 1024
    );
    let _ = child.kill().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    jobs_at_500_per_second().await;
    a_thousand_jobs_in_flight().await;
}
