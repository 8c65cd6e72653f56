//! The redactor behind the one redacting sink: it knows every loaded and derived secret and their
//! encoded forms (base64 in any alignment, URL-encoded, JSON-escaped) and masks them in any text,
//! then applies pattern scrubbers (the guard's credential scanner).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Shortest needle acgs masks; shorter fragments would mask ordinary text.
const MIN_NEEDLE: usize = 6;

/// A run of this many characters of a loaded key, anywhere in a text, is masked (a provider or a
/// model echoing part of a key).
const KEY_RUN: usize = 12;

/// A pattern scrubber: returns the text with its matches masked, or `None` when nothing matched.
pub type Scrubber = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Masks secrets in text. Cheap to clone (shared state); secrets can be added at any time.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    needles: Vec<String>,
    /// Loaded keys (and each half of an `id:secret`), whose runs of [`KEY_RUN`] characters
    /// are masked wherever they appear.
    keys: Vec<String>,
    scrubbers: Vec<Scrubber>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.inner.read().map(|i| i.needles.len()).unwrap_or(0);
        write!(f, "Redactor({count} needles)")
    }
}

impl Redactor {
    /// An empty redactor.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Learn a secret: the whole value, each half of an `id:secret` pair, and the encoded forms of
    /// each (base64 standard and URL-safe in all three alignments, URL-encoded, JSON-escaped).
    pub fn add_secret(&self, secret: &str) {
        let mut parts = vec![secret.to_owned()];
        if let Some((id, rest)) = secret.split_once(':') {
            parts.push(id.to_owned());
            parts.push(rest.to_owned());
        }
        if let Ok(mut inner) = self.inner.write() {
            for part in parts.iter().filter(|p| p.len() >= KEY_RUN) {
                if !inner.keys.contains(part) {
                    inner.keys.push(part.clone());
                }
            }
        }
        let mut needles = Vec::new();
        for part in parts.iter().filter(|p| p.len() >= MIN_NEEDLE) {
            needles.push(part.clone());
            needles.push(percent_encode(part));
            if let Ok(json) = serde_json::to_string(part) {
                needles.push(json.trim_matches('"').to_owned());
            }
            needles.extend(base64_cores(part.as_bytes()));
        }
        self.add_needles(needles);
    }

    /// Learn literal strings to mask as they are (tokens, session URLs).
    pub fn add_literal(&self, literal: &str) {
        self.add_needles([literal.to_owned()]);
    }

    fn add_needles(&self, needles: impl IntoIterator<Item = String>) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        for needle in needles {
            if needle.len() >= MIN_NEEDLE && !inner.needles.contains(&needle) {
                inner.needles.push(needle);
            }
        }
        inner.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Add a pattern scrubber, applied after the known secrets.
    pub fn add_scrubber(&self, scrubber: Scrubber) {
        if let Ok(mut inner) = self.inner.write() {
            inner.scrubbers.push(scrubber);
        }
    }

    /// `text` with every known secret and pattern match masked.
    #[must_use]
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Ok(inner) = self.inner.read() else {
            return Cow::Borrowed(MASK);
        };
        let mut out = match key_runs(&inner.keys, text) {
            Some(masked) => Cow::Owned(masked),
            None => Cow::Borrowed(text),
        };
        for needle in &inner.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), MASK));
            }
        }
        for scrub in &inner.scrubbers {
            if let Some(scrubbed) = scrub(&out) {
                out = Cow::Owned(scrubbed);
            }
        }
        out
    }

    /// Whether `text` contains a known secret (exact forms only).
    #[must_use]
    pub fn contains_secret(&self, text: &str) -> bool {
        self.inner
            .read()
            .map(|inner| inner.needles.iter().any(|n| text.contains(n.as_str())))
            .unwrap_or(true)
    }
}

