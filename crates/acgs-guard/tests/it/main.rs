//! The guard against checked-in adversarial and benign corpora, and property tests whose variants
//! come from Unicode's confusables data (through the same UTS #39 skeleton the guard uses) and a
//! fixed leetspeak table — not from hand-picked examples.

use std::sync::LazyLock;

use acgs_core::UserFacing as _;
use acgs_core::config::InjectionPolicy;
use acgs_core::redact::Redactor;
use acgs_guard::moderate::skeleton;
use acgs_guard::{BlockList, Guard, InspectOptions};
use proptest::prelude::*;

const BLOCKLIST: &str = include_str!("../corpus/blocklist.txt");

fn guard() -> Guard {
    let mut list = BlockList::builtin();
    list.add_text(BLOCKLIST, "corpus");
    Guard::new(list, Redactor::new())
}

fn text_model() -> InspectOptions {
    InspectOptions {
        limit: 10_000,
        injection: Some(InjectionPolicy::Block),
    }
}

fn corpus(name: &str) -> Vec<serde_json::Value> {
    let text = match name {
        "adversarial" => include_str!("../corpus/adversarial.jsonl"),
        _ => include_str!("../corpus/benign.jsonl"),
    };
    text.lines()
        .map(|l| serde_json::from_str(l).expect("corpus lines are JSON"))
        .collect()
}

/// The verdict in corpus notation: `pass`, `warn` or `refuse:<code>`.
fn verdict(g: &Guard, text: &str) -> String {
    match g.inspect("prompt", text, text_model()) {
        Err(e) => format!("refuse:{}", e.code()),
        Ok(i) if !i.warnings.is_empty() => "warn".into(),
        Ok(_) => "pass".into(),
    }
}

#[test]
fn the_adversarial_corpus_gets_its_expected_verdicts() {
    let g = guard();
    let mut wrong = Vec::new();
    let entries = corpus("adversarial");
    for entry in &entries {
        let text = entry["text"].as_str().expect("text");
        let expected = entry["expect"].as_str().expect("expect");
        let got = verdict(&g, text);
        if got != expected {
            wrong.push(format!("{}: expected {expected}, got {got}", entry["why"]));
        }
    }
    println!(
        "adversarial corpus: {} of {} as expected",
        entries.len() - wrong.len(),
        entries.len()
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_benign_corpus_passes_and_the_false_positive_rate_is_reported() {
    let g = guard();
    let entries = corpus("benign");
    let refused: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            let text = e["text"].as_str().expect("text");
            g.inspect("prompt", text, text_model())
                .err()
                .map(|err| format!("{text:?}: {}", err.code()))
        })
        .collect();
    println!(
        "benign corpus: {} texts, {} refused, false-positive rate {}/{}",
        entries.len(),
        refused.len(),
        refused.len(),
        entries.len()
    );
    assert!(refused.is_empty(), "{refused:#?}");
}

#[test]
fn refusals_never_repeat_the_text() {
    let g = guard();
    for entry in corpus("adversarial") {
        let text = entry["text"].as_str().expect("text");
        if let Err(e) = g.inspect("prompt", text, text_model()) {
            let message = format!("{e} {}", e.hint().unwrap_or_default());
            assert!(!message.contains(text), "{message}");
            for word in text.split_whitespace().filter(|w| w.len() > 12) {
                assert!(!message.contains(word), "{message} repeats {word}");
            }
        }
    }
}

/// For each Latin letter and digit, every character whose fold is the same: computed from the
/// Unicode confusables data through the guard's own skeleton.
static CONFUSABLES: LazyLock<Vec<(char, Vec<char>)>> = LazyLock::new(|| {
    let mut table: Vec<(char, Vec<char>)> = ('a'..='z').map(|c| (c, Vec::new())).collect();
    for cp in 0x80u32..0x3_0000 {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let folded = skeleton(&c.to_string());
        let folded = folded.trim();
        if folded.chars().count() != 1 || c.is_whitespace() {
            continue;
        }
        for (letter, candidates) in &mut table {
            if skeleton(&letter.to_string()).trim() == folded && candidates.len() < 64 {
                candidates.push(c);
            }
        }
    }
    table
});

const LEET: [(char, char); 8] = [
    ('o', '0'),
    ('i', '1'),
    ('e', '3'),
    ('a', '4'),
    ('s', '5'),
    ('t', '7'),
    ('b', '8'),
    ('g', '9'),
];
const INVISIBLE: [char; 6] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}',
];

