//! Guard benchmarks (results in docs/benchmarks.md):
//!
//! - inspecting a typical 1 KiB prompt: sanitize + credential scan + moderation with a
//!   10,000-term list + injection rules (target: median ≤ 20 µs);
//! - throughput of the credential scanner and of moderation over 1 MiB of text with the
//!   10,000-term list (target: ≥ 100 MiB/s on one core), each next to a naive loop.
//!
//! The shipped rules are used, never a reduced set.

use std::hint::black_box;

use acgs_core::config::InjectionPolicy;
use acgs_core::redact::Redactor;
use acgs_guard::{BlockList, Guard, InspectOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A deterministic list of 10,000 one- to three-word terms, `category: term` lines.
fn ten_thousand_terms() -> String {
    const SYLLABLES: [&str; 24] = [
        "ka", "zu", "mor", "tel", "vin", "dra", "qui", "lor", "sem", "pax", "rho", "gul", "fen",
        "tor", "wix", "yal", "bre", "cos", "dun", "ept", "hax", "jor", "nim", "osk",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % 24).unwrap_or(0)
    };
    let mut out = String::new();
    for i in 0..10_000 {
        let words = 1 + i % 3;
        let term: Vec<String> = (0..words)
            .map(|_| (0..3).map(|_| SYLLABLES[next()]).collect::<String>())
            .collect();
        out.push_str(&format!("cat{}: {}\n", i % 12, term.join(" ")));
    }
    out
}

/// Ordinary prompt text, about 1 KiB.
fn prompt_1kib() -> String {
    let sentence = "A cinematic wide shot of a lighthouse on a rocky coast at dusk, warm light from the lantern, \
                    waves breaking below, seed 920212137, film grain, 35mm, shallow depth of field. ";
    let mut text = String::new();
    while text.len() < 1024 {
        text.push_str(sentence);
    }
    text.truncate(1024);
    text
}

/// 1 MiB of mixed text: prose, config-like lines, hashes and URLs.
fn mixed_1mib() -> String {
    let block = "The quick brown fox jumps over the lazy dog near the river bank.\n\
                 image_size = \"landscape_16_9\"  # seed 42\n\
                 sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
                 see https://v3.fal.media/files/rabbit/xyz.png for the reference\n";
    let mut text = String::with_capacity(1 << 20);
    while text.len() < (1 << 20) {
        text.push_str(block);
    }
    text.truncate(1 << 20);
    text
}

fn guard() -> Guard {
    let mut list = BlockList::builtin();
    list.add_text(&ten_thousand_terms(), "bench");
    Guard::new(list, Redactor::new())
}

fn bench_inspect(c: &mut Criterion) {
    let g = guard();
    let prompt = prompt_1kib();
    let options = InspectOptions {
        limit: 2000,
        injection: Some(InjectionPolicy::Block),
    };
    c.bench_function(
        "inspect 1 KiB prompt (10,000 terms, injection rules)",
        |b| b.iter(|| black_box(g.inspect("prompt", black_box(&prompt), options)).is_ok()),
    );
}

fn bench_throughput(c: &mut Criterion) {
    let text = mixed_1mib();
    let list = {
        let mut l = BlockList::builtin();
        l.add_text(&ten_thousand_terms(), "bench");
        l
    };
    let terms: Vec<String> = ten_thousand_terms()
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, t)| t.to_owned()))
        .collect();
    let mut group = c.benchmark_group("1 MiB");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.bench_function("credential scanner", |b| {
        b.iter(|| black_box(acgs_guard::scan::scan(black_box(&text))).len())
    });
    group.bench_function("moderation, 10,000 terms", |b| {
        b.iter(|| black_box(list.check(black_box(&text))))
    });
    group.bench_function("naive loop over 10,000 terms (lowercase + contains)", |b| {
        b.iter(|| {
            let lower = black_box(&text).to_lowercase();
            black_box(terms.iter().any(|t| lower.contains(t.as_str())))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_inspect, bench_throughput);
criterion_main!(benches);
