//! `acgs import CHAIN.yaml [-o FILE]`: a chain file of the Python suite converted into a
//! version-1 pipeline, written to a new file (never over an existing one, never through a link)
//! and checked; what could not be converted is listed with its line. Nothing is run.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use acgs_core::files::read_regular;
use serde_json::json;

use crate::app::App;
use crate::cli::ImportArgs;
use crate::failure::{CliError, CmdResult};

/// The largest chain file read.
const MAX_CHAIN_BYTES: u64 = 1024 * 1024;

/// `acgs import`.
pub(crate) fn run(app: &App, args: &ImportArgs) -> CmdResult {
    let from = app.env.cwd.join(&args.file);
    let shown = args.file.display().to_string();
    let bytes = read_regular(&from, MAX_CHAIN_BYTES).map_err(|e| {
        CliError::Usage(format!(
            "{}: {} (a chain file is a regular file of at most 1 MiB)",
            crate::ui::printable(&shown),
            e.kind()
        ))
    })?;
    let source = String::from_utf8(bytes).map_err(|_| {
        CliError::Usage(format!(
            "{} is not UTF-8 text",
            crate::ui::printable(&shown)
        ))
    })?;
    let imported = acgs_engine::pipeline::import_chain(&shown, &source, &app.catalog)
        .map_err(|p| CliError::Usage(format!("{}: {}", p.file, p.message)))?;
    let to = args
        .output
        .as_ref()
        .map_or_else(|| beside(&from), |o| app.env.cwd.join(o));
    write_new(&to, &imported.yaml)?;
    let check = app.planning_suite()?.load_pipeline(&to);
    let invalid: Vec<acgs_engine::Problem> = match &check {
        Ok(_) => Vec::new(),
        Err(acgs_engine::EngineError::Pipeline(problems)) => problems.problems.clone(),
        Err(other) => vec![acgs_engine::Problem {
            file: to.display().to_string(),
            line: None,
            step: None,
            code: "pipeline.invalid",
            message: other.to_string(),
            hint: None,
        }],
    };
    if app.ui.json {
        let doc = json!({
            "file": to.display().to_string(), "valid": invalid.is_empty(),
            "not_converted": imported.problems, "problems": invalid,
        });
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    let mut text = format!("wrote {}", to.display());
    let line = |p: &acgs_engine::Problem| {
        let at = p.line.map(|l| format!("line {l}: ")).unwrap_or_default();
        format!("\n  {at}{}", p.message)
    };
    if imported.problems.is_empty() {
        text.push_str("; every step was converted");
    } else {
        text.push_str("; not converted:");
        imported
            .problems
            .iter()
            .for_each(|p| text.push_str(&line(p)));
    }
    if invalid.is_empty() {
        text.push_str(&format!("\nnext: `acgs estimate {}`\n", to.display()));
    } else {
        text.push_str("\nthe pipeline needs these fixed before it runs:");
        invalid.iter().for_each(|p| text.push_str(&line(p)));
        text.push('\n');
    }
    app.ui
        .result_text(&crate::ui::printable_lines(&text))
        .map_err(|e| CliError::from(e).into())
}

/// `NAME.acgs.yaml` beside `chain`.
fn beside(chain: &Path) -> PathBuf {
    let stem = chain
        .file_stem()
        .map_or_else(|| "chain".into(), |s| s.to_string_lossy().into_owned());
    chain.with_file_name(format!("{stem}.acgs.yaml"))
}

/// Write `text` to `path`, which must not exist (nor be a link to anything).
fn write_new(path: &Path, text: &str) -> Result<(), crate::failure::Failure> {
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            let shown = crate::ui::printable(&path.display().to_string());
            match e.kind() {
                std::io::ErrorKind::AlreadyExists => CliError::Usage(format!(
                    "{shown} exists; nothing was written (choose another with -o)"
                )),
                _ => CliError::Usage(format!("{shown} could not be written: {}", e.kind())),
            }
        })?;
    file.write_all(text.as_bytes()).map_err(CliError::from)?;
    Ok(())
}
