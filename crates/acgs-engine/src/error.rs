//! The engine's error type: its own failures plus those of every crate on the guarded path.

use acgs_core::error::{ErrorKind, UserFacing};
use acgs_core::ledger::LedgerError;
use acgs_core::provider::ProviderError;
use acgs_guard::GuardError;
use acgs_storage::StorageError;

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C (exit 130).
    Interrupt,
    /// SIGTERM (exit 143).
    Terminate,
}

/// Errors of a generation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Configuration, catalogue or credential problem.
    #[error(transparent)]
    Core(#[from] acgs_core::Error),
    /// Refused by the guard or the budget policy.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// Refused or failed by the ledger.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Storage failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Provider failure.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The request cannot be priced.
    #[error(transparent)]
    Price(#[from] acgs_core::pricing::PriceError),
    /// A parameter is invalid.
    #[error("parameter `{name}`: {reason}")]
    InvalidParam {
        /// Parameter name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An input file lies outside the folders the caller may read (through `..` or a symlink
    /// too): the only inputs an agent may send are the ones its user allowed.
    #[error("input `{flag}`: {shown} is outside the folders this caller may read")]
    InputOutsideRoots {
        /// The input's flag.
        flag: String,
        /// The file's name (never the whole path, which may say more than the caller knew).
        shown: String,
    },
    /// An input file could not be opened (missing, unreadable, not a regular file).
    #[error("input `{flag}`: cannot read {shown}: {reason}")]
    InputUnreadable {
        /// The input's flag.
        flag: String,
        /// The file's name.
        shown: String,
        /// Why, in words.
        reason: String,
    },
    /// The worst case is above the ceiling the caller set for this call: refused, not made
    /// cheaper.
    #[error("the worst case is ${estimate}, above this call's ceiling of ${cap}")]
    OverCap {
        /// The ceiling.
        cap: acgs_core::Usd,
        /// The worst case.
        estimate: acgs_core::Usd,
    },
    /// A safety parameter was changed without `allow_safety_overrides`.
    #[error(
        "`{name}` is a safety setting and stays at its default unless your user config sets allow_safety_overrides"
    )]
    SafetyOverride {
        /// Parameter name.
        name: String,
    },
    /// The model does not do what the command asks.
    #[error("model `{model}` does {actual}, not {expected}")]
    WrongTask {
        /// Model key.
        model: String,
        /// What it does.
        actual: String,
        /// What the command needs.
        expected: String,
    },
    /// Every output was flagged by the provider's safety checker; nothing was stored.
    #[error("the provider's safety checker flagged every output ({flagged}); nothing was written")]
    OutputFlagged {
        /// How many outputs were flagged.
        flagged: usize,
    },
    /// The provider blocked the output.
    #[error("the provider blocked the output ({reason})")]
    OutputBlocked {
        /// The provider's reason.
        reason: String,
    },
    /// The job did not finish before its deadline; the run stays resumable.
    #[error("the job did not finish within {seconds} s; resume it with `acgs resume {run_id}`")]
    Deadline {
        /// The deadline.
        seconds: u64,
        /// The run.
        run_id: String,
    },
    /// Interrupted by a signal.
    #[error("interrupted; {note}")]
    Interrupted {
        /// Which signal.
        signal: Signal,
        /// What happened to the job and the money.
        note: String,
    },
    /// A step was being submitted when its process stopped: whether the provider accepted it is
    /// unknown.
    #[error(
        "run {run_id} stopped while its request was being sent; whether the provider accepted it is unknown"
    )]
    OutcomeUnknown {
        /// The run.
        run_id: String,
    },
    /// The suite was built without a part this call needs (a library set-up mistake).
    #[error("this suite has no {what} configured")]
    NotConfigured {
        /// The missing part (`spend ledger`, `runs index`).
        what: &'static str,
    },
    /// `-n` above 1 for a model that makes one output per request.
    #[error("`{model}` makes one output per request; -n above 1 needs separate runs")]
    CountUnsupported {
        /// The model.
        model: String,
    },
    /// A task of the engine stopped without an answer (a panic): a bug, not the user's input.
    #[error("internal error: {what} stopped unexpectedly")]
    Internal {
        /// What stopped (`step `clip``).
        what: String,
    },
    /// A pipeline file has problems (all of them are listed).
    #[error("{0}")]
    Pipeline(crate::problems::Problems),
    /// A pipeline step could not be built.
    #[error("step `{step}`: {reason}")]
    Step {
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
    /// A pipeline step would cost more, on what really exists, than was reserved for it.
    #[error(
        "step `{step}` would cost up to ${needed} on its real inputs, more than the ${reserved} reserved for it; nothing was sent"
    )]
    OverStepEstimate {
        /// The step.
        step: String,
        /// Its worst case now.
        needed: acgs_core::Usd,
        /// What was reserved.
        reserved: acgs_core::Usd,
    },
}

impl EngineError {
    /// The error the user sees first.
    fn inner(&self) -> Option<&dyn UserFacing> {
        match self {
            Self::Core(e) => Some(e),
            Self::Guard(e) => Some(e),
            Self::Ledger(e) => Some(e),
            Self::Storage(e) => Some(e),
            Self::Provider(e) => Some(e),
            Self::Price(e) => Some(e),
            _ => None,
        }
    }
}

