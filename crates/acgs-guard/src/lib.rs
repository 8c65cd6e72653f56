//! # acgs-guard
//!
//! Policy for acgs, with no I/O: the clock, the ledger and external moderators are injected.
//!
//! - [`mod@sanitize`]: NFKC and removal of invisible, control and reordering characters;
//! - [`scan`]: the credential scanner shared by text refusal, the redacting sink and `doctor`;
//! - [`moderate`]: category block lists matched on word boundaries after normalisation;
//! - [`template`]: `{{ name }}` templates rendered in one pass;
//! - [`budget`]: the per-run limit, warning threshold and confirmation;
//! - [`rate`]: submits per minute and jobs in flight per provider;
//! - [`Guard::inspect`]: the Inspect stage for one text field.

pub mod budget;
mod error;
pub mod moderate;
pub mod rate;
pub mod sanitize;
pub mod scan;
pub mod template;

use acgs_core::redact::Redactor;

pub use error::GuardError;
pub use moderate::BlockList;
pub use sanitize::{Sanitized, sanitize};

/// A text that passed inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The sanitized text, to be sent.
    pub text: String,
    /// What the sanitizer changed.
    pub sanitized: Sanitized,
    /// Rules that warned (e.g. a high-entropy token).
    pub warnings: Vec<String>,
}

/// The Inspect stage: sanitize → refuse credentials → moderate.
#[derive(Debug, Clone)]
pub struct Guard {
    blocklist: BlockList,
    known_secrets: Redactor,
}

impl Guard {
    /// A guard with these block lists; `known_secrets` holds the loaded keys, which are refused
    /// in any format.
    #[must_use]
    pub fn new(blocklist: BlockList, known_secrets: Redactor) -> Self {
        Self {
            blocklist,
            known_secrets,
        }
    }

    /// Inspect the text of `field` against a character `limit`. Refusals name the rule, never the
    /// text or the secret.
    pub fn inspect(&self, field: &str, text: &str, limit: u32) -> Result<Inspected, GuardError> {
        let sanitized = sanitize(text);
        let clean = &sanitized.text;
        if clean.is_empty() {
            return Err(GuardError::Empty {
                field: field.to_owned(),
            });
        }
        let chars = clean.chars().count();
        if chars > usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(GuardError::TooLong {
                field: field.to_owned(),
                limit,
                chars,
            });
        }
        let mut warnings = Vec::new();
        for finding in scan::scan(clean) {
            match finding.severity {
                scan::Severity::Refuse => {
                    return Err(GuardError::CredentialInText {
                        field: field.to_owned(),
                        rule: finding.rule,
                    });
                }
                scan::Severity::Warn => warnings.push(format!("scan.{}", finding.rule)),
            }
        }
        if self.known_secrets.contains_secret(clean) || self.known_secrets.contains_secret(text) {
            return Err(GuardError::CredentialInText {
                field: field.to_owned(),
                rule: "loaded_key",
            });
        }
        if let Some(hit) = self.blocklist.check(clean) {
            return Err(GuardError::Blocked {
                field: field.to_owned(),
                category: hit.category,
                list: hit.list,
            });
        }
        Ok(Inspected {
            text: clean.clone(),
            sanitized,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::UserFacing as _;

    fn guard() -> Guard {
        let secrets = Redactor::new();
        secrets.add_secret("my-custom-format-key-123456");
        Guard::new(BlockList::builtin(), secrets)
    }

    #[test]
    fn passes_ordinary_prompts_sanitized() {
        let out = guard()
            .inspect("prompt", "  a red\u{200B} fox in snow  ", 100)
            .expect("passes");
        assert_eq!(out.text, "a red fox in snow");
    }

    #[test]
    fn refusals_name_the_rule_not_the_text() {
        let key = "AIzaSyD-1234567890abcdefghijklmnopqrstu";
        let err = guard()
            .inspect("prompt", &format!("cat {key}"), 100)
            .expect_err("key");
        assert_eq!(err.code(), "guard.credential_in_text");
        assert_eq!(err.kind().exit_code(), 3);
        assert!(!err.to_string().contains(key));
        let err = guard()
            .inspect("prompt", "x my-custom-format-key-123456", 100)
            .expect_err("loaded key");
        assert!(err.to_string().contains("loaded_key"));
        let err = guard()
            .inspect("prompt", "c.s.a.m csam", 100)
            .expect_err("blocked");
        assert_eq!(err.code(), "guard.blocked_term");
    }

    #[test]
    fn over_the_limit_is_refused_not_cut() {
        let err = guard()
            .inspect("prompt", &"a".repeat(11), 10)
            .expect_err("too long");
        assert!(matches!(
            err,
            GuardError::TooLong {
                limit: 10,
                chars: 11,
                ..
            }
        ));
        assert!(guard().inspect("prompt", "\u{200B}\u{FEFF}  ", 10).is_err());
    }
}
