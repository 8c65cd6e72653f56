//! One module per command.

pub(crate) mod audit;
pub(crate) mod doctor;
pub(crate) mod generate;
pub(crate) mod guard;
pub(crate) mod init;
pub(crate) mod keys;
pub(crate) mod manual;
pub(crate) mod mcp;
pub(crate) mod models;
pub(crate) mod pipeline;
pub(crate) mod resume;
pub(crate) mod speech;
pub(crate) mod spend;
pub(crate) mod text;

use std::io::Read as _;
use std::path::Path;

use acgs_core::provider::EventSink;

use crate::failure::{CliError, Failure};
use crate::ui::Ui;

/// The most text a `--file` may hold.
const TEXT_FILE_CAP: u64 = 4 * 1024 * 1024;

/// A text given on the command line, or read from `file`: a regular file (never a FIFO, which
/// would block) of at most 4 MiB of UTF-8.
pub(crate) fn text_argument(text: Option<&String>, file: Option<&Path>) -> Result<String, Failure> {
    if let Some(text) = text {
        return Ok(text.clone());
    }
    let path = file.ok_or_else(|| CliError::Usage("give a text or --file".into()))?;
    let unreadable = |e: std::io::Error| {
        CliError::Usage(format!("cannot read {}: {}", path.display(), e.kind()))
    };
    if !fs_err::metadata(path).map_err(unreadable)?.is_file() {
        return Err(CliError::Usage(format!("{} is not a regular file", path.display())).into());
    }
    let mut bytes = Vec::new();
    fs_err::File::open(path)
        .map_err(unreadable)?
        .take(TEXT_FILE_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > TEXT_FILE_CAP {
        return Err(CliError::Usage(format!("{} is larger than 4 MiB", path.display())).into());
    }
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{} is not UTF-8 text", path.display())).into())
}

/// Progress events shown on the terminal.
pub(crate) fn progress_sink(ui: &Ui) -> EventSink {
    let ui = ui.clone();
    EventSink::new(move |event| ui.progress(&event))
}
