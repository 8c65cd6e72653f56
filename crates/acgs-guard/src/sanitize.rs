//! The sanitizer: NFKC, then removal of characters that hide or reorder text.
//!
//! Removed code points (the deny set, checked by [`is_denied`]):
//!
//! | range | what |
//! |---|---|
//! | U+0000–U+001F except U+0009, U+000A | C0 controls (tab and newline are kept) |
//! | U+007F–U+009F | DEL and C1 controls |
//! | U+00AD | soft hyphen |
//! | U+034F | combining grapheme joiner |
//! | U+061C | Arabic letter mark |
//! | U+115F, U+1160, U+3164, U+FFA0 | Hangul fillers (render as blank) |
//! | U+17B4, U+17B5 | Khmer inherent vowels (invisible) |
//! | U+180B–U+180F | Mongolian variation selectors and vowel separator |
//! | U+200B–U+200F | zero-width space, non-joiner, joiner, LRM, RLM |
//! | U+2028, U+2029 | line and paragraph separators |
//! | U+202A–U+202E | bidi embeddings and overrides |
//! | U+2060–U+206F | word joiner, invisible operators, bidi isolates, deprecated format characters |
//! | U+FE00–U+FE0F | variation selectors |
//! | U+FEFF | zero-width no-break space (BOM) |
//! | U+FFF9–U+FFFB | interlinear annotation controls |
//! | U+1D173–U+1D17A | musical symbol format controls |
//! | U+E0000–U+E007F | tag characters (invisible ASCII smuggling) |
//! | U+E0100–U+E01EF | variation selectors supplement (byte smuggling) |
//!
//! Then leading and trailing whitespace is trimmed. The result is idempotent: sanitizing twice
//! changes nothing more.

use unicode_normalization::UnicodeNormalization as _;

/// Whether `c` is in the deny set documented above.
#[must_use]
pub fn is_denied(c: char) -> bool {
    let cp = u32::from(c);
    matches!(cp,
        0x00..=0x08 | 0x0B..=0x1F | 0x7F..=0x9F | 0xAD | 0x34F | 0x61C
        | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x2028 | 0x2029 | 0x202A..=0x202E | 0x2060..=0x206F
        | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB
        | 0x1D173..=0x1D17A | 0xE0000..=0xE007F | 0xE0100..=0xE01EF)
}

/// A sanitized text and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    /// The clean text.
    pub text: String,
    /// Characters removed from the deny set.
    pub removed: usize,
    /// Whether NFKC changed the text.
    pub normalized: bool,
    /// Whether whitespace was trimmed.
    pub trimmed: bool,
}

impl Sanitized {
    /// Whether anything changed.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.removed > 0 || self.normalized || self.trimmed
    }
}

/// Sanitize `input`: NFKC, remove the deny set, trim.
#[must_use]
pub fn sanitize(input: &str) -> Sanitized {
    // Printable ASCII with tabs and newlines is already NFKC and free of the deny set.
    if input
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\t')
    {
        let text = input.trim();
        return Sanitized {
            trimmed: text.len() != input.len(),
            text: text.to_owned(),
            removed: 0,
            normalized: false,
        };
    }
    let mut normalized_text = String::with_capacity(input.len());
    let mut removed = 0;
    // NFKC can produce denied characters (and removal can enable new compositions), so filter on
    // both sides until the text is stable; two passes suffice in practice, four bound it.
    let mut current: String = input.nfkc().collect();
    let normalized = current != input;
    for _ in 0..4 {
        normalized_text.clear();
        let mut removed_now = 0;
        for c in current.chars() {
            if is_denied(c) {
                removed_now += 1;
            } else {
                normalized_text.push(c);
            }
        }
        removed += removed_now;
        let renormalized: String = normalized_text.nfkc().collect();
        let stable = removed_now == 0 && renormalized == normalized_text;
        current = renormalized;
        if stable {
            break;
        }
    }
    let trimmed_text = current.trim();
    let trimmed = trimmed_text.len() != current.len();
    Sanitized {
        text: trimmed_text.to_owned(),
        removed,
        normalized,
        trimmed,
    }
}

