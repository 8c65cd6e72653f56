//! The moderation trait, so that an external moderation service can be plugged in beside the
//! built-in block lists.

use serde::Serialize;

/// A moderator's decision on one text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum ModerationVerdict {
    /// Nothing found.
    Allow,
    /// Refused, naming the category and rule (never the matched text).
    Block {
        /// Category, e.g. `violence`.
        category: String,
        /// The rule or list that matched.
        rule: String,
    },
}

/// A moderation failure (the text is then refused: moderation fails closed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("moderation unavailable: {0}")]
pub struct ModerationError(pub String);

/// A moderator.
#[async_trait::async_trait]
pub trait Moderator: Send + Sync {
    /// A short name for verdicts and the audit log.
    fn name(&self) -> &str;
    /// Judge one sanitized text.
    async fn moderate(&self, text: &str) -> Result<ModerationVerdict, ModerationError>;
}
