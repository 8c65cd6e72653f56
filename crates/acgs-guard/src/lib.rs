//! # acgs-guard
//!
//! Policy for acgs, with no I/O: the clock, the ledger and external moderators are injected.
//!
//! - [`mod@sanitize`]: NFKC and removal of invisible, control and reordering characters;
//! - [`scan`]: the credential scanner shared by text refusal, the redacting sink and `doctor`;
//! - [`moderate`]: category block lists matched on word boundaries after normalisation;
//! - [`inject`]: scored, named injection heuristics;
//! - [`template`]: `{{ name }}` templates rendered in one pass;
//! - [`budget`]: the per-run limit, warning threshold and confirmation;
//! - [`rate`]: submits per minute and jobs in flight per provider;
//! - [`Guard::inspect`]: the Inspect stage for one text field.

pub mod budget;
mod error;
pub mod inject;
pub mod moderate;
pub mod rate;
pub mod sanitize;
pub mod scan;
pub mod template;

use acgs_core::config::InjectionPolicy;
use acgs_core::redact::Redactor;

pub use error::GuardError;
pub use moderate::BlockList;
pub use sanitize::{Sanitized, is_denied, sanitize};

/// Compile the shipped rule sets (injection, credentials, fold tables), which are otherwise
/// compiled on first use. A command calls it on a spare thread while it starts, so that the
/// first inspection does not wait for them; calling it again costs nothing.
pub fn prepare() {
    inject::prepare();
    moderate::prepare();
    std::sync::LazyLock::force(&scan::RULES);
}

/// A text that passed inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The sanitized text, to be sent.
    pub text: String,
    /// What the sanitizer changed.
    pub sanitized: Sanitized,
    /// Rules that warned (e.g. a high-entropy token, injection under the `warn` policy).
    pub warnings: Vec<String>,
}

/// How to inspect one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectOptions {
    /// Character limit after sanitizing.
    pub limit: u32,
    /// Apply the injection heuristics with this policy (text models, model-produced text).
    pub injection: Option<InjectionPolicy>,
}

/// Every rule's verdict on one text, for `acgs guard check`.
#[derive(Debug, Clone)]
pub struct Report {
    /// What the sanitizer did.
    pub sanitized: Sanitized,
    /// Characters after sanitizing.
    pub chars: usize,
    /// The limit checked.
    pub limit: u32,
    /// Credential-scanner findings (rule and span, never the text).
    pub credentials: Vec<scan::Finding>,
    /// Whether a loaded key appears.
    pub loaded_key: bool,
    /// Block-list hit.
    pub blocked: Option<moderate::BlockHit>,
    /// Injection heuristics.
    pub injection: inject::InjectionVerdict,
    /// The refusal inspection would give, if any (the first rule in pipeline order).
    pub refusal: Option<GuardError>,
    /// Warnings inspection would give.
    pub warnings: Vec<String>,
}

