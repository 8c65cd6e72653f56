//! Spending confirmation: `--yes`, or one question on the terminal when stderr is a TTY; without
//! either the answer is "nobody can confirm" (exit 4 before anything is sent).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use acgs_core::Usd;
use acgs_engine::{Confirm, ConfirmAnswer};

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
