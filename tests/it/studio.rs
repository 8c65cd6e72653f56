//! What the pipeline and film tests share: a sandbox pointing every provider at one studio
//! fake, the examples, step statuses, and a running run's manifest.

use std::path::{Path, PathBuf};

use acgs_e2e::Sandbox;
use acgs_storage::manifest::Manifest;
use acgs_storage::output::OutputRoot;
use acgs_testkit::canary::{ELEVENLABS_KEY, FAL_KEY, GEMINI_KEY};
use acgs_testkit::studio::FakeStudio;

/// A sandbox with every provider's key and URL pointing at `studio`.
pub(super) fn sandbox_for(studio: &FakeStudio) -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("GEMINI_API_KEY", GEMINI_KEY)
        .set_env("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &studio.uri())
        .set_env("ACGS_PROVIDERS__FAL__REST_URL", &studio.uri())
        .set_env("ACGS_PROVIDERS__GEMINI__BASE_URL", &studio.uri())
        .set_env("ACGS_PROVIDERS__ELEVENLABS__BASE_URL", &studio.uri())
        .set_env("ACGS_NETWORK__ALLOW_HTTP_LOOPBACK", "true");
    sb
}

/// Copy example `name` into the sandbox's working folder.
pub(super) fn example(sb: &Sandbox, name: &str) -> String {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    fs_err::copy(from, sb.work().join(name)).expect("example");
    name.to_owned()
}

/// Each step's id and status in a run's `--json` result.
pub(super) fn statuses(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or_default().to_owned(),
                s["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A running pipeline's manifest as `acgs resume` would read it (with its journal).
pub(super) fn live_manifest(folder: &Path) -> Option<Manifest> {
    let run = OutputRoot::open(folder.parent()?)
        .ok()?
        .open_run(folder.file_name()?.to_str()?)
        .ok()?;
    Manifest::load(&run).ok()
}
