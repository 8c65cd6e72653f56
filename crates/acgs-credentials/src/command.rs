//! Running a configured command (`key_command`, `alert_command`) safely: an argv array run without
//! a shell, stdin closed, stderr discarded, an environment of only `PATH`, `HOME` and `XDG_*`, a
//! timeout, and at most `cap` bytes of output.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The part of an environment a configured command sees.
#[must_use]
pub fn limited_env(vars: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    vars.iter()
        .filter(|(k, _)| matches!(k.as_str(), "PATH" | "HOME") || k.starts_with("XDG_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Run `argv` with `extra` arguments appended; its stdout (at most `cap` bytes) on success, or why
/// it failed (never its output).
pub fn run(
    argv: &[String],
    extra: &[&str],
    env: &BTreeMap<String, String>,
    timeout: Duration,
    cap: usize,
) -> Result<Vec<u8>, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the command is empty".to_owned())?;
    let mut child = Command::new(program)
        .args(args)
        .args(extra)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start `{program}` ({})", e.kind()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "no output pipe".to_owned())?;
    let limit = u64::try_from(cap.saturating_add(1)).unwrap_or(u64::MAX);
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.take(limit).read_to_end(&mut buf).map(|_| buf)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.kind().to_string())? {
            break status;
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = reader
        .join()
        .map_err(|_| "output reader failed".to_owned())?
        .map_err(|e| e.kind().to_string())?;
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    if output.len() > cap {
        return Err(format!("printed more than {} KiB", cap / 1024));
    }
    Ok(output)
}
