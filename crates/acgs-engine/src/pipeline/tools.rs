//! The system programs a file's steps need: a step that joins, cuts or muxes video needs ffmpeg
//! and ffprobe, found where the user's own configuration says or on `PATH`. Missing, they are a
//! problem of the file — exit 2 before anything is reserved or sent.

use std::collections::BTreeSet;

use acgs_core::config::Config;
use acgs_core::task::TaskKind;
use acgs_core::tools::Tool;

use super::{Problem, Step};

/// One problem per missing program, at the first step that needs it.
pub(super) fn check(steps: &[Step], config: &Config, file: &str, problems: &mut Vec<Problem>) {
    let path = std::env::var_os("PATH");
    let mut reported = BTreeSet::new();
    for step in steps.iter().filter(|s| needs_ffmpeg(s.model.task)) {
        for tool in [Tool::Ffmpeg, Tool::Ffprobe] {
            if reported.contains(&tool) {
                continue;
            }
            if let Err(why) = tool.locate(&config.tools, path.as_deref()) {
                reported.insert(tool);
                problems.push(Problem {
                    file: file.to_owned(),
                    line: (step.line > 0).then_some(step.line),
                    step: Some(step.id.clone()),
                    code: "pipeline.tool_missing",
                    message: format!("`{}` needs {}: {why}", step.model.key, tool.name()),
                    hint: None,
                });
            }
        }
    }
}

/// Whether steps of `task` run ffmpeg.
const fn needs_ffmpeg(task: TaskKind) -> bool {
    matches!(task, TaskKind::EditVideo | TaskKind::VideoFrame)
}