/// `text` with every run of [`KEY_RUN`] or more characters of one of `keys` masked, or `None`
/// when it holds none. Overlapping and adjacent runs are masked as one.
fn key_runs(keys: &[String], text: &str) -> Option<String> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for key in keys {
        for start in (0..=key.len().saturating_sub(KEY_RUN)).filter(|i| key.is_char_boundary(*i)) {
            let end = start + KEY_RUN;
            if !key.is_char_boundary(end) {
                continue;
            }
            let window = &key[start..end];
            spans.extend(text.match_indices(window).map(|(at, w)| (at, at + w.len())));
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let (mut written, mut open): (usize, Option<(usize, usize)>) = (0, None);
    for (from, to) in spans {
        match open {
            Some((start, end)) if from <= end => open = Some((start, end.max(to))),
            Some((start, end)) => {
                out.push_str(&text[written..start]);
                out.push_str(MASK);
                written = end;
                open = Some((from, to));
            }
            None => open = Some((from, to)),
        }
    }
    if let Some((start, end)) = open {
        out.push_str(&text[written..start]);
        out.push_str(MASK);
        written = end;
    }
    out.push_str(&text[written..]);
    Some(out)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The base64 characters that depend only on `secret`'s bytes, for each of the three alignments
/// it can have inside a larger encoded value (standard and URL-safe alphabets).
fn base64_cores(secret: &[u8]) -> Vec<String> {
    let mut cores = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(secret);
        let first_group = offset.div_ceil(3);
        let last_group = padded.len() / 3;
        if last_group <= first_group {
            continue;
        }
        let bytes = &padded[first_group * 3..last_group * 3];
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            cores.push(engine.encode(bytes));
        }
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    const FAL: &str = "11111111-2222-3333-4444-555555555555:abcdefabcdefabcdefabcdefabcdef12"; // acgs:allow-credential

    #[test]
    fn any_run_of_twelve_characters_of_a_key_is_masked_whole() {
        let r = Redactor::new();
        let key = "sk_live_Zq8Lm3Np7Rt2Vw9Xy4Ab6Cd1";
        r.add_secret(key);
        let echoed = format!("prefix {} suffix", &key[3..25]);
        let masked = r.redact(&echoed);
        assert_eq!(
            masked,
            format!("prefix {MASK} suffix"),
            "the whole run, not a window"
        );
        assert!(!masked.contains(&key[15..25]));
        let short = format!("id {}", &key[0..11]);
        assert_eq!(r.redact(&short), short, "eleven characters are not a run");
        let two = format!("{} and {}", &key[0..12], &key[14..28]);
        assert_eq!(r.redact(&two), format!("{MASK} and {MASK}"));
    }

    #[test]
    fn masks_whole_halves_and_encodings() {
        let r = Redactor::new();
        r.add_secret(FAL);
        let (id, secret) = FAL.split_once(':').expect("pair");
        let samples = [
            format!("Authorization: Key {FAL}"),
            format!("id was {id}"),
            format!("secret={secret}"),
            format!("basic {}", STANDARD.encode(FAL)),
            format!("shifted {}", STANDARD.encode(format!("x{FAL}"))),
            format!("shifted twice {}", STANDARD.encode(format!("xy{secret}"))),
            format!("url {}", percent_encode(FAL)),
        ];
        for sample in samples {
            let out = r.redact(&sample);
            assert!(!out.contains(secret) && !out.contains(id), "{out}");
            assert!(out.contains(MASK), "{sample} → {out}");
            let b64 = STANDARD.encode(secret);
            assert!(!out.contains(&b64[..b64.len() - 4]), "{out}");
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let r = Redactor::new();
        r.add_secret("short");
        r.add_secret(FAL);
        assert_eq!(
            r.redact("a short note about cats"),
            "a short note about cats"
        );
    }

    #[test]
    fn scrubbers_run_after_secrets() {
        let r = Redactor::new();
        r.add_scrubber(Arc::new(|t: &str| {
            t.contains("AIza").then(|| t.replace("AIza", MASK))
        }));
        assert_eq!(r.redact("key AIza…"), format!("key {MASK}…"));
    }
}