/// The text as a model may read it: Unicode tag characters (U+E0020–U+E007E), which the sanitizer
/// removes, decoded in place to the ASCII they smuggle; other denied characters dropped. Empty
/// when the input carries no tag characters.
#[must_use]
pub fn tag_text(input: &str) -> String {
    if !input
        .chars()
        .any(|c| (0xE0020..=0xE007E).contains(&u32::from(c)))
    {
        return String::new();
    }
    input
        .chars()
        .filter_map(|c| {
            let cp = u32::from(c);
            if (0xE0020..=0xE007E).contains(&cp) {
                char::from_u32(cp - 0xE0000)
            } else {
                (!is_denied(c)).then_some(c)
            }
        })
        .collect()
}

/// The text as displayed when it contains right-to-left overrides (U+202E … U+202C or end of
/// line), so that reversed terms are seen the way a reader sees them; `None` without overrides.
#[must_use]
pub fn visual_order(input: &str) -> Option<String> {
    if !input.contains('\u{202E}') {
        return None;
    }
    let mut out = String::with_capacity(input.len());
    let mut reversed: Vec<char> = Vec::new();
    let mut in_override = false;
    for c in input.chars() {
        match c {
            '\u{202E}' => in_override = true,
            '\u{202C}' | '\n' if in_override => {
                out.extend(reversed.drain(..).rev());
                in_override = false;
                if c == '\n' {
                    out.push(c);
                }
            }
            _ if in_override => reversed.push(c),
            _ => out.push(c),
        }
    }
    out.extend(reversed.drain(..).rev());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn removes_invisible_and_reordering_characters() {
        let s =
            sanitize("  ig\u{200B}nore\u{202E}txet\u{2066} \u{E0041}\u{E0042}hi\u{FEFF}\u{0007}\n");
        assert_eq!(s.text, "ignoretxet hi");
        assert_eq!(s.removed, 7);
        assert!(s.changed());
    }

    #[test]
    fn recovers_hidden_and_reversed_text() {
        assert_eq!(
            tag_text("hi \u{E0069}\u{E0067}\u{E006E}\u{200B}ore"),
            "hi ignore"
        );
        assert_eq!(tag_text("plain"), "");
        assert_eq!(
            visual_order("x \u{202E}cba\u{202C} y").as_deref(),
            Some("x abc y")
        );
        assert_eq!(visual_order("plain"), None);
    }

    #[test]
    fn normalizes_compatibility_forms() {
        assert_eq!(sanitize("ｆｕｌｌｗｉｄｔｈ ﬁ").text, "fullwidth fi");
    }

    #[test]
    fn keeps_tabs_newlines_and_ordinary_unicode() {
        let text = "line one\n\tline two — café, 東京, emoji 🎨";
        let s = sanitize(text);
        assert_eq!(s.text, text);
        assert!(!s.changed());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn idempotent_and_free_of_the_deny_set(input in any::<String>()) {
            let once = sanitize(&input);
            prop_assert!(once.text.chars().all(|c| !is_denied(c)));
            let twice = sanitize(&once.text);
            prop_assert_eq!(&twice.text, &once.text);
            prop_assert!(!twice.changed());
        }

        #[test]
        fn invisible_insertions_do_not_survive(
            word in "[a-z]{1,12}",
            hidden in proptest::collection::vec(prop_oneof![
                Just('\u{200B}'), Just('\u{200D}'), Just('\u{2060}'), Just('\u{FEFF}'),
                Just('\u{202E}'), Just('\u{2066}'), Just('\u{E0041}'), Just('\u{E0101}'), Just('\u{00AD}'),
            ], 1..6),
            positions in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
        ) {
            let mut chars: Vec<char> = word.chars().collect();
            for (c, at) in hidden.iter().zip(positions) {
                let i = at.index(chars.len() + 1);
                chars.insert(i, *c);
            }
            let smuggled: String = chars.into_iter().collect();
            prop_assert_eq!(sanitize(&smuggled).text, word);
        }
    }
}
