//! Spending confirmation — `--yes`, or one question on the terminal when stderr is a TTY; without
//! either the answer is "nobody can confirm" (exit 4 before anything is sent) — and the user's
//! `alert_command`, run on every spend alert.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use std::collections::BTreeMap;
use std::time::Duration;

use acgs_core::Usd;
use acgs_engine::{AlertHook, Confirm, ConfirmAnswer, SpendAlert};

/// Confirms on the terminal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TerminalConfirm {
    /// `--yes` was given.
    pub yes: bool,
}

impl TerminalConfirm {
    /// Ask `question` once (`--yes` answers yes; without a terminal nobody can answer).
    pub(crate) fn ask(&self, question: &str) -> ConfirmAnswer {
        if self.yes {
            return ConfirmAnswer::Yes;
        }
        if !std::io::stderr().is_terminal() || !std::io::stdin().is_terminal() {
            return ConfirmAnswer::Unavailable;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question}? [y/N] ");
        let _ = err.flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return ConfirmAnswer::Unavailable;
        }
        if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            ConfirmAnswer::Yes
        } else {
            ConfirmAnswer::No
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
