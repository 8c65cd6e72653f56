//! `acgs init`: a starter project configuration, pipeline and `.env.example` in the current
//! folder, and the `.gitignore` lines that keep keys and outputs out of git.

use crate::app::App;
use crate::cli::InitArgs;
use crate::failure::{CliError, CmdResult};

/// The starter project configuration: limits tighter than the defaults, nothing secret.
const CONFIG: &str = r#"# acgs project configuration. A project file may only tighten limits and guards; keys,
# provider URLs and the ledger belong in your user configuration ($XDG_CONFIG_HOME/acgs/).
# See docs/configuration.md.

[default]
output_dir = "output"

[default.cost_management]
max_cost_per_run = 5.00
daily_limit = 20.00
warn_threshold = 2.00
require_confirmation = true
confirm_above = 0.05
"#;

/// The starter pipeline: text → image → video, checked by `acgs validate pipeline.yaml`.
const PIPELINE: &str = r#"# A starter pipeline: Gemini writes a shot, fal draws it and animates it.
#   acgs validate pipeline.yaml
#   acgs estimate pipeline.yaml --input "a lighthouse at dusk"
#   acgs run pipeline.yaml --input "a lighthouse at dusk"
version: 1
name: starter
inputs:
  subject: { type: text }
settings:
  max_parallel: 2
steps:
  - id: shot
    model: gemini_2_5_flash
    system: "You write one-sentence image prompts. Answer with the prompt only."
    prompt: "A cinematic still of {{ inputs.subject }}."
    params: { max_output_tokens: 200, thinking_budget: 0 }
  - id: still
    model: flux_dev
    prompt: "{{ steps.shot.text }}"
    params: { image_size: landscape_16_9 }
  - id: clip
    model: kling_2_1
    image: "{{ steps.still.image }}"
    prompt: "Slow camera push in on {{ inputs.subject }}"
    params: { duration: "5" }
"#;

/// Which variables acgs reads, with no values: copy to `.env` (ignored, 0600) and fill in.
const ENV_EXAMPLE: &str = "# Copy to .env, fill in, and `chmod 600 .env`; .env is ignored by git.\n\
# Or keep keys out of files: `acgs keys set FAL_KEY` stores them in your private credentials file.\n\
FAL_KEY=\nGEMINI_API_KEY=\nELEVENLABS_API_KEY=\n";

/// The lines `.gitignore` needs so keys and outputs are never committed.
const IGNORED: [&str; 5] = [".env", ".env.*", "!.env.example", "*.key", "output/"];

/// `acgs init [--force]`.
pub(crate) fn run(app: &App, args: &InitArgs) -> CmdResult {
    let files = [
        ("acgs.toml", CONFIG),
        ("pipeline.yaml", PIPELINE),
        (".env.example", ENV_EXAMPLE),
    ];
    for (name, _) in &files {
        let existing = plain_file(&app.env.cwd.join(name))?;
        if existing && !args.force {
            return Err(CliError::Usage(format!(
                "{name} exists; nothing was written (use --force to replace the starter files)"
            ))
            .into());
        }
    }
    plain_file(&app.env.cwd.join(".gitignore"))?;
    for (name, text) in files {
        write_plain(&app.env.cwd.join(name), text)?;
    }
    let added = ignore_lines(&app.env.cwd.join(".gitignore"))?;
    app.ui
        .result_text(&format!(
            "wrote acgs.toml, pipeline.yaml and .env.example; .gitignore {}; next: `acgs validate pipeline.yaml`\n",
            if added == 0 { "already ignores keys and outputs".to_owned() } else { format!("gained {added} line(s)") }
        ))
        .map_err(|e| CliError::from(e).into())
}

/// Whether `path` exists as a plain file; anything else there (a symbolic link a cloned project
/// planted, a FIFO, a folder) is refused, so that init never writes through it.
fn plain_file(path: &std::path::Path) -> Result<bool, crate::failure::Failure> {
    match fs_err::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(true),
        Ok(_) => Err(CliError::Usage(format!(
            "{} is not a plain file (a link, a FIFO or a folder); acgs init writes only plain files and wrote nothing",
            crate::ui::printable(&path.display().to_string())
        ))
        .into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::from(e).into()),
    }
}

/// Replace `path` with `text` without following a link: a new file renamed over it.
fn write_plain(path: &std::path::Path, text: &str) -> Result<(), crate::failure::Failure> {
    plain_file(path)?;
    Ok(acgs_storage::replace_keeping_mode(
        path,
        text.as_bytes(),
        0o644,
    )?)
}

/// The largest `.gitignore` read.
const MAX_GITIGNORE: u64 = 1024 * 1024;

/// Add the lines of [`IGNORED`] that `.gitignore` lacks; how many were added.
fn ignore_lines(path: &std::path::Path) -> Result<usize, crate::failure::Failure> {
    let existing = if plain_file(path)? {
        acgs_core::files::read_regular_text(path, MAX_GITIGNORE)
            .map_err(|e| acgs_core::files::unreadable(path, &e))?
    } else {
        String::new()
    };
    let missing: Vec<&str> = IGNORED
        .iter()
        .copied()
        .filter(|line| !existing.lines().any(|l| l.trim() == *line))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# acgs: keys and outputs stay out of git\n");
    for line in &missing {
        text.push_str(line);
        text.push('\n');
    }
    write_plain(path, &text)?;
    Ok(missing.len())
}