/// One disguised letter: a confusable, a leetspeak digit, or the letter in another case.
fn disguise(c: char) -> BoxedStrategy<String> {
    let mut options: Vec<BoxedStrategy<String>> = vec![
        Just(c.to_string()).boxed(),
        Just(c.to_uppercase().to_string()).boxed(),
    ];
    if let Some((_, candidates)) = CONFUSABLES.iter().find(|(l, _)| *l == c)
        && !candidates.is_empty()
    {
        options.push(
            proptest::sample::select(candidates.clone())
                .prop_map(String::from)
                .boxed(),
        );
    }
    if let Some((_, digit)) = LEET.iter().find(|(l, _)| *l == c) {
        options.push(Just(digit.to_string()).boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

/// A disguised version of `term`, with invisible characters sprinkled in.
fn variant(term: &'static str) -> impl Strategy<Value = String> {
    let letters: Vec<BoxedStrategy<String>> = term
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                disguise(c)
            } else {
                Just(c.to_string()).boxed()
            }
        })
        .collect();
    (
        letters,
        proptest::collection::vec(
            proptest::option::of(proptest::sample::select(INVISIBLE.to_vec())),
            term.len(),
        ),
    )
        .prop_map(|(parts, hidden)| {
            parts
                .into_iter()
                .zip(hidden)
                .map(|(p, h)| h.map_or(p.clone(), |h| format!("{p}{h}")))
                .collect()
        })
}

const BLOCKED: [&str; 5] = ["pipe bomb", "meth recipe", "kill him", "slurword", "cock"];
const HARD_NEGATIVES: [&str; 8] = [
    "class",
    "passage",
    "cocktail",
    "scunthorpe",
    "assess",
    "peacock",
    "skill",
    "methodical",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn blocked_terms_survive_no_disguise(
        v in proptest::sample::select(BLOCKED.to_vec()).prop_flat_map(variant),
        prefix in "[a-z ]{0,12}",
    ) {
        let text = format!("{prefix} {v} now");
        let result = guard().inspect("prompt", &text, text_model());
        prop_assert!(matches!(result, Err(acgs_guard::GuardError::Blocked { .. })), "{:?} passed", text);
    }

    #[test]
    fn disguised_benign_words_still_pass(v in proptest::sample::select(HARD_NEGATIVES.to_vec()).prop_flat_map(variant)) {
        let text = format!("a photo about {v}, studio light");
        let result = guard().inspect("prompt", &text, text_model());
        prop_assert!(!matches!(result, Err(acgs_guard::GuardError::Blocked { .. })), "{:?} was blocked", text);
    }
}

proptest! {
    #[test]
    fn a_run_can_never_raise_a_configured_limit(
        per_run in 0i64..50_000_000, daily in 0i64..500_000_000, warn in 0i64..50_000_000, confirm: bool,
        o_run in proptest::option::of(0i64..100_000_000), o_daily in proptest::option::of(0i64..1_000_000_000),
        o_warn in proptest::option::of(0i64..100_000_000), o_confirm in proptest::option::of(proptest::bool::ANY),
    ) {
        use acgs_core::Usd;
        let cost = acgs_core::config::CostManagement {
            max_cost_per_run: Usd::from_micros(per_run),
            daily_limit: Usd::from_micros(daily),
            warn_threshold: Usd::from_micros(warn),
            require_confirmation: confirm,
            ..acgs_core::config::CostManagement::default()
        };
        let overrides = acgs_guard::budget::CostOverrides {
            max_cost_per_run: o_run.map(Usd::from_micros),
            daily_limit: o_daily.map(Usd::from_micros),
            warn_threshold: o_warn.map(Usd::from_micros),
            require_confirmation: o_confirm,
        };
        match acgs_guard::budget::tighten(&cost, &overrides) {
            Ok(t) => {
                prop_assert!(t.max_cost_per_run <= cost.max_cost_per_run);
                prop_assert!(t.daily_limit <= cost.daily_limit);
                prop_assert!(t.warn_threshold <= cost.warn_threshold);
                prop_assert!(t.require_confirmation || !cost.require_confirmation);
            }
            Err(key) => {
                let raised = match key {
                    "max_cost_per_run" => o_run > Some(per_run),
                    "daily_limit" => o_daily > Some(daily),
                    "warn_threshold" => o_warn > Some(warn),
                    "require_confirmation" => confirm && o_confirm == Some(false),
                    _ => false,
                };
                prop_assert!(raised, "refused `{}` without a loosening", key);
            }
        }
    }
}

#[test]
fn the_confusables_table_is_real() {
    let a = &CONFUSABLES.iter().find(|(l, _)| *l == 'a').expect("a").1;
    assert!(a.contains(&'\u{0430}'), "Cyrillic а is a confusable of a");
    let o = &CONFUSABLES.iter().find(|(l, _)| *l == 'o').expect("o").1;
    assert!(o.contains(&'\u{03BF}'), "Greek ο is a confusable of o");
    assert!(CONFUSABLES.iter().filter(|(_, c)| !c.is_empty()).count() >= 20);
}
