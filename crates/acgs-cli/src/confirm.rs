//! Spending confirmation — `--yes`, or one question on the terminal when stderr is a TTY; without
//! either the answer is "nobody can confirm" (exit 4 before anything is sent) — and the user's
//! `alert_command`, run on every spend alert.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use std::collections::BTreeMap;
use std::time::Duration;

use acgs_core::Usd;
use acgs_engine::{AlertHook, Confirm, ConfirmAnswer, Interrupt, Signal, SpendAlert};

use crate::ui::Ui;

/// Confirms on the terminal.
#[derive(Debug, Clone)]
pub(crate) struct TerminalConfirm {
    /// `--yes` was given.
    pub yes: bool,
    /// The terminal (its progress line is cleared before the question).
    pub ui: Ui,
    /// Ctrl-C and SIGTERM, which the question races.
    pub interrupt: Interrupt,
}

impl TerminalConfirm {
    /// Ask `question` once (`--yes` answers yes; without a terminal nobody can answer; a signal
    /// while waiting answers for it).
    pub(crate) fn ask(&self, question: &str) -> ConfirmAnswer {
        if self.yes {
            return ConfirmAnswer::Yes;
        }
        if !std::io::stderr().is_terminal() || !std::io::stdin().is_terminal() {
            return ConfirmAnswer::Unavailable;
        }
        self.ui.prompt(&format!("{question}? [y/N] "));
        match read_line_or_signal(&self.interrupt) {
            Answer::Line(answer) if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") => {
                ConfirmAnswer::Yes
            }
            Answer::Line(_) => ConfirmAnswer::No,
            Answer::Signal(signal) => ConfirmAnswer::Interrupted(signal),
            Answer::Closed => ConfirmAnswer::Unavailable,
        }
    }
}

/// What a prompt got.
pub(crate) enum Answer {
    /// A line (without its newline).
    Line(String),
    /// Ctrl-C or SIGTERM came first.
    Signal(Signal),
    /// Standard input ended or failed.
    Closed,
}

/// One line of standard input, or the signal that came first. The line is read on its own
/// thread, since a blocked read cannot be interrupted; on a signal that thread is left to the
/// process's exit.
///
/// Kept by hand rather than taken from `dialoguer`/`rpassword`: both block in a read of their
/// own that no signal ends — rpassword answers Ctrl-C itself but not SIGTERM, and restores the
/// echo only when its read returns — so neither can race SIGINT and SIGTERM as acgs must
/// (`tests/it/prompts.rs`: 130 and 143 within a second, the hidden prompt's echo restored).
pub(crate) fn read_line_or_signal(interrupt: &Interrupt) -> Answer {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("acgs-prompt".into())
        .spawn(move || {
            let mut line = String::new();
            let read = std::io::stdin().lock().read_line(&mut line);
            let _ = tx.send(read.ok().filter(|n| *n > 0).map(|_| line));
        });
    if reader.is_err() {
        return Answer::Closed;
    }
    loop {
        if let Some(signal) = interrupt.signal() {
            let _ = writeln!(std::io::stderr());
            return Answer::Signal(signal);
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(line)) => return Answer::Line(line.trim_end_matches(['\r', '\n']).to_owned()),
            Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Answer::Closed;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

impl Confirm for TerminalConfirm {
    fn confirm(&self, what: &str, estimate: Usd, warn: bool) -> ConfirmAnswer {
        let note = if warn {
            " (at or above your warn_threshold)"
        } else {
            ""
        };
        self.ask(&format!("Spend up to ${estimate} on {what}{note}"))
    }
}

/// Runs the user's `alert_command` (argv, no shell, an environment of `PATH`, `HOME` and `XDG_*`,
/// 30 s, output discarded) with the fraction, the spend, the limit and the day appended, in the
/// background.
pub(crate) struct AlertCommand {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
}

impl AlertCommand {
    /// `argv` (empty: nothing runs) with the allowed part of `vars`.
    pub(crate) fn new(argv: &[String], vars: &BTreeMap<String, String>) -> Self {
        Self {
            argv: argv.to_vec(),
            env: acgs_credentials::command::limited_env(vars),
        }
    }
}

impl AlertHook for AlertCommand {
    fn alert(&self, alert: &SpendAlert) {
        if self.argv.is_empty() {
            return;
        }
        let (argv, env) = (self.argv.clone(), self.env.clone());
        let fraction = alert.fraction_permille;
        let args = [
            format!("{}.{:03}", fraction / 1000, fraction % 1000),
            alert.spent.to_string(),
            alert.limit.to_string(),
            alert.day.clone(),
        ];
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(reason) = acgs_credentials::command::run(
                &argv,
                &refs,
                &env,
                Duration::from_secs(30),
                8 * 1024,
            ) {
                tracing::warn!(%reason, "alert_command failed");
            }
        });
    }
}
