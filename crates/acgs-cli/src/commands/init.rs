//! `acgs init`: a starter project configuration and pipeline in the current folder.

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

/// `acgs init [--force]`.
pub fn run(app: &App, args: &InitArgs) -> CmdResult {
    let files = [("acgs.toml", CONFIG), ("pipeline.yaml", PIPELINE)];
    if !args.force
        && let Some((name, _)) = files.iter().find(|(n, _)| app.env.cwd.join(n).exists())
    {
        return Err(CliError::Usage(format!(
            "{name} exists; nothing was written (use --force to replace both files)"
        ))
        .into());
    }
    for (name, text) in files {
        fs_err::write(app.env.cwd.join(name), text).map_err(CliError::from)?;
    }
    app.ui
        .result_text("wrote acgs.toml and pipeline.yaml; next: `acgs validate pipeline.yaml`\n")
        .map_err(|e| CliError::from(e).into())
}
