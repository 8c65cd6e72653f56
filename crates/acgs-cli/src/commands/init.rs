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
    if !args.force
        && let Some((name, _)) = files.iter().find(|(n, _)| app.env.cwd.join(n).exists())
    {
        return Err(CliError::Usage(format!(
            "{name} exists; nothing was written (use --force to replace the starter files)"
        ))
        .into());
    }
    for (name, text) in files {
        fs_err::write(app.env.cwd.join(name), text).map_err(CliError::from)?;
    }
    let added = ignore_lines(&app.env.cwd.join(".gitignore"))?;
    app.ui
        .result_text(&format!(
            "wrote acgs.toml, pipeline.yaml and .env.example; .gitignore {}; next: `acgs validate pipeline.yaml`\n",
            if added == 0 { "already ignores keys and outputs".to_owned() } else { format!("gained {added} line(s)") }
        ))
        .map_err(|e| CliError::from(e).into())
}

/// Add the lines of [`IGNORED`] that `.gitignore` lacks; how many were added.
fn ignore_lines(path: &std::path::Path) -> Result<usize, crate::failure::Failure> {
    let existing = match fs_err::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(CliError::from(e).into()),
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
    fs_err::write(path, text).map_err(CliError::from)?;
    Ok(missing.len())
}
