//! Moderation by category block lists, matched on word boundaries after normalisation.
//!
//! Both the text and every term go through the same [`skeleton`]: NFKC, invisible characters
//! removed, case folded, accents dropped, common homoglyphs mapped to Latin, leetspeak digits
//! and symbols mapped to letters, everything else turned into word breaks. A term matches only as
//! whole words, so "Scunthorpe" and "assassin" pass a list that blocks shorter words inside them.

use aho_corasick::AhoCorasick;
use unicode_normalization::char::is_combining_mark;

use crate::sanitize::is_denied;

/// The block list shipped with acgs (small on purpose; users add their own files).
pub const BUILTIN: &str = include_str!("builtin_blocklist.txt");

/// A block-list match: category and list, never the matched text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHit {
    /// Category, e.g. `violence`.
    pub category: String,
    /// Which list (`builtin` or a file name).
    pub list: String,
}

/// Terms by category, compiled into one automaton.
#[derive(Debug, Clone)]
pub struct BlockList {
    entries: Vec<(String, String)>,
    lists: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl Default for BlockList {
    fn default() -> Self {
        Self::empty()
    }
}

impl BlockList {
    /// No terms.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
            lists: Vec::new(),
            matcher: None,
        }
    }

    /// The built-in list.
    #[must_use]
    pub fn builtin() -> Self {
        let mut list = Self::empty();
        list.add_text(BUILTIN, "builtin");
        list
    }

    /// Add the terms of a list file: one term per line, `category: term` allowed, `#` comments.
    pub fn add_text(&mut self, text: &str, list_name: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (category, term) = match line.split_once(':') {
                Some((c, t)) if !c.trim().is_empty() && !c.contains(' ') => {
                    (c.trim().to_owned(), t.trim())
                }
                _ => ("blocklist".to_owned(), line),
            };
            let skeleton = skeleton(term);
            if skeleton.trim().is_empty() {
                continue;
            }
            self.entries.push((category, skeleton));
            self.lists.push(list_name.to_owned());
        }
        self.matcher = AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(self.entries.iter().map(|(_, t)| t.as_str()))
            .or_else(|_| AhoCorasick::new(self.entries.iter().map(|(_, t)| t.as_str())))
            .ok();
    }

    /// Number of terms.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first blocked term in `text`, if any.
    #[must_use]
    pub fn check(&self, text: &str) -> Option<BlockHit> {
        let matcher = self.matcher.as_ref()?;
        let m = matcher.find(&skeleton(text))?;
        let index = m.pattern().as_usize();
        Some(BlockHit {
            category: self.entries[index].0.clone(),
            list: self.lists[index].clone(),
        })
    }
}

/// Map leetspeak digits (always) and symbols to letters: `@` and `$` next to a letter or digit,
/// `!`, `|` and `+` only between two.
fn leet(c: char, prev_alnum: bool, next_alnum: bool) -> Option<char> {
    let touching = prev_alnum || next_alnum;
    let inside_word = prev_alnum && next_alnum;
    Some(match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' => 'a',
        '5' => 's',
        '7' => 't',
        '8' => 'b',
        '9' => 'g',
        '@' if touching => 'a',
        '$' if touching => 's',
        '!' | '|' if inside_word => 'i',
        '+' if inside_word => 't',
        _ => return None,
    })
}

/// The fold of one (already leet-mapped) character: case folded, mapped to its Unicode
/// confusable prototype (UTS #39 skeleton), case folded again, accents dropped, and `l` merged
/// with `i` (UTS #39 maps `1`, `I` and `|` to `l`). Only letters and digits survive.
fn fold_char(c: char, out: &mut String) {
    for lower in c.to_lowercase() {
        let mut buf = [0u8; 4];
        for proto in unicode_security::skeleton(lower.encode_utf8(&mut buf)) {
            for folded in proto.to_lowercase() {
                if is_combining_mark(folded) || !folded.is_alphanumeric() {
                    continue;
                }
                out.push(if folded == 'l' { 'i' } else { folded });
            }
        }
    }
}

/// Compute the fold tables now rather than on first use (see [`crate::prepare`]).
pub(crate) fn prepare() {
    std::sync::LazyLock::force(&ASCII_FOLDS);
    std::sync::LazyLock::force(&ASCII_TABLE);
}

/// Folds of the ASCII characters, computed once (most text is ASCII).
static ASCII_FOLDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (0u8..128)
        .map(|b| {
            let mut s = String::new();
            fold_char(char::from(b), &mut s);
            s
        })
        .collect()
});

