//! `acgs completions SHELL` and `acgs man`: what `cargo xtask dist` ships, from the binary
//! itself, so that an installed acgs can set up its own shell.

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::failure::{CliError, CmdResult};
use crate::ui::Ui;

/// The completion script of `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell, ui: &Ui) -> CmdResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "acgs", &mut script);
    ui.result_text(&String::from_utf8_lossy(&script))
        .map_err(|e| CliError::from(e).into())
}

/// The manual page (roff) on stdout.
pub(crate) fn man(ui: &Ui) -> CmdResult {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(CliError::from)?;
    ui.result_text(&String::from_utf8_lossy(&page))
        .map_err(|e| CliError::from(e).into())
}
