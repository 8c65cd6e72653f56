//! One failure type for the command line: any [`UserFacing`] error, rendered the same way.

use acgs_core::error::{ErrorKind, UserFacing};

/// A failure of a command.
pub(crate) struct Failure {
    /// What went wrong.
    pub error: Box<dyn UserFacing>,
    /// The command already printed its result (a verdict): report the error on stderr only.
    pub result_printed: bool,
}

impl Failure {
    /// A failure after the result was printed (e.g. `guard check` refusing a text).
    pub(crate) fn after_result(error: impl UserFacing + 'static) -> Self {
        Self {
            error: Box::new(error),
            result_printed: true,
        }
    }
}

impl<E: UserFacing + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            error: Box::new(error),
            result_printed: false,
        }
    }
}

/// Errors of the command line itself.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A flag value is invalid.
    #[error("{0}")]
    Usage(String),
    /// Writing the result failed.
    #[error("could not write the result: {0}")]
    Output(#[from] std::io::Error),
    /// Ctrl-C or SIGTERM came while a question waited for an answer.
    #[error("interrupted at the question: nothing was changed")]
    Interrupted(acgs_engine::Signal),
    /// `acgs models add`: the endpoint's schema or price cannot be mapped safely.
    #[error("fal:{endpoint} cannot be added: {}", reasons.join("; "))]
    Unmappable {
        /// The endpoint id.
        endpoint: String,
        /// Every reason, one per field or price.
        reasons: Vec<String>,
    },
    /// Steps of a pipeline run did not finish.
    #[error("{failed} step(s) of run {run_id} did not finish")]
    PipelineFailed {
        /// How many.
        failed: usize,
        /// The run.
        run_id: String,
    },
}

impl UserFacing for CliError {
    fn code(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage.invalid",
            Self::Output(_) => "io.output",
            Self::PipelineFailed { .. } => "pipeline.step_failed",
            Self::Interrupted(_) => "run.interrupted",
            Self::Unmappable { .. } => "catalog.unmappable",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Usage(_) | Self::Unmappable { .. } => ErrorKind::Usage,
            Self::Output(_) => ErrorKind::Internal,
            Self::PipelineFailed { .. } => ErrorKind::Provider,
            Self::Interrupted(_) => ErrorKind::Usage,
        }
    }

    fn exit_code(&self) -> i32 {
        match self {
            Self::Interrupted(acgs_engine::Signal::Interrupt) => 130,
            Self::Interrupted(acgs_engine::Signal::Terminate) => 143,
            _ => self.kind().exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::PipelineFailed { run_id, .. } => Some(format!(
                "`acgs resume {run_id}` runs the unfinished steps again and pays only for them"
            )),
            Self::Unmappable { .. } => Some(
                "nothing was written; `--mark NAME=text|plain|priced|safety|omit` says what a field is when the rules cannot (docs/providers.md, \"Adding a fal model\")".into(),
            ),
            _ => None,
        }
    }
}

/// Result alias for commands.
pub(crate) type CmdResult = Result<(), Failure>;