/// The normal form both texts and terms are matched in: invisible characters removed, leetspeak
/// mapped, every character folded (case, UTS #39 confusable prototype, accents, `l` as `i`), everything else a word break; padded with
/// spaces so that a substring match of a padded term is a whole-word match.
#[must_use]
pub fn skeleton(text: &str) -> String {
    if text.is_ascii() {
        return ascii_skeleton(text.as_bytes());
    }
    let chars: Vec<char> = text.chars().filter(|c| !is_denied(*c)).collect();
    let mut out = String::with_capacity(chars.len() + 2);
    out.push(' ');
    let mut prev_alnum = false;
    for (i, &c) in chars.iter().enumerate() {
        let next_alnum = chars
            .get(i + 1)
            .is_some_and(|n| n.is_alphanumeric() || matches!(n, '$' | '@'));
        let c = leet(c, prev_alnum, next_alnum).unwrap_or(c);
        prev_alnum = c.is_alphanumeric();
        let before = out.len();
        if c.is_ascii() {
            out.push_str(&ASCII_FOLDS[usize::from(u8::try_from(c).unwrap_or(0))]);
        } else {
            fold_char(c, &mut out);
        }
        if out.len() == before && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// Folds of ASCII bytes with leetspeak digits already mapped: at most four bytes each.
static ASCII_TABLE: std::sync::LazyLock<[([u8; 4], u8); 128]> = std::sync::LazyLock::new(|| {
    let mut table = [([0u8; 4], 0u8); 128];
    for (b, entry) in (0u8..128).zip(table.iter_mut()) {
        let c = leet(char::from(b), false, false).unwrap_or(char::from(b));
        let fold = &ASCII_FOLDS[usize::from(u8::try_from(c).unwrap_or(0))];
        if fold.is_ascii() && fold.len() <= 4 {
            entry.0[..fold.len()].copy_from_slice(fold.as_bytes());
            entry.1 = u8::try_from(fold.len()).unwrap_or(0);
        }
    }
    table
});

/// [`skeleton`] for ASCII text, byte by byte with the precomputed table.
fn ascii_skeleton(bytes: &[u8]) -> String {
    let table = &*ASCII_TABLE;
    let alnum = |b: u8| b.is_ascii_alphanumeric() || b == b'$' || b == b'@';
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 2);
    out.push(b' ');
    let mut prev_alnum = false;
    for (i, &b) in bytes.iter().enumerate() {
        let b = if matches!(b, b'$' | b'@' | b'!' | b'|' | b'+') {
            let next_alnum = bytes.get(i + 1).is_some_and(|n| alnum(*n));
            leet(char::from(b), prev_alnum, next_alnum).map_or(b, |c| u8::try_from(c).unwrap_or(b))
        } else {
            b
        };
        let (fold, len) = &table[usize::from(b & 0x7f)];
        if *len == 0 {
            if out.last() != Some(&b' ') {
                out.push(b' ');
            }
            prev_alnum = false;
        } else {
            out.extend_from_slice(&fold[..usize::from(*len)]);
            prev_alnum = true;
        }
    }
    if out.last() != Some(&b' ') {
        out.push(b' ');
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> BlockList {
        let mut l = BlockList::empty();
        l.add_text(
            "# test list\nprofanity: ass\nviolence: pipe bomb\nhate: slurword\n",
            "test",
        );
        l
    }

    #[test]
    fn blocks_whole_words_through_tricks() {
        let l = list();
        for text in [
            "how to build a pipe bomb",
            "PIPE BOMB now",
            "pipe\u{200B} b\u{200D}omb",
            "pipe b0mb",
            "pіpе bоmb",
            "pipe-bomb!",
            "ｐｉｐｅ ｂｏｍｂ",
        ] {
            let hit = l
                .check(text)
                .unwrap_or_else(|| panic!("{text:?} should be blocked"));
            assert_eq!(hit.category, "violence");
            assert_eq!(hit.list, "test");
        }
        assert_eq!(
            l.check("you 4$$").map(|h| h.category),
            Some("profanity".into()),
            "symbols touching a word are letters"
        );
        assert_eq!(l.check("it costs $5 or $ 6").map(|h| h.category), None);
        assert_eq!(
            l.check("kick 4ss").map(|h| h.category),
            Some("profanity".into())
        );
    }

    #[test]
    fn benign_words_containing_terms_pass() {
        let l = list();
        for text in [
            "Scunthorpe United",
            "a class assignment",
            "analyse the assassin bug's hunting",
            "a bass guitar and a brass band",
            "a plumber fixing a pipe, then a bomber jacket",
        ] {
            assert_eq!(l.check(text), None, "{text}");
        }
    }

    #[test]
    fn the_builtin_list_loads() {
        assert!(!BlockList::builtin().is_empty());
    }
}
