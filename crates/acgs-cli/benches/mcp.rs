//! `acgs mcp` as a whole process on stdio (targets: start to ready ≤ 20 ms; a `tools/list` round
//! trip ≤ 2 ms median; a `generate` through MCP within 5 % of the same request through the CLI).
//!
//! `cargo bench -p acgs-cli --bench mcp` starts the bench-profile binary in a sandbox with a fal
//! key and the fake fal server (queue answered at once), then measures:
//! - start to ready: spawn → `initialize` answered, over fresh processes;
//! - `tools/list`: round trips on one running server;
//! - generate: a `tools/call generate` round trip on one running server, beside the same request
//!   as `acgs image … --yes --json`, a whole process each.
//!
//! JSON-RPC is written by hand on the pipes: what is timed is acgs, not a client library.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::FakeFal;

const STARTS: usize = 51;
const LISTS: usize = 1001;
const GENERATES: usize = 21;

/// A sandbox: its own home, configuration (the fake's address, loopback allowed, a daily limit
/// no run of the bench reaches: `acgs mcp` reads only the user file) and state.
struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acgs"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.root.join("home"))
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("XDG_STATE_HOME", self.root.join("state"))
            .env("FAL_KEY", FAL_KEY)
            .current_dir(&self.root);
        cmd
    }
}

/// A running `acgs mcp` and its pipes.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    fn start(sandbox: &Sandbox) -> Self {
        let mut child = sandbox
            .command(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("acgs mcp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
            next_id: 0,
        }
    }

    /// Send a request and wait for its answer (notifications before it are skipped).
    fn request(&mut self, method: &str, params: &serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let line =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.stdin, "{line}").expect("write");
        loop {
            let mut answer = String::new();
            assert!(
                self.stdout.read_line(&mut answer).expect("read") > 0,
                "the server left"
            );
            let value: serde_json::Value = serde_json::from_str(&answer).expect("json");
            if value["id"] == id {
                return value;
            }
        }
    }

    fn initialize(&mut self) {
        let params = serde_json::json!({
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        });
        let answer = self.request("initialize", &params);
        assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
        writeln!(
            self.stdin,
            "{}",
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .expect("write");
    }

    fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn ms(d: Duration) -> String {
    let us = d.as_micros();
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// min, median and p90 of `times`, in milliseconds.
fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let n = times.len();
    format!(
        "min {} ms, median {} ms, p90 {} ms",
        ms(times[0]),
        ms(times[n / 2]),
        ms(times[n * 9 / 10])
    )
}

fn start_to_ready(sandbox: &Sandbox) -> String {
    let mut times = Vec::new();
    for i in 0..STARTS + 3 {
        let started = Instant::now();
        let mut server = Server::start(sandbox);
        server.initialize();
        let took = started.elapsed();
        server.stop();
        if i >= 3 {
            times.push(took);
        }
    }
    format!(
        "start to ready, {STARTS} processes: {}",
        summary(&mut times)
    )
}

fn tools_list(sandbox: &Sandbox) -> String {
    let mut server = Server::start(sandbox);
    server.initialize();
    let mut times = Vec::new();
    for _ in 0..LISTS {
        let started = Instant::now();
        let answer = server.request("tools/list", &serde_json::json!({}));
        times.push(started.elapsed());
        assert_eq!(answer["result"]["tools"].as_array().map(Vec::len), Some(8));
    }
    server.stop();
    format!("tools/list, {LISTS} round trips: {}", summary(&mut times))
}

fn generates(sandbox: &Sandbox) -> (String, String) {
    let prompt = "a lighthouse at dusk";
    let mut server = Server::start(sandbox);
    server.initialize();
    let params = serde_json::json!({"name": "generate", "arguments": {
        "model": "flux_dev", "prompt": prompt, "max_cost_usd": "1.00"}});
    let mut mcp = Vec::new();
    for i in 0..GENERATES + 2 {
        let started = Instant::now();
        let answer = server.request("tools/call", &params);
        let took = started.elapsed();
        assert_ne!(answer["result"]["isError"], true, "{answer}");
        if i >= 2 {
            mcp.push(took);
        }
    }
    server.stop();
    let mut cli = Vec::new();
    for i in 0..GENERATES + 2 {
        let started = Instant::now();
        let status = sandbox
            .command(&["image", prompt, "--model", "flux_dev", "--yes", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("acgs image");
        let took = started.elapsed();
        assert!(status.success());
        if i >= 2 {
            cli.push(took);
        }
    }
    (
        format!(
            "generate through MCP (one running server), {GENERATES} calls: {}",
            summary(&mut mcp)
        ),
        format!(
            "the same through the CLI (whole processes), {GENERATES} runs: {}",
            summary(&mut cli)
        ),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = runtime.block_on(
        FakeFal::builder("fal-ai/flux/dev")
            .queued(0)
            .in_progress(0)
            .start(),
    );
    let root = std::env::temp_dir().join(format!("acgs-mcp-bench-{}", std::process::id()));
    for sub in ["home", "config", "state"] {
        fs_err::create_dir_all(root.join(sub)).expect("sandbox");
    }
    let config = format!(
        "[default.network]\nallow_http_loopback = true\n[default.providers.fal]\nqueue_url = \"{}\"\n[default.cost_management]\ndaily_limit = 100000\n",
        fake.uri()
    );
    fs_err::create_dir_all(root.join("config/acgs")).expect("config folder");
    fs_err::write(root.join("config/acgs/config.toml"), config).expect("config");
    let sandbox = Sandbox { root };
    let mut report = vec![start_to_ready(&sandbox), tools_list(&sandbox)];
    let (mcp, cli) = generates(&sandbox);
    report.push(mcp);
    report.push(cli);
    let text = report.join("\n") + "\n";
    std::io::stdout()
        .write_all(text.as_bytes())
        .expect("stdout");
    let _ = fs_err::remove_dir_all(Path::new(&sandbox.root));
}
