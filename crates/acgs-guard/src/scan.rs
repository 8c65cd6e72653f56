//! The credential scanner: one rule set shared by text refusal, the redacting sink and
//! `acgs doctor`.
//!
//! Provider key formats (fal `uuid:hex32`, Google `AIza…`, ElevenLabs `sk_…`) and private-key
//! blocks refuse a text. Generic high-entropy tokens only warn and are redacted from output:
//! seeds, hashes and ids are common in prompts, so a token needs upper case, lower case and
//! digits mixed to count.

use std::sync::{Arc, LazyLock};

use acgs_core::redact::{MASK, Scrubber};
use regex::Regex;

/// How a finding is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The text is refused.
    Refuse,
    /// The text passes with a warning; the token is redacted from output.
    Warn,
}

/// One rule of the scanner.
#[derive(Debug)]
pub struct Rule {
    /// Stable name, e.g. `fal_key`.
    pub name: &'static str,
    /// Treatment.
    pub severity: Severity,
    regex: Regex,
    /// A match counts only when its value (the pattern's first group, else the whole match)
    /// looks random: mixed case and digits, many distinct characters.
    gated: bool,
}

/// A match of a rule (the span, never the text, is reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule's name.
    pub rule: &'static str,
    /// Treatment.
    pub severity: Severity,
    /// Byte range in the scanned text.
    pub span: std::ops::Range<usize>,
}

fn rule(name: &'static str, severity: Severity, pattern: &str) -> Rule {
    Rule {
        name,
        severity,
        regex: Regex::new(pattern).expect("the shipped patterns are constants that compile"),
        gated: severity == Severity::Warn,
    }
}

/// A rule whose match counts only when its value looks random (see [`Rule`]).
fn gated(name: &'static str, severity: Severity, pattern: &str) -> Rule {
    Rule {
        gated: true,
        ..rule(name, severity, pattern)
    }
}

/// The shipped rules.
pub static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            "fal_key",
            Severity::Refuse,
            r"(?-u:\b)[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:[0-9a-fA-F]{32}(?-u:\b)",
        ),
        rule(
            "google_api_key",
            Severity::Refuse,
            r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}",
        ),
        rule(
            "elevenlabs_key",
            Severity::Refuse,
            r"(?-u:\b)sk_[0-9a-f]{48}(?-u:\b)",
        ),
        rule(
            "private_key",
            Severity::Refuse,
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        ),
        // Other services' credentials, as gitleaks finds them.
        rule(
            "aws_access_key",
            Severity::Refuse,
            r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
        ),
        rule(
            "github_token",
            Severity::Refuse,
            r"(?-u:\b)(?:gh[pousr]_[0-9A-Za-z]{36,255}|github_pat_[0-9A-Za-z_]{82})(?-u:\b)",
        ),
        rule(
            "slack_token",
            Severity::Refuse,
            r"(?-u:\b)(?:xox[baprs]-[0-9A-Za-z-]{10,250}|https://hooks\.slack\.com/services/T[0-9A-Z]{8,}/B[0-9A-Z]{8,}/[0-9A-Za-z]{24})",
        ),
        gated(
            "generic_api_key",
            Severity::Refuse,
            r#"(?i)(?:api[_-]?key|api[_-]?secret|secret[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)["']?\s*[:=]\s*["']([0-9A-Za-z_\-+/=.]{20,})["']"#,
        ),
        rule(
            "high_entropy_token",
            Severity::Warn,
            r"[A-Za-z0-9_\-+/]{32,}={0,2}",
        ),
    ]
});

/// Whether a generic token is mixed enough to look like a secret: upper, lower and digits, and
/// at least 16 distinct characters. Hex hashes, base-10 seeds and words do not qualify.
///
/// A token with `/` in it is judged by its segments, so a file path (`/tmp/.tmpAb12/out/runs/…`)
/// passes while base64 with a `/` inside still has one long, mixed segment.
fn looks_secret(token: &str) -> bool {
    if token.contains('/') {
        return token
            .split('/')
            .map(after_timestamp)
            .any(|segment| segment.len() >= MIN_SECRET_SEGMENT && looks_mixed(segment));
    }
    looks_mixed(after_timestamp(token))
}

