//! Whole-process timing of `acgs models --json` (the target is a median ≤ 20 ms).
//!
//! `cargo bench -p acgs-cli --bench startup` builds the binary with the bench profile and runs it
//! repeatedly in an empty sandbox (no configuration, no state), printing min, median and p90.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 101;

fn main() {
    let bin = env!("CARGO_BIN_EXE_acgs");
    let sandbox = std::env::temp_dir().join(format!("acgs-startup-bench-{}", std::process::id()));
    let home = sandbox.join("home");
    let _ = fs_err::create_dir_all(&home);
    let run = || {
        let started = Instant::now();
        let status = Command::new(bin)
            .args(["models", "--json"])
            .env_clear()
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", sandbox.join("config"))
            .env("XDG_STATE_HOME", sandbox.join("state"))
            .current_dir(&sandbox)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("acgs starts");
        assert!(status.success(), "acgs models --json failed");
        started.elapsed()
    };
    for _ in 0..5 {
        run();
    }
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    times.sort();
    let ms = |d: Duration| {
        let us = d.as_micros();
        format!("{}.{:02}", us / 1000, (us % 1000) / 10)
    };
    let report = format!(
        "acgs models --json, {RUNS} runs: min {} ms, median {} ms, p90 {} ms\n",
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS * 9 / 10])
    );
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes()).expect("stdout");
    let _ = fs_err::remove_dir_all(&sandbox);
}
