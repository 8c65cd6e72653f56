//! acgs project chores.
//!
//! `cargo xtask ci` is the README's test command: formatting, the crate-graph check, clippy with
//! `-D warnings`, the tests (nextest where installed, plus doctests), rustdoc with `-D warnings`,
//! benches compiled (not run), `dist` checked, packaging checked and `cargo deny`. It prints the
//! time of each phase. `cargo xtask release <version>` and `cargo xtask dist` make releases
//! (docs/releasing.md).

mod ci;
mod deny;
mod dist;
mod layers;
mod modules;
mod package;
mod pg;
mod release;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(&args[1..]),
        Some("layers") => layers::check(&ci::workspace_root())
            .and_then(|()| modules::check(&ci::workspace_root())),
        Some("release") => release::run(&args[1..]),
        Some("dist") => dist::run(&args[1..]),
        Some("package") => package::check(&ci::workspace_root()),
        _ => {
            usage();
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = std::io::Write::write_all(&mut err, format!("xtask: {e:#}\n").as_bytes());
            ExitCode::FAILURE
        }
    }
}

fn usage() {
    let text = "usage: cargo xtask <task>\n\n  ci       fmt, crate graph, clippy, tests, docs, benches (compiled), cargo deny\n  layers   only the crate-graph and module-layer checks (xtask/layers.toml, modules.toml)\n  release  <version> [--dry-run] [--no-checks]: bump, changelog, checks, commit and tag\n  dist     [--debug]: binary, completions, man pages, tarball and SHA256SUMS in target/dist\n  package  the packaging checks: metadata, licences, `cargo package` of every publishable crate\n";
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
}
