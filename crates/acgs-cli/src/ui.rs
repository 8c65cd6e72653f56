//! Everything acgs writes to the terminal goes through here, and through the redactor.
//!
//! stdout carries the result only (a table, or one JSON document with `--json`); progress,
//! warnings, logs and errors go to stderr, as JSON objects `{ts, type, …}` with `--json`.

use std::io::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use acgs_core::UserFacing;
use acgs_core::provider::ProgressEvent;
use acgs_core::redact::Redactor;
use serde_json::{Value, json};

/// The version of the `--json` result shapes (`docs/cli.md`); raised when a field changes meaning
/// or disappears, not when one is added.
pub(crate) const JSON_SCHEMA_VERSION: u32 = 1;

/// The terminal, with the redactor in front of it.
#[derive(Debug, Clone)]
pub(crate) struct Ui {
    redactor: Redactor,
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    color: bool,
    /// stderr is a terminal that can move its cursor (and not `--json`): progress is a spinner
    /// with the elapsed time, redrawn in place.
    live: bool,
    /// The latest status of every step still running (pipelines show them side by side).
    active: std::sync::Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    /// A model's words were written on stdout as they came (`acgs text`).
    streamed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The spinner on stderr while steps run. One for the process, as the terminal is one: log
/// lines (`logging`) and every other stderr line are written around it.
static SPINNER: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// How often the spinner moves (and its elapsed time counts) when no event arrives.
const SPINNER_TICK: Duration = Duration::from_millis(120);

fn spinner() -> MutexGuard<'static, Option<indicatif::ProgressBar>> {
    SPINNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Write on stderr around the spinner: it is hidden while `write` runs, then drawn again.
pub(crate) fn around_spinner(write: impl FnOnce()) {
    let bar = spinner().clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Take the spinner off the terminal (a question or the result comes next).
fn clear_spinner() {
    if let Some(bar) = spinner().take() {
        bar.finish_and_clear();
    }
}

/// What `--color` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColorChoice {
    /// Colour on a terminal unless `NO_COLOR` is set or `TERM=dumb`; `CLICOLOR_FORCE` forces it.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Whether stderr gets colour: `choice`, then `NO_COLOR` (any value) over `CLICOLOR_FORCE`
/// (any value but `0`) over `TERM` (unset or `dumb`: none) over whether stderr is a terminal.
#[must_use]
pub(crate) fn wants_color(
    choice: ColorChoice,
    var: impl Fn(&str) -> Option<String>,
    terminal: bool,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if var("NO_COLOR").is_some_and(|v| !v.is_empty()) => false,
        ColorChoice::Auto if var("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") => {
            true
        }
        ColorChoice::Auto => terminal && var("TERM").is_some_and(|t| t != "dumb"),
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Remove control, bidi and invisible characters from untrusted text before it reaches a terminal.
#[must_use]
pub(crate) fn printable(text: &str) -> String {
    acgs_guard::sanitize(text).text.replace(['\n', '\t'], " ")
}

/// [`printable`], line by line: a message of several lines (a pipeline's problems) keeps them.
#[must_use]
pub(crate) fn printable_lines(text: &str) -> String {
    // A line keeps its indentation (a problem under its file, a hint under its problem):
    // `printable` trims it.
    text.lines()
        .map(|line| {
            let rest = line.trim_start_matches(' ');
            format!("{}{}", " ".repeat(line.len() - rest.len()), printable(rest))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Ui {
    /// A terminal writer.
    #[must_use]
    /// `terminal`: stderr is a terminal that can redraw a line (not `TERM=dumb`); `color` from
    /// [`wants_color`].
    pub(crate) fn new(
        redactor: Redactor,
        (json, quiet, verbose): (bool, bool, u8),
        terminal: bool,
        color: bool,
    ) -> Self {
        Self {
            redactor,
            json,
            quiet,
            verbose,
            color: color && !json,
            live: terminal && !json,
            active: std::sync::Arc::default(),
            streamed: std::sync::Arc::default(),
        }
    }

    /// Whether a model's words were shown on stdout as they came.
    pub(crate) fn streamed_text(&self) -> bool {
        self.streamed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A piece of a model's text, on stdout as it comes: made safe for a terminal (control,
    /// bidi and invisible characters removed; line breaks kept) and redacted. The whole text is
    /// checked as model output afterwards, like any.
    fn stream_text(&self, piece: &str) {
        // The guard's deny set, character by character (its `sanitize` would also trim the
        // spaces at a piece's edges, which belong to the text).
        let safe: String = piece
            .chars()
            .filter(|c| !acgs_guard::is_denied(*c))
            .collect();
        let shown = self.redactor.redact(&safe).into_owned();
        clear_spinner();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(shown.as_bytes());
        let _ = out.flush();
        self.streamed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The redactor (shared with logging and the HTTP layer).
    #[must_use]
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Write the result to stdout. A closed pipe is reported as `BrokenPipe` for a quiet exit 0.
    pub(crate) fn result_text(&self, text: &str) -> std::io::Result<()> {
        clear_spinner();
        let mut out = std::io::stdout().lock();
        out.write_all(self.redactor.redact(text).as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Write the result as one JSON document; an object carries `schema_version`
    /// ([`JSON_SCHEMA_VERSION`]), so that scripts can tell a shape they know from a newer one.
    pub(crate) fn result_json(&self, value: &Value) -> std::io::Result<()> {
        let mut value = value.clone();
        if let Some(fields) = value.as_object_mut() {
            fields
                .entry("schema_version")
                .or_insert(json!(JSON_SCHEMA_VERSION));
        }
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| "null".into());
        self.result_text(&text)
    }

    fn stderr_line(&self, line: &str) {
        // One write per line: stderr is unbuffered, and progress lines come by the hundred.
        let mut shown = self.redactor.redact(line).into_owned();
        shown.push('\n');
        around_spinner(|| {
            let _ = std::io::stderr().lock().write_all(shown.as_bytes());
        });
    }

    /// On a terminal: show `text` beside the spinner, fitted to the terminal's width.
    fn spin(&self, text: &str) {
        let shown = self.redactor.redact(text).into_owned();
        let mut bar = spinner();
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(SPINNER_TICK);
            bar
        });
        bar.set_message(shown);
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// A warning (shown unless `--quiet`).
    pub(crate) fn warning(&self, message: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            self.stderr_line(
                &json!({"ts": now(), "type": "warning", "message": message}).to_string(),
            );
        } else {
            let message = printable_lines(message);
            self.stderr_line(&format!("{} {message}", self.paint("33", "warning:")));
        }
    }

    /// A question on the terminal, on a line of its own (the progress line is cleared first).
    pub(crate) fn prompt(&self, question: &str) {
        clear_spinner();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(printable(question).as_bytes());
        let _ = err.flush();
    }

    /// A note about the result (shown unless `--quiet`).
    pub(crate) fn note(&self, message: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            self.stderr_line(&json!({"ts": now(), "type": "note", "message": message}).to_string());
        } else {
            self.stderr_line(message);
        }
    }

    /// A progress event (text lines or JSON objects; provider text is made printable). Spend
    /// alerts are shown as warnings.
    pub(crate) fn progress(&self, event: &ProgressEvent) {
        if event.status == "text" {
            if let Some(piece) = &event.message {
                self.stream_text(piece);
            }
            return;
        }
        if matches!(event.status.as_str(), "spend_alert" | "spend_warning") {
            self.warning(event.message.as_deref().unwrap_or("spend alert"));
            return;
        }
        if self.quiet {
            return;
        }
        let message = event.message.as_deref().map(printable);
        if self.json {
            let mut line = json!({
                "ts": now(), "type": "progress", "run_id": event.run_id, "step": event.step,
                "stage": event.stage, "status": event.status,
            });
            if let Some(pos) = event.queue_position {
                line["queue_position"] = json!(pos);
            }
            if let Some(msg) = message {
                line["message"] = json!(msg);
            }
            self.stderr_line(&line.to_string());
            return;
        }
        let mut text = format!(
            "{} {}",
            self.paint("36", &format!("[{}]", event.step)),
            event.status.replace('_', " ")
        );
        if let Some(pos) = event.queue_position {
            text.push_str(&format!(" (position {pos})"));
        }
        if let Some(msg) = message {
            text.push_str(&format!(": {msg}"));
        }
        if !self.live {
            self.stderr_line(&text);
            return;
        }
        let Ok(mut active) = self.active.lock() else {
            return;
        };
        if event.stage == acgs_core::provider::Stage::Done {
            active.remove(&event.step);
            let idle = active.is_empty();
            drop(active);
            self.stderr_line(&text);
            if idle {
                clear_spinner();
            }
            return;
        }
        active.insert(event.step.clone(), text);
        let line = active.values().cloned().collect::<Vec<_>>().join(" · ");
        drop(active);
        self.spin(&line);
    }

    /// Report an error: code, one sentence, a hint; details only with `-v`. With `--json` the error
    /// is also the result document on stdout, unless the command already printed its result.
    /// Returns the exit code.
    pub(crate) fn error(&self, error: &dyn UserFacing, result_printed: bool) -> i32 {
        let code = error.code();
        let exit = error.exit_code();
        // Messages may carry names from files and answers from providers: never escapes.
        let message = printable_lines(&error.to_string());
        let hint = error.hint().map(|h| printable_lines(&h));
        let detail = (self.verbose > 0).then(|| error.detail()).flatten();
        if self.json {
            let mut doc = json!({"code": code, "message": message, "exit_code": exit});
            if let Some(h) = &hint {
                doc["hint"] = json!(h);
            }
            if let Some(d) = &detail {
                doc["detail"] = json!(printable(d));
            }
            if !error.problems().is_empty() {
                // serde_json escapes control characters: names from the file cannot steer a terminal.
                doc["problems"] = json!(error.problems());
            }
            let mut line = doc.clone();
            line["ts"] = json!(now());
            line["type"] = json!("error");
            self.stderr_line(&line.to_string());
            if !result_printed {
                let _ = self.result_json(&json!({ "error": doc }));
            }
        } else {
            self.stderr_line(&format!(
                "{} {message}",
                self.paint("31", &format!("error[{code}]:"))
            ));
            if let Some(h) = hint {
                self.stderr_line(&format!("  hint: {h}"));
            }
            if let Some(d) = detail {
                self.stderr_line(&format!("  detail: {}", printable(&d)));
            }
        }
        exit
    }
}

#[cfg(test)]
mod tests {
    use super::{ColorChoice, printable_lines, wants_color};

    #[test]
    fn lines_keep_their_indentation_and_lose_their_escapes() {
        assert_eq!(
            printable_lines("f has 1 problem\n  f:3: bad \u{1b}[31mkey\n    hint: x"),
            "f has 1 problem\n  f:3: bad [31mkey\n    hint: x"
        );
    }

    #[test]
    fn colour_follows_the_flag_then_no_color_then_clicolor_force_then_the_terminal() {
        use ColorChoice::{Always, Auto, Never};
        type Env = &'static [(&'static str, &'static str)];
        let cases: [(ColorChoice, Env, bool, bool); 11] = [
            (Auto, &[("TERM", "xterm")], true, true),
            (Auto, &[("TERM", "xterm")], false, false),
            (Auto, &[], true, false),
            (Auto, &[("TERM", "dumb")], true, false),
            (Auto, &[("TERM", "xterm"), ("NO_COLOR", "1")], true, false),
            (Auto, &[("TERM", "xterm"), ("NO_COLOR", "")], true, true),
            (Auto, &[("CLICOLOR_FORCE", "1")], false, true),
            (Auto, &[("CLICOLOR_FORCE", "0")], false, false),
            (
                Auto,
                &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
                true,
                false,
            ),
            (Always, &[("NO_COLOR", "1")], false, true),
            (
                Never,
                &[("CLICOLOR_FORCE", "1"), ("TERM", "xterm")],
                true,
                false,
            ),
        ];
        for (choice, env, terminal, expected) in cases {
            let var = |name: &str| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            };
            assert_eq!(
                wants_color(choice, var, terminal),
                expected,
                "{choice:?} {env:?} terminal={terminal}"
            );
        }
    }
}
