//! "Did you mean …?": the names closest to a misspelt one, by normalised Damerau–Levenshtein
//! similarity (`strsim`), so that a swapped pair of letters finds its word and an unrelated
//! word finds nothing (`nope` suggests no `topaz`).

/// How similar a candidate must be (1.0 is equal) to be suggested.
const THRESHOLD: f64 = 0.6;

/// Up to `limit` of `candidates` closest to `name`, best first (ties alphabetical); compared
/// without case. A candidate containing the whole name (`flux` in `flux_dev`) also counts.
#[must_use]
pub fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(u32, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_lowercase();
            let similarity = strsim::normalized_damerau_levenshtein(&name, &lower);
            let contains = name.chars().count() >= 3 && lower.contains(&name);
            // Scores in thousandths, so that ties sort by name.
            let score = if contains { 1000 } else { permille(similarity) };
            (score >= permille(THRESHOLD)).then_some((1000 - score, candidate))
        })
        .collect();
    scored.sort_unstable();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

/// `similarity` (0.0–1.0) in thousandths.
fn permille(similarity: f64) -> u32 {
    // Bounded to 0..=1000 before the cast.
    #[expect(
        clippy::float_arithmetic,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a similarity in 0.0..=1.0 scaled to an integer"
    )]
    let scaled = (similarity.clamp(0.0, 1.0) * 1000.0).round() as u32;
    scaled
}

/// " (did you mean a, b?)" for a message, or nothing.
#[must_use]
pub fn did_you_mean<S: AsRef<str>>(suggestions: &[S]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = suggestions.iter().map(AsRef::as_ref).collect();
        format!(" (did you mean {}?)", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_find_their_word_and_nonsense_finds_nothing() {
        let keys = [
            "flux_dev",
            "flux_schnell",
            "topaz_video",
            "kontext",
            "imagen4",
        ];
        assert_eq!(closest("flux_dve", keys, 3)[0], "flux_dev");
        assert_eq!(closest("FLUX", keys, 3), ["flux_dev", "flux_schnell"]);
        assert_eq!(closest("kontxt", keys, 3), ["kontext"]);
        assert!(
            closest("nope", keys, 3).is_empty(),
            "{:?}",
            closest("nope", keys, 3)
        );
        assert!(closest("", keys, 3).is_empty());
        let voices = ["Rachel", "Adam", "Bella"];
        assert_eq!(closest("rachle", voices, 3), ["Rachel"]);
        assert!(closest("Zyx", voices, 3).is_empty());
    }
}
