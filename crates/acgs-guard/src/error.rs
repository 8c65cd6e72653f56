//! Refusals of the guard and the budget and rate policies.

use acgs_core::error::{ErrorKind, UserFacing};
use acgs_core::{ProviderId, Usd};

/// Why the guard refused. Messages name the field and the rule, never the text or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The text is longer than allowed.
    #[error("`{field}` has {chars} characters; the limit is {limit}")]
    TooLong {
        /// Field name.
        field: String,
        /// The limit.
        limit: u32,
        /// Characters after sanitizing.
        chars: usize,
    },
    /// The text is empty after sanitizing.
    #[error("`{field}` is empty after removing invisible characters and whitespace")]
    Empty {
        /// Field name.
        field: String,
    },
    /// The text contains a credential.
    #[error("`{field}` contains what looks like a credential ({rule}); it was not sent anywhere")]
    CredentialInText {
        /// Field name.
        field: String,
        /// Scanner rule.
        rule: &'static str,
    },
    /// A block-list term matched.
    #[error("`{field}` matches the `{category}` category of the {list} block list")]
    Blocked {
        /// Field name.
        field: String,
        /// Category.
        category: String,
        /// List name.
        list: String,
    },
    /// An external moderator refused.
    #[error("`{field}` was refused by the {moderator} moderator ({category})")]
    Moderated {
        /// Field name.
        field: String,
        /// Moderator name.
        moderator: String,
        /// Category.
        category: String,
    },
    /// Moderation could not run (it fails closed).
    #[error("moderation is unavailable, so `{field}` was not sent: {reason}")]
    ModerationUnavailable {
        /// Field name.
        field: String,
        /// Why.
        reason: String,
    },
    /// Injection heuristics fired and the policy is `block`.
    #[error("`{field}` looks like a prompt injection ({rules})")]
    Injection {
        /// Field name.
        field: String,
        /// The rules that fired.
        rules: String,
    },
    /// A template is malformed or names an unknown value.
    #[error("template error: {0}")]
    Template(String),
    /// The estimate is above the per-run limit.
    #[error("the worst case of this run is ${estimate}, above max_cost_per_run ${limit}")]
    OverRunLimit {
        /// Worst case.
        estimate: Usd,
        /// The limit.
        limit: Usd,
    },
    /// The model has no price and unpriced models are not allowed.
    #[error("model `{model}` has no known price")]
    Unpriced {
        /// Model key.
        model: String,
    },
    /// Confirmation is needed but there is no terminal and no `--yes`.
    #[error("this run may cost up to ${estimate} and needs confirmation")]
    ConfirmationRequired {
        /// Worst case.
        estimate: Usd,
    },
    /// The user declined.
    #[error("declined at the confirmation prompt; nothing was sent")]
    ConfirmationDeclined,
    /// The local rate limit did not free up within the bounded wait.
    #[error("the local rate limit for {provider} did not free up within {waited_secs} s")]
    RateLimited {
        /// Provider.
        provider: ProviderId,
        /// Seconds waited.
        waited_secs: u64,
    },
}

impl UserFacing for GuardError {
    fn code(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "guard.too_long",
            Self::Empty { .. } => "input.empty_text",
            Self::CredentialInText { .. } => "guard.credential_in_text",
            Self::Blocked { .. } => "guard.blocked_term",
            Self::Moderated { .. } => "guard.moderation",
            Self::ModerationUnavailable { .. } => "guard.moderation_unavailable",
            Self::Injection { .. } => "guard.injection",
            Self::Template(_) => "guard.template",
            Self::OverRunLimit { .. } => "budget.max_cost_per_run",
            Self::Unpriced { .. } => "budget.unpriced_model",
            Self::ConfirmationRequired { .. } => "budget.confirmation_required",
            Self::ConfirmationDeclined => "budget.confirmation_declined",
            Self::RateLimited { .. } => "rate.limited",
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Empty { .. } | Self::Template(_) => ErrorKind::Usage,
            Self::OverRunLimit { .. }
            | Self::Unpriced { .. }
            | Self::ConfirmationRequired { .. }
            | Self::ConfirmationDeclined
            | Self::RateLimited { .. } => ErrorKind::Money,
            _ => ErrorKind::Guard,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(
            match self {
                Self::TooLong { .. } => "shorten the text; nothing is cut silently",
                Self::Empty { .. } => "give some visible text",
                Self::CredentialInText { .. } => {
                    "remove the key from the text; if it was real, rotate it at the provider"
                }
                Self::Blocked { .. } | Self::Moderated { .. } => {
                    "rephrase the request; `acgs guard check` shows which rule matched"
                }
                Self::ModerationUnavailable { .. } => "try again when the moderation service is reachable",
                Self::Injection { .. } => {
                    "rephrase without instructions aimed at the model; `acgs guard check` explains the rules (or set guard.on_injection = \"warn\")"
                }
                Self::Template(_) => "templates use {{ name }} with names that exist",
                Self::OverRunLimit { .. } => {
                    "lower the cost (fewer outputs, shorter duration) or raise cost_management.max_cost_per_run in your user config"
                }
                Self::Unpriced { .. } => {
                    "add a price in your user config, or set cost_management.allow_unpriced_models = true"
                }
                Self::ConfirmationRequired { .. } => "pass --yes to confirm without a terminal",
                Self::ConfirmationDeclined => "nothing was spent",
                Self::RateLimited { .. } => "wait a minute or raise rate_limits in your user config",
            }
            .to_owned(),
        )
    }
}
