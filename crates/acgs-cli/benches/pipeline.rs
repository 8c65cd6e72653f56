//! Pipelines as whole `acgs` processes (targets: a 50-step, width-10 DAG against providers with
//! 200 ms latency within its critical path + 5 %; `acgs validate` of 1,000 steps ≤ 100 ms).
//!
//! `cargo bench -p acgs-cli --bench pipeline` runs, against one fake server for every provider:
//! the 50-step DAG (10 chains of 5 Gemini text steps, each step using the previous step's text)
//! with `max_parallel: 10` (timed as whole processes, then with `--json` for the span from the
//! first step's `submitting` to the last `done`) and with `max_parallel: 1`; then `acgs validate`
//! on a generated 1,000-step file (10 chains of 100 steps). The critical path is the same DAG
//! driven against the same fake by a bare HTTP client (the fake's own time included).
//!
//! For finding overhead: `ACGS_BENCH_PROFILE=<latency ms>` runs the wide DAG once with `--json`
//! and leaves its stderr (progress events with timestamps; with `ACGS_BENCH_LOG=debug`, logs too)
//! in `/tmp/acgs-profile.log`. `ACGS_BENCH_BIN=<path>` runs another `acgs` build (one with
//! symbols, for `perf record`).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use acgs_testkit::canary::GEMINI_KEY;
use acgs_testkit::studio::FakeStudio;

const LATENCY: Duration = Duration::from_millis(200);
const WIDTH: usize = 10;
const DEPTH: usize = 5;
const RUNS: usize = 5;
const VALIDATE_RUNS: usize = 21;

/// `WIDTH` chains of `depth` text steps; each step uses the previous step's text.
fn dag(depth: usize, parallel: usize) -> String {
    let mut yaml =
        format!("version: 1\nname: bench\nsettings: {{ max_parallel: {parallel} }}\nsteps:\n");
    for chain in 0..WIDTH {
        for level in 0..depth {
            let prompt = if level == 0 {
                format!("chain {chain} begins")
            } else {
                format!("continue: {{{{ steps.c{chain}_{}.text }}}}", level - 1)
            };
            yaml.push_str(&format!(
                "  - id: c{chain}_{level}\n    model: gemini_2_5_flash\n    prompt: \"{prompt}\"\n    params: {{ max_output_tokens: 100, thinking_budget: 0 }}\n"
            ));
        }
    }
    yaml
}

/// Run `acgs` in `sandbox` against `studio`: how long the process took, and its stderr.
fn acgs(sandbox: &Path, studio: &str, args: &[&str]) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let binary =
        std::env::var_os("ACGS_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_acgs").into());
    let output = std::process::Command::new(binary)
        .args(args)
        .env_clear()
        .env("HOME", sandbox.join("home"))
        .env("XDG_CONFIG_HOME", sandbox.join("config"))
        .env("XDG_STATE_HOME", sandbox.join("state"))
        .env("GEMINI_API_KEY", GEMINI_KEY)
        .env("ACGS_PROVIDERS__GEMINI__BASE_URL", studio)
        .env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true")
        .env("ACGS_COST_MANAGEMENT__MAX_COST_PER_RUN", "10")
        .env(
            "ACGS_LOG",
            std::env::var("ACGS_BENCH_LOG").unwrap_or_default(),
        )
        .current_dir(sandbox)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("acgs runs");
    if std::env::var_os("ACGS_BENCH_PROFILE").is_some() {
        let _ = fs_err::write("/tmp/acgs-profile.log", &output.stderr);
    }
    assert!(
        output.status.success(),
        "acgs {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (started.elapsed(), output.stderr)
}

/// From a `--json` run's progress events: the first step's `submitting` to the last `done`
/// (the run without the process's start and exit).
fn steps_span(stderr: &[u8]) -> Duration {
    let mut first: Option<jiff::Timestamp> = None;
    let mut last: Option<jiff::Timestamp> = None;
    for line in String::from_utf8_lossy(stderr).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(ts) = event["ts"].as_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        match event["status"].as_str() {
            Some("submitting") => first = Some(first.map_or(ts, |f| f.min(ts))),
            Some("done") => last = Some(last.map_or(ts, |l| l.max(ts))),
            _ => {}
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        panic!("a --json run reports its steps");
    };
    Duration::try_from(last.duration_since(first)).expect("done after submitting")
}

