//! One module per command.

pub(crate) mod audit;
pub(crate) mod catalogue;
pub(crate) mod doctor;
pub(crate) mod generate;
pub(crate) mod guard;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod keys;
pub(crate) mod manual;
pub(crate) mod mcp;
pub(crate) mod models;
pub(crate) mod pipeline;
pub(crate) mod reconcile;
pub(crate) mod resume;
pub(crate) mod runs;
pub(crate) mod serve;
pub(crate) mod speech;
pub(crate) mod spend;
pub(crate) mod text;

use std::io::{IsTerminal as _, Read};
use std::path::Path;

use acgs_core::provider::EventSink;

use crate::failure::{CliError, Failure};
use crate::ui::Ui;

/// The most text a `--file` may hold.
const TEXT_FILE_CAP: u64 = 4 * 1024 * 1024;

/// A text given on the command line, read from `file` — a regular file (never a FIFO, which
/// would block) — or from standard input (`-` as the text or the file, or nothing given while
/// input is piped); at most 4 MiB of UTF-8.
pub(crate) fn text_argument(text: Option<&String>, file: Option<&Path>) -> Result<String, Failure> {
    let from_stdin = match (text, file) {
        (Some(text), _) if text != "-" => return Ok(text.clone()),
        (Some(_), _) => true,
        (None, Some(path)) => path.as_os_str() == "-",
        (None, None) => !std::io::stdin().is_terminal(),
    };
    if from_stdin {
        return read_capped_text(std::io::stdin().lock(), "standard input");
    }
    let Some(path) = file else {
        return Err(CliError::Usage(
            "give the text, --file PATH, or pipe it in (`-` reads standard input)".into(),
        )
        .into());
    };
    let shown = path.display().to_string();
    let unreadable =
        |e: std::io::Error| CliError::Usage(format!("cannot read {shown}: {}", io_reason(&e)));
    let file = acgs_core::files::open_regular(path).map_err(unreadable)?;
    read_capped_text(file, &shown)
}

/// At most [`TEXT_FILE_CAP`] bytes of UTF-8 from `source`, named `shown` in errors.
fn read_capped_text(source: impl Read, shown: &str) -> Result<String, Failure> {
    let bytes = acgs_core::files::read_capped(source, TEXT_FILE_CAP).map_err(|e| {
        CliError::Usage(match e.kind() {
            std::io::ErrorKind::FileTooLarge => format!("{shown} is larger than 4 MiB"),
            _ => format!("cannot read {shown}: {}", io_reason(&e)),
        })
    })?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{shown} is not UTF-8 text")).into())
}

/// Why a file could not be read, in words (not Rust's "entity not found").
pub(crate) fn io_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidInput => "not a regular file".into(),
        std::io::ErrorKind::IsADirectory => "it is a folder".into(),
        kind => kind.to_string(),
    }
}

/// Progress events shown on the terminal.
pub(crate) fn progress_sink(ui: &Ui) -> EventSink {
    let ui = ui.clone();
    EventSink::new(move |event| ui.progress(&event))
}