/// What follows a leading compact UTC timestamp (`20261127T210555Z`, as run ids start), or the
/// whole token: a timestamp's digits and `T`/`Z` are not random, yet they made some run ids look
/// mixed enough to be masked in the paths acgs prints.
fn after_timestamp(token: &str) -> &str {
    let b = token.as_bytes();
    let stamped = b.len() >= 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    if stamped { &token[16..] } else { token }
}

/// The shortest `/`-separated segment that can carry a secret on its own: a random base64
/// token of 32+ characters almost never has more than two slashes.
const MIN_SECRET_SEGMENT: usize = 20;

fn looks_mixed(token: &str) -> bool {
    let has = |f: fn(&u8) -> bool| token.as_bytes().iter().any(f);
    let mut seen = [false; 128];
    let mut distinct = 0;
    for b in token.bytes().filter(u8::is_ascii) {
        let slot = &mut seen[usize::from(b)];
        if !*slot {
            *slot = true;
            distinct += 1;
        }
    }
    has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
        && distinct >= 16
}

/// The part of a gated match that must look random: its first group, else all of it.
fn gated_value<'t>(regex: &Regex, text: &'t str, m: &regex::Match<'t>) -> &'t str {
    regex
        .captures_at(text, m.start())
        .and_then(|c| c.get(1))
        .filter(|g| g.start() >= m.start() && g.end() <= m.end())
        .map_or(m.as_str(), |g| g.as_str())
}

/// Every finding in `text`, provider keys first.
#[must_use]
pub fn scan(text: &str) -> Vec<Finding> {
    let mut findings: Vec<Finding> = Vec::new();
    for rule in RULES.iter() {
        for m in rule.regex.find_iter(text) {
            if findings
                .iter()
                .any(|f| f.span.start < m.end() && m.start() < f.span.end)
            {
                continue;
            }
            if rule.gated && !looks_secret(gated_value(&rule.regex, text, &m)) {
                continue;
            }
            findings.push(Finding {
                rule: rule.name,
                severity: rule.severity,
                span: m.range(),
            });
        }
    }
    findings
}

/// The first refusing finding, if any.
#[must_use]
pub fn first_refusal(text: &str) -> Option<Finding> {
    scan(text)
        .into_iter()
        .find(|f| f.severity == Severity::Refuse)
}