/// The critical path as the fake itself serves it: the same DAG (`WIDTH` chains of `DEPTH`
/// requests, each chain on one kept-alive connection) driven by a plain HTTP/1.1 client that
/// does nothing but send each request when the one before it is answered. Returns the wall time
/// until every chain is done, and the median single round trip.
async fn fake_critical_path(studio: &str) -> (Duration, Duration) {
    let address = studio.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    let chains: Vec<_> = (0..WIDTH)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut connection = tokio::net::TcpStream::connect(&address)
                    .await
                    .expect("connect");
                let mut times = Vec::new();
                for _ in 0..DEPTH {
                    let sent = Instant::now();
                    exchange(&mut connection, &address).await;
                    times.push(sent.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for chain in chains {
        times.extend(chain.await.expect("chain"));
    }
    (started.elapsed(), median(times))
}

/// One `generateContent` request and its whole answer.
async fn exchange(connection: &mut tokio::net::TcpStream, host: &str) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"chain 0 begins"}]}]}"#;
    let request = format!(
        "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nhost: {host}\r\n\
         x-goog-api-key: {GEMINI_KEY}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    connection
        .write_all(request.as_bytes())
        .await
        .expect("send");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = connection.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the fake closed the connection");
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer);
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().expect("length"))
            })
            .expect("a content length");
        if rest.len() >= length {
            return;
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:01}", us / 1000, (us % 1000) / 100)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("ACGS_BENCH_PROFILE").is_some() {
        let latency = std::env::var("ACGS_BENCH_PROFILE")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(LATENCY, Duration::from_millis);
        return profile(&FakeStudio::start(&[], latency).await).await;
    }
    let studio = FakeStudio::start(&[], LATENCY).await;
    let sandbox = tempfile::tempdir().expect("sandbox");
    let dir = sandbox.path();
    fs_err::write(dir.join("wide.yaml"), dag(DEPTH, WIDTH)).expect("file");
    fs_err::write(dir.join("narrow.yaml"), dag(DEPTH, 1)).expect("file");
    fs_err::write(dir.join("big.yaml"), dag(100, WIDTH)).expect("file");
    let uri = studio.uri();
    let run = |args: &'static [&'static str]| {
        let (dir, uri) = (dir.to_owned(), uri.clone());
        tokio::task::spawn_blocking(move || acgs(&dir, &uri, args))
    };
    let mut wide = Vec::new();
    for _ in 0..RUNS {
        wide.push(
            run(&["run", "wide.yaml", "--yes"])
                .await
                .expect("wide run")
                .0,
        );
    }
    let mut spans = Vec::new();
    for _ in 0..RUNS {
        let (_, stderr) = run(&["--json", "run", "wide.yaml", "--yes"])
            .await
            .expect("wide run");
        spans.push(steps_span(&stderr));
    }
    let narrow = run(&["run", "narrow.yaml", "--yes"])
        .await
        .expect("narrow run")
        .0;
    let validate: Vec<Duration> = (0..VALIDATE_RUNS)
        .map(|_| acgs(dir, &uri, &["validate", "big.yaml"]).0)
        .collect();
    let depth = u32::try_from(DEPTH).expect("depth");
    let nominal = LATENCY * depth;
    let (critical, round_trip) = fake_critical_path(&uri).await;
    let wide_median = median(wide.clone());
    let span_median = median(spans);
    let over = |took: Duration, path: Duration| {
        let permille =
            (took.as_micros().saturating_sub(path.as_micros())) * 1000 / path.as_micros();
        format!("{}.{}%", permille / 10, permille % 10)
    };
    let report = format!(
        "50 steps, width {WIDTH}, {} ms per request; the fake's own round trip {} ms (median)\n\
         critical path: {} ms (the DAG driven by a bare HTTP client; {} ms nominal)\n\
         max_parallel 10: {RUNS} runs, min {} ms, median {} ms (critical path + {}; nominal + {})\n\
         max_parallel 10, steps only (first submit to last done, --json): median {} ms (critical path + {})\n\
         max_parallel 1: {} ms (ratio sequential / parallel: {}.{:02})\n\
         acgs validate, 1,000 steps: {VALIDATE_RUNS} runs, min {} ms, median {} ms\n",
        LATENCY.as_millis(),
        ms(round_trip),
        ms(critical),
        nominal.as_millis(),
        ms(*wide.iter().min().expect("runs")),
        ms(wide_median),
        over(wide_median, critical),
        over(wide_median, nominal),
        ms(span_median),
        over(span_median, critical),
        ms(narrow),
        narrow.as_millis() / wide_median.as_millis().max(1),
        (narrow.as_millis() * 100 / wide_median.as_millis().max(1)) % 100,
        ms(*validate.iter().min().expect("runs")),
        ms(median(validate)),
    );
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes()).expect("stdout");
}

/// One wide run with debug timings on stderr (for finding overhead; not part of the report).
async fn profile(studio: &FakeStudio) {
    let sandbox = tempfile::tempdir().expect("sandbox");
    fs_err::write(sandbox.path().join("wide.yaml"), dag(DEPTH, WIDTH)).expect("file");
    let (took, _) = acgs(
        sandbox.path(),
        &studio.uri(),
        &["--json", "run", "wide.yaml", "--yes"],
    );
    std::io::Write::write_all(
        &mut std::io::stdout(),
        format!("{} ms\n", ms(took)).as_bytes(),
    )
    .expect("stdout");
}
