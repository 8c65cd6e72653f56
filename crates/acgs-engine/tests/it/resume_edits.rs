//! Resume must not be steerable by the run folder: for every field of a stopped run's
//! manifest, edited, `acgs resume` either finishes the original run (the job waited for, never
//! sent again) or refuses with a clear error — never a second submit of a step the ledger shows
//! as sent, never a file outside the run's recorded inputs read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use acgs_core::UserFacing as _;
use acgs_core::config::Config;
use acgs_core::ledger::{Ledger as _, ReservationState};
use acgs_core::provider::EventSink;
use acgs_core::redact::Redactor;
use acgs_engine::{GenerationRequest, Interrupt, KeyInfo, Resumed, Signal, Suite};
use acgs_http::{HttpClient, NetworkPolicy};
use acgs_storage::audit::AuditKey;
use acgs_storage::ledger_sqlite::SqliteLedger;
use acgs_storage::manifest::{MANIFEST_FILE, RecordKey};
use acgs_storage::runs::RunIndex;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome};
use secrecy::SecretString;
use serde_json::Value;

const ENDPOINT: &str = "fal-ai/kling-video/v2.6/pro/text-to-video";

/// A video run stopped by Ctrl-C with `--detach`: its job is submitted, its reservation too.
struct Stopped {
    _dir: tempfile::TempDir,
    fake: FakeFal,
    ledger: Arc<SqliteLedger>,
    suite: Suite,
    run_id: String,
    folder: std::path::PathBuf,
}

async fn stopped_run() -> Stopped {
    stopped_run_sealed(true).await
}

/// The suite of a stopped run's world, sealing records with the install key when `sealed`.
fn suite_for(
    dir: &std::path::Path,
    fake: &FakeFal,
    ledger: &Arc<SqliteLedger>,
    sealed: bool,
) -> Suite {
    let mut config = Config {
        output_dir: dir.join("output"),
        ..Config::default()
    };
    config.network.allow_http_loopback = true;
    config
        .providers
        .set(acgs_core::ProviderId::Fal, "queue_url", fake.uri());
    let redactor = Redactor::new();
    redactor.add_secret(FAL_KEY);
    let http = HttpClient::new(
        NetworkPolicy::from_config(&config.network),
        redactor.clone(),
    )
    .expect("http");
    let fal = acgs_providers_fal::FalProvider::new(
        http,
        &config.providers.urls(acgs_core::ProviderId::Fal),
        &SecretString::from(FAL_KEY),
    )
    .expect("fal");
    let mut builder = Suite::builder()
        .config(config)
        .catalog(acgs_providers_fal::catalog().expect("catalogue"))
        .provider(Arc::new(fal), KeyInfo::default())
        .ledger(ledger.clone())
        .secrets(redactor)
        .runs(RunIndex::new(dir.join("runs.jsonl")));
    if sealed {
        builder = builder.record_key(RecordKey::from_audit_key(&AuditKey::from_bytes(vec![
            9;
            32
        ])));
    }
    builder.build().expect("suite")
}

async fn stopped_run_sealed(sealed: bool) -> Stopped {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = FakeFal::builder(ENDPOINT)
        .queued(0)
        .in_progress(0)
        .outcome(Outcome::KeepRunning)
        .start()
        .await;
    let ledger = Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite3")).expect("ledger"));
    let suite = suite_for(dir.path(), &fake, &ledger, sealed);
    let request = GenerationRequest {
        model: "kling_2_6_pro".into(),
        texts: BTreeMap::from([("prompt".to_owned(), "waves at dusk".to_owned())]),
        detach: true,
        ..GenerationRequest::default()
    };
    let interrupt = Interrupt::new();
    let fired = interrupt.clone();
    let output = dir.path().join("output");
    tokio::spawn(async move {
        for _ in 0..2000 {
            let submitted = fs_err::read_dir(&output)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| fs_err::read_to_string(e.ok()?.path().join(MANIFEST_FILE)).ok())
                .is_some_and(|m| m.contains("\"status\": \"submitted\""));
            if submitted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fired.fire(Signal::Interrupt);
    });
    let err = suite
        .generate_with(&request, &EventSink::none(), &interrupt)
        .await
        .expect_err("interrupted");
    assert_eq!(err.code(), "run.interrupted");
    let folder = fs_err::read_dir(dir.path().join("output"))
        .expect("output")
        .next()
        .expect("a run")
        .expect("entry")
        .path();
    let run_id = folder
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    fake.complete_now().await;
    Stopped {
        _dir: dir,
        fake,
        ledger,
        suite,
        run_id,
        folder,
    }
}