impl UserFacing for EngineError {
    fn code(&self) -> &'static str {
        match self {
            Self::Core(e) => e.code(),
            Self::Guard(e) => e.code(),
            Self::Ledger(e) => e.code(),
            Self::Storage(e) => e.code(),
            Self::Provider(e) => e.code(),
            Self::Price(e) => e.code(),
            Self::InvalidParam { .. } => "input.invalid_param",
            Self::InputOutsideRoots { .. } => "input.outside_roots",
            Self::InputUnreadable { .. } => "input.unreadable",
            Self::OverCap { .. } => "budget.max_cost_below_estimate",
            Self::SafetyOverride { .. } => "guard.safety_override",
            Self::WrongTask { .. } => "model.wrong_task",
            Self::OutputFlagged { .. } => "output.flagged",
            Self::OutputBlocked { reason } => blocked_code(reason),
            Self::Deadline { .. } => "provider.deadline",
            Self::OutcomeUnknown { .. } => "run.outcome_unknown",
            Self::Interrupted { .. } => "run.interrupted",
            Self::Pipeline(_) => "pipeline.invalid",
            Self::Step { .. } => "pipeline.step_invalid",
            Self::OverStepEstimate { .. } => "budget.over_step_estimate",
            Self::NotConfigured { .. } => "engine.not_configured",
            Self::CountUnsupported { .. } => "input.count_unsupported",
            Self::Internal { .. } => "internal.task_failed",
        }
    }

    fn kind(&self) -> ErrorKind {
        if let Some(inner) = self.inner() {
            return inner.kind();
        }
        match self {
            Self::InvalidParam { .. }
            | Self::InputOutsideRoots { .. }
            | Self::InputUnreadable { .. }
            | Self::WrongTask { .. }
            | Self::NotConfigured { .. }
            | Self::CountUnsupported { .. }
            | Self::OutcomeUnknown { .. }
            | Self::Pipeline(_)
            | Self::Step { .. } => ErrorKind::Usage,
            Self::OverStepEstimate { .. } | Self::OverCap { .. } => ErrorKind::Money,
            Self::SafetyOverride { .. } => ErrorKind::Guard,
            Self::Internal { .. } => ErrorKind::Internal,
            _ => ErrorKind::Provider,
        }
    }

    fn exit_code(&self) -> i32 {
        match self {
            Self::Interrupted {
                signal: Signal::Interrupt,
                ..
            } => 130,
            Self::Interrupted {
                signal: Signal::Terminate,
                ..
            } => 143,
            _ => self.kind().exit_code(),
        }
    }

    fn problems(&self) -> &[acgs_core::Problem] {
        match self {
            Self::Pipeline(problems) => &problems.problems,
            _ => &[],
        }
    }

    fn hint(&self) -> Option<String> {
        if let Some(inner) = self.inner() {
            return inner.hint();
        }
        match self {
            Self::InvalidParam { .. } => {
                Some("`acgs models --json` lists each model's parameters".into())
            }
            Self::WrongTask { .. } => {
                Some("`acgs models --task <task>` lists suitable models".into())
            }
            Self::InputUnreadable { .. } => Some(
                "check the path: a relative one is read from the folder acgs runs in (in a pipeline, from the pipeline's folder)".into(),
            ),
            Self::OverCap { estimate, .. } => Some(format!(
                "estimate first; allow at least ${estimate}, or choose a cheaper model or fewer outputs"
            )),
            Self::InputOutsideRoots { .. } => Some(
                "move the file into one of the allowed folders (`[mcp] allowed_input_roots` in the user configuration)".into(),
            ),
            Self::OutputFlagged { .. } => {
                Some("rephrase the prompt; flagged outputs are never stored".into())
            }
            Self::Pipeline(_) => Some("fix every problem listed; `acgs validate FILE` checks again without spending".into()),
            Self::OverStepEstimate { .. } => Some("lower the earlier step's output bound (e.g. max_output_tokens) so the estimate covers it".into()),
            Self::OutcomeUnknown { run_id } => Some(format!(
                "its reservation keeps counting; `acgs resume {run_id} --resubmit` writes it off and sends the request again (you may pay twice)"
            )),
            _ => None,
        }
    }

    fn detail(&self) -> Option<String> {
        self.inner().and_then(UserFacing::detail)
    }
}

/// A stable code naming the provider's block reason (Gemini's `blockReason` / `finishReason`,
/// Veo's filtered samples); unknown reasons share `provider.blocked_other`.
fn blocked_code(reason: &str) -> &'static str {
    match reason {
        "SAFETY" => "provider.blocked_safety",
        "PROHIBITED_CONTENT" => "provider.blocked_prohibited_content",
        "BLOCKLIST" => "provider.blocked_blocklist",
        "SPII" => "provider.blocked_spii",
        "RECITATION" => "provider.blocked_recitation",
        "IMAGE_SAFETY" => "provider.blocked_image_safety",
        "IMAGE_PROHIBITED_CONTENT" => "provider.blocked_image_prohibited_content",
        "IMAGE_RECITATION" => "provider.blocked_image_recitation",
        "JAILBREAK" => "provider.blocked_jailbreak",
        "MODEL_ARMOR" => "provider.blocked_model_armor",
        "RAI_FILTERED" => "provider.blocked_rai_filtered",
        _ => "provider.blocked_other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_codes_name_the_reason() {
        let code = |reason: &str| {
            EngineError::OutputBlocked {
                reason: reason.into(),
            }
            .code()
        };
        assert_eq!(code("SAFETY"), "provider.blocked_safety");
        assert_eq!(
            code("PROHIBITED_CONTENT"),
            "provider.blocked_prohibited_content"
        );
        assert_eq!(code("SOMETHING_NEW"), "provider.blocked_other");
        let blocked = EngineError::OutputBlocked {
            reason: "SAFETY".into(),
        };
        assert_eq!(blocked.kind(), ErrorKind::Provider, "exit 6");
    }
}