/// `text` with every finding masked, or `None` when nothing matched.
#[must_use]
pub fn mask_findings(text: &str) -> Option<String> {
    let mut findings = scan(text);
    if findings.is_empty() {
        return None;
    }
    findings.sort_by_key(|f| f.span.start);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        out.push_str(&text[last..f.span.start]);
        out.push_str(MASK);
        last = f.span.end;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// The scanner as a scrubber for the redacting sink.
#[must_use]
pub fn scrubber() -> Scrubber {
    Arc::new(mask_findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAL: &str = "0f3c2b1a-1234-4abc-9def-0123456789ab:0123456789abcdef0123456789abcdef"; // acgs:allow-credential
    const GOOGLE: &str = "AIzaSyD-1234567890abcdefghijklmnopqrstu"; // acgs:allow-credential
    const ELEVEN: &str = "sk_0123456789abcdef0123456789abcdef0123456789abcdef"; // acgs:allow-credential

    #[test]
    fn every_rule_compiles() {
        assert_eq!(RULES.len(), 9);
    }

    #[test]
    fn provider_keys_are_refused() {
        for (key, rule) in [
            (FAL, "fal_key"),
            (GOOGLE, "google_api_key"),
            (ELEVEN, "elevenlabs_key"),
        ] {
            let text = format!("a cat wearing a hat, {key} please");
            let f = first_refusal(&text).expect(rule);
            assert_eq!(f.rule, rule);
            assert_eq!(&text[f.span.clone()], key);
        }
        assert!(first_refusal("-----BEGIN OPENSSH PRIVATE KEY-----\nabc").is_some()); // acgs:allow-credential
        assert!(first_refusal("-----BEGIN PRIVATE KEY-----").is_some()); // acgs:allow-credential
    }

    #[test]
    fn other_services_credentials_are_found() {
        // Fake values in each service's documented shape (AWS's own documentation example,
        // made-up tokens of the right alphabet and length).
        let slack_hook = [
            "https://hooks.slack.com/services/",
            "T00000000/B00000000/",
            "XXXXXXXXXXXXXXXXXXXXXXXX",
        ]
        .concat();
        for (text, rule) in [
            ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "aws_access_key"), // acgs:allow-credential
            (
                "token: ghp_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c", // acgs:allow-credential
                "github_token",
            ),
            (
                "SLACK=xoxb-123456789012-123456789012-AbCdEfGhIjKlMnOpQrStUvWx", // acgs:allow-credential
                "slack_token",
            ),
            (slack_hook.as_str(), "slack_token"),
            (
                r#"api_key = "Zq8Lm3Np7Rt2Vw9Xy4Ab6Cd1Ef5Gh0Jk""#, // acgs:allow-credential
                "generic_api_key",
            ),
            (
                r#"{"client_secret": "Q1w2E3r4T5y6U7i8O9p0AaSsDdFfGgHh"}"#, // acgs:allow-credential
                "generic_api_key",
            ),
        ] {
            assert_eq!(first_refusal(text).map(|f| f.rule), Some(rule), "{text}");
        }
        for text in [
            r#"api_key = "your-api-key-goes-here-please""#,
            r#"api_key = "${FAL_KEY}""#,
            "the access token expires after an hour",
            r#"secret_key = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa""#,
            "AKIA is how AWS keys start",
        ] {
            assert_eq!(first_refusal(text), None, "{text}");
        }
    }

    #[test]
    fn seeds_hashes_and_urls_pass() {
        for text in [
            "seed 920212137, guidance 3.5",
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "see https://v3.fal.media/files/rabbit/xyz.png",
            "request 80e732af-1f2e-4c3d-9e8f-0123456789ab",
            "a photo_of_a_very_long_identifier_name_in_snake_case_here",
            "/tmp/.tmpAbC12x/out/runs/20261127T222853Z-74f039/transcript.txt",
            "Projects/Client2026/Renders/FinalCut/Version7B/shot.png",
        ] {
            assert!(scan(text).is_empty(), "{text}: {:?}", scan(text));
        }
    }

    #[test]
    fn mixed_tokens_warn_and_are_masked() {
        let text = "token Zx9Qw7Er5Ty3Ui1Op0AsDfGhJkLzXcVbNm42 here";
        let findings = scan(text);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Warn);
        let masked = mask_findings(text).expect("masked");
        assert_eq!(masked, format!("token {MASK} here"));
    }

    #[test]
    fn base64_with_slashes_is_still_masked() {
        let text = "secret Zx9Qw7Er5Ty3Ui1Op0As/DfGhJkLzXcVbNm42Qa+8 end";
        assert_eq!(scan(text).len(), 1, "{:?}", scan(text));
    }

    #[test]
    fn run_folders_are_not_masked_however_their_ids_fall() {
        // 19 distinct characters, upper, lower and digits: masked before timestamps were set
        // aside.
        let path = "/tmp/.tmpAb12Cd/output/20261127T093845Z-fedcba/transcript.txt";
        assert_eq!(scan(path), Vec::new());
        let secret = "20261127T093845Z-Zx9Qw7Er5Ty3Ui1Op0AsDfGh";
        assert_eq!(
            scan(secret).len(),
            1,
            "what follows a timestamp is still judged"
        );
    }
}