/// The Inspect stage: sanitize → refuse credentials → moderate → injection heuristics.
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

    /// The redactor that knows the loaded keys: what acgs writes from a model or a provider
    /// (text outputs) passes through it.
    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        &self.known_secrets
    }

    /// Inspect the text of `field`. Refusals name the rule, never the text or the secret.
    pub fn inspect(
        &self,
        field: &str,
        text: &str,
        options: InspectOptions,
    ) -> Result<Inspected, GuardError> {
        // Sixteen bytes per allowed character is more than sanitizing can ever remove from a
        // text that fits: a larger one is refused before any work is spent on it.
        let limit = usize::try_from(options.limit).unwrap_or(usize::MAX);
        if text.len() / 16 > limit {
            return Err(GuardError::TooLong {
                field: field.to_owned(),
                limit: options.limit,
                chars: text.chars().count(),
            });
        }
        let report = self.report(field, text, options);
        match report.refusal {
            Some(refusal) => Err(refusal),
            None => Ok(Inspected {
                text: report.sanitized.text.clone(),
                sanitized: report.sanitized,
                warnings: report.warnings,
            }),
        }
    }

    /// Every rule's verdict on `text`, without stopping at the first refusal.
    #[must_use]
    pub fn report(&self, field: &str, text: &str, options: InspectOptions) -> Report {
        let sanitized = sanitize(text);
        let clean = sanitized.text.as_str();
        let chars = clean.chars().count();
        let credentials = scan::scan(clean);
        let loaded_key =
            self.known_secrets.contains_secret(clean) || self.known_secrets.contains_secret(text);
        // Moderation reads the raw text (its skeleton folds compatibility forms itself; NFKC could
        // split a letter into letter + punctuation and make a word boundary), and the displayed
        // order when right-to-left overrides are present.
        let blocked = self.blocklist.check(text).or_else(|| {
            sanitize::visual_order(text).and_then(|visual| self.blocklist.check(&visual))
        });
        let injection = inject::score(clean, sanitized.removed, &sanitize::tag_text(text));
        let field = field.to_owned();
        let mut warnings: Vec<String> = credentials
            .iter()
            .filter(|f| f.severity == scan::Severity::Warn)
            .map(|f| format!("scan.{}", f.rule))
            .collect();
        let refusal = if clean.is_empty() {
            Some(GuardError::Empty { field })
        } else if chars > usize::try_from(options.limit).unwrap_or(usize::MAX) {
            Some(GuardError::TooLong {
                field,
                limit: options.limit,
                chars,
            })
        } else if let Some(f) = credentials
            .iter()
            .find(|f| f.severity == scan::Severity::Refuse)
        {
            Some(GuardError::CredentialInText {
                field,
                rule: f.rule,
            })
        } else if loaded_key {
            Some(GuardError::CredentialInText {
                field,
                rule: "loaded_key",
            })
        } else if let Some(hit) = &blocked {
            Some(GuardError::Blocked {
                field,
                category: hit.category.clone(),
                list: hit.list.clone(),
            })
        } else {
            match options.injection {
                Some(policy) if injection.suspicious() => match policy {
                    InjectionPolicy::Block => Some(GuardError::Injection {
                        field,
                        rules: injection.rules(),
                    }),
                    InjectionPolicy::Warn => {
                        warnings.push(format!("injection:{}", injection.rules()));
                        None
                    }
                },
                Some(_) if injection.score > 0 => {
                    warnings.push(format!("injection_hint:{}", injection.rules()));
                    None
                }
                _ => None,
            }
        };
        Report {
            sanitized,
            chars,
            limit: options.limit,
            credentials,
            loaded_key,
            blocked,
            injection,
            refusal,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::UserFacing as _;

    fn opts(limit: u32) -> InspectOptions {
        InspectOptions {
            limit,
            injection: Some(InjectionPolicy::Block),
        }
    }

    fn guard() -> Guard {
        let secrets = Redactor::new();
        secrets.add_secret("my-custom-format-key-123456");
        Guard::new(BlockList::builtin(), secrets)
    }

    #[test]
    fn passes_ordinary_prompts_sanitized() {
        let out = guard()
            .inspect("prompt", "  a red\u{200B} fox in snow  ", opts(100))
            .expect("passes");
        assert_eq!(out.text, "a red fox in snow");
    }

    #[test]
    fn refusals_name_the_rule_not_the_text() {
        let key = "AIzaSyD-1234567890abcdefghijklmnopqrstu"; // acgs:allow-credential
        let err = guard()
            .inspect("prompt", &format!("cat {key}"), opts(100))
            .expect_err("key");
        assert_eq!(err.code(), "guard.credential_in_text");
        assert_eq!(err.kind().exit_code(), 3);
        assert!(!err.to_string().contains(key));
        let err = guard()
            .inspect("prompt", "x my-custom-format-key-123456", opts(100))
            .expect_err("loaded key");
        assert!(err.to_string().contains("loaded_key"));
        let err = guard()
            .inspect("prompt", "c.s.a.m csam", opts(100))
            .expect_err("blocked");
        assert_eq!(err.code(), "guard.blocked_term");
    }

    #[test]
    fn a_huge_text_is_refused_before_it_is_read() {
        let huge = "\u{200B}".repeat(200);
        let err = guard()
            .inspect("prompt", &huge, opts(10))
            .expect_err("too long");
        assert!(
            matches!(err, GuardError::TooLong { chars: 200, .. }),
            "{err:?}"
        );
        let fits = format!("{}{}", "\u{200B}".repeat(50), "a".repeat(10));
        assert!(
            guard().inspect("prompt", &fits, opts(10)).is_ok(),
            "invisible characters under the bound are removed, not counted"
        );
    }

    #[test]
    fn over_the_limit_is_refused_not_cut() {
        let err = guard()
            .inspect("prompt", &"a".repeat(11), opts(10))
            .expect_err("too long");
        assert!(matches!(
            err,
            GuardError::TooLong {
                limit: 10,
                chars: 11,
                ..
            }
        ));
        assert!(
            guard()
                .inspect("prompt", "\u{200B}\u{FEFF}  ", opts(10))
                .is_err()
        );
    }
}