/// `root` with the value at `path` replaced by `replacement`, or removed when `None`.
fn edited(root: &Value, path: &[String], replacement: Option<Value>) -> Option<Value> {
    let mut copy = root.clone();
    let (last, parents) = path.split_last()?;
    let mut at = &mut copy;
    for key in parents {
        at = match at {
            Value::Object(map) => map.get_mut(key)?,
            Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match (at, replacement) {
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Object(map), Some(r)) => {
            map.insert(last.clone(), r);
        }
        (Value::Array(items), Some(r)) => {
            *items.get_mut(last.parse::<usize>().ok()?)? = r;
        }
        _ => return None,
    }
    Some(copy)
}

/// Every way to edit one field of `root` below `path`: each leaf changed, each key removed,
/// each list emptied.
fn edits(root: &Value, value: &Value, path: &mut Vec<String>, out: &mut Vec<(String, Value)>) {
    fn push(out: &mut Vec<(String, Value)>, name: String, edit: Option<Value>) {
        if let Some(v) = edit {
            out.push((name, v));
        }
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                path.push(key.clone());
                push(
                    out,
                    format!("remove {}", path.join(".")),
                    edited(root, path, None),
                );
                edits(root, inner, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            push(
                out,
                format!("empty {}", path.join(".")),
                edited(root, path, Some(Value::Array(Vec::new()))),
            );
            for (i, inner) in items.iter().enumerate() {
                path.push(i.to_string());
                edits(root, inner, path, out);
                path.pop();
            }
        }
        leaf => {
            let changed = match leaf {
                Value::String(s) => Value::String(format!("{s}x")),
                Value::Number(n) => Value::from(n.as_u64().map_or(1, |v| v.wrapping_add(1))),
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::String("x".into()),
            };
            push(
                out,
                format!("change {}", path.join(".")),
                edited(root, path, Some(changed)),
            );
        }
    }
}

/// Codes a refusal may carry.
const REFUSALS: [&str; 3] = ["storage.corrupt", "run.outcome_unknown", "model.unknown"];

async fn resume_edited(name: &str, edit: impl FnOnce(&mut Value)) {
    let run = stopped_run().await;
    let path = run.folder.join(MANIFEST_FILE);
    let mut manifest: Value =
        serde_json::from_str(&fs_err::read_to_string(&path).expect("manifest")).expect("json");
    edit(&mut manifest);
    fs_err::write(&path, serde_json::to_vec_pretty(&manifest).expect("json")).expect("write");
    let resumed = run
        .suite
        .resume(&run.run_id, false, &EventSink::none(), &Interrupt::new())
        .await;
    assert_eq!(run.fake.submits().await, 1, "{name}: never sent twice");
    assert!(
        run.fake.uploads().is_empty(),
        "{name}: no file was read and uploaded"
    );
    let rows = run.ledger.reservations(None).await.expect("rows");
    assert_eq!(rows.len(), 1, "{name}: nothing else reserved");
    match resumed {
        Ok(Resumed::Single(report)) => {
            assert_eq!(report.outputs.len(), 1, "{name}");
            assert_eq!(rows[0].state, ReservationState::Settled, "{name}");
        }
        Ok(Resumed::Pipeline(_)) => panic!("{name}: a single run resumed as a pipeline"),
        Err(e) => {
            assert!(REFUSALS.contains(&e.code()), "{name}: {} ({e})", e.code());
            assert_eq!(
                rows[0].state,
                ReservationState::Submitted,
                "{name}: still counting"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_edited_in_any_field_cannot_make_resume_pay_twice_or_read_a_file() {
    let run = stopped_run().await;
    let manifest: Value = serde_json::from_str(
        &fs_err::read_to_string(run.folder.join(MANIFEST_FILE)).expect("manifest"),
    )
    .expect("json");
    drop(run);
    let mut all = Vec::new();
    edits(&manifest, &manifest, &mut Vec::new(), &mut all);
    assert!(all.len() > 40, "every field: {}", all.len());
    for (name, edited) in all {
        resume_edited(&name, |m| *m = edited).await;
    }
    // The attack of the review: the step set back to pending and an input planted, seals
    // stripped and the record made to look older than seals.
    resume_edited("downgraded and planted", |m| {
        m["seal"] = Value::Null;
        let step = &mut m["steps"][0];
        step["status"] = "pending".into();
        step["seal"] = Value::Null;
        step["request"]["version"] = 0.into();
        step["request"]["inputs"] = serde_json::json!([["image", "/etc/hostname"]]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_written_before_records_were_sealed_still_resumes() {
    let run = stopped_run_sealed(false).await;
    let manifest = fs_err::read_to_string(run.folder.join(MANIFEST_FILE)).expect("manifest");
    assert!(!manifest.contains("\"seal\""), "an unsealed run");
    let sealing = suite_for(run._dir.path(), &run.fake, &run.ledger, true);
    let resumed = sealing
        .resume(&run.run_id, false, &EventSink::none(), &Interrupt::new())
        .await
        .expect("an old run resumes");
    let Resumed::Single(report) = resumed else {
        panic!("a single run")
    };
    assert_eq!(report.outputs.len(), 1);
    assert_eq!(run.fake.submits().await, 1, "waited for, not sent again");
}
