//! Questions on a real terminal (a pseudo-terminal): Ctrl-C (SIGINT) and SIGTERM while acgs
//! waits for an answer end it at once with 130 and 143, and nothing is reserved.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acgs_testkit::fal::FakeFal;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

use super::{ENDPOINT, ledger_rows, sandbox_for};

/// A pseudo-terminal: the controlling side and the terminal side.
fn pty() -> (OwnedFd, OwnedFd) {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let terminal = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )
    .expect("terminal side");
    (master, terminal)
}

/// Everything written to the terminal, gathered on a thread.
fn gather(master: OwnedFd) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        // Ends with an error once the last terminal-side descriptor is closed.
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

/// `command` with stdout and stderr on the terminal side of the pseudo-terminal `pair`, and
/// stdin too when `stdin_too` (else none): the child, what it writes, and the terminal side (to
/// read its modes).
fn on_terminal(
    mut command: tokio::process::Command,
    stdin_too: bool,
    (master, terminal): (OwnedFd, OwnedFd),
) -> (tokio::process::Child, Arc<Mutex<String>>, OwnedFd) {
    let side = || Stdio::from(terminal.try_clone().expect("fd"));
    command.stdout(side()).stderr(side());
    command.stdin(if stdin_too { side() } else { Stdio::null() });
    let child = command.spawn().expect("acgs starts");
    (child, gather(master), terminal)
}

/// Send `signal` and wait for the exit (at most 10 s): its status, and how long after the signal.
async fn signal_and_wait(
    child: &mut tokio::process::Child,
    signal: rustix::process::Signal,
) -> (std::process::ExitStatus, Duration) {
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(child.id().expect("running")).expect("pid"))
            .expect("pid");
    let sent = Instant::now();
    rustix::process::kill_process(pid, signal).expect("signal");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("acgs ends")
        .expect("status");
    (status, sent.elapsed())
}

async fn signal_at_the_spend_question(signal: rustix::process::Signal, expected: i32) {
    let fake = FakeFal::builder(ENDPOINT).start().await;
    let mut sb = sandbox_for(&fake);
    // flux_dev's $0.025 is under the default confirm_above: lower it so that acgs asks.
    sb.set_env("ACGS_COST_MANAGEMENT__CONFIRM_ABOVE", "0");
    let (mut child, seen, _terminal) =
        on_terminal(sb.command(&["image", "a kite over the dunes"]), true, pty());
    let asked = Instant::now();
    while !seen.lock().expect("lock").contains("Spend up to") {
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "no question: {}",
            seen.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = signal_and_wait(&mut child, signal).await;
    assert!(
        took < Duration::from_secs(1),
        "ended {took:?} after the signal"
    );
    assert_eq!(
        status.code(),
        Some(expected),
        "{}",
        seen.lock().expect("lock")
    );
    assert!(ledger_rows(&sb).await.is_empty(), "nothing was reserved");
    assert_eq!(fake.submits().await, 0);
    let shown = seen.lock().expect("lock").clone();
    assert!(
        !shown.contains("authorizingSpend"),
        "the question is on its own line: {shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_at_the_spend_question_exits_130_at_once() {
    signal_at_the_spend_question(rustix::process::Signal::INT, 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_at_the_spend_question_exits_143_at_once() {
    signal_at_the_spend_question(rustix::process::Signal::TERM, 143).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_job_shows_a_moving_spinner_with_its_elapsed_time() {
    let fake = FakeFal::builder(ENDPOINT)
        .outcome(acgs_testkit::fal::Outcome::KeepRunning)
        .start()
        .await;
    let mut sb = sandbox_for(&fake);
    sb.set_env("TERM", "xterm-256color");
    let (mut child, seen, _terminal) = on_terminal(
        sb.command(&["image", "a kite over the dunes", "--yes"]),
        false,
        pty(),
    );
    let started = Instant::now();
    // No event arrives while fal says IN_PROGRESS: the time still counts on the terminal.
    while !seen.lock().expect("lock").contains("3s [main]") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no moving elapsed time ({:?}): {:?}",
            child.try_wait(),
            seen.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = signal_and_wait(&mut child, rustix::process::Signal::TERM).await;
    assert_eq!(status.code(), Some(143));
    let shown = seen.lock().expect("lock").clone();
    assert!(
        shown.contains("1s [main]") && shown.contains("2s [main]"),
        "{shown:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_at_the_hidden_key_prompt_exits_143_and_restores_the_echo() {
    let sb = acgs_e2e::Sandbox::new();
    let echoing = |fd: &OwnedFd| {
        rustix::termios::tcgetattr(fd)
            .is_ok_and(|t| t.local_modes.contains(rustix::termios::LocalModes::ECHO))
    };
    let pair = pty();
    assert!(echoing(&pair.1), "a new terminal echoes");
    let (mut child, seen, watch) = on_terminal(sb.command(&["keys", "set", "FAL_KEY"]), true, pair);
    let asked = Instant::now();
    while !seen.lock().expect("lock").contains("input hidden") || echoing(&watch) {
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "no hidden prompt: {}",
            seen.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = signal_and_wait(&mut child, rustix::process::Signal::TERM).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(status.code(), Some(143));
    assert!(echoing(&watch), "the terminal echoes again");
    assert!(
        !sb.root().join("config/acgs/credentials").exists(),
        "nothing was stored"
    );
}
