//! One road: a pipeline of one step and the single command for the same request leave the same
//! ledger rows, the same audit entries and the same manifest step record, whatever happens —
//! success (with a spend alert), provider failure, guard refusal, moderation refusal, budget
//! refusal, confirmation refusal, interrupted job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use acgs_core::Usd;
use acgs_core::config::{Config, Fraction};
use acgs_core::ledger::Ledger as _;
use acgs_core::moderation::Moderator;
use acgs_core::provider::EventSink;
use acgs_core::redact::Redactor;
use acgs_engine::{
    Caller, Confirm, ConfirmAnswer, GenerationRequest, Interrupt, KeyInfo, Signal, Suite,
};
use acgs_http::{HttpClient, NetworkPolicy};
use acgs_storage::ledger_sqlite::SqliteLedger;
use acgs_storage::manifest::{Manifest, StepRecord};
use acgs_storage::output::OutputRoot;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome};
use secrecy::SecretString;

use super::{MemoryAudit, Refuses};

/// What one scenario sets up.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    Success,
    ProviderFailure,
    GuardRefusal,
    ModerationRefusal,
    BudgetRefusal,
    ConfirmationRefusal,
    Interrupted,
}

struct Declines;

impl Confirm for Declines {
    fn confirm(&self, _: &str, _: Usd, _: bool) -> ConfirmAnswer {
        ConfirmAnswer::No
    }
}

/// What an entrance left behind, in a form both entrances can be compared on.
#[derive(Debug, PartialEq)]
struct Trace {
    /// (state, estimate, actual), sorted.
    ledger: Vec<(String, Usd, Option<Usd>)>,
    /// (operation, outcome, code, step, model, estimate, actual), the pipeline's own run entry
    /// left out.
    audit: Vec<String>,
    /// The step's record, without what names the run or the entrance (ids, times, file names,
    /// the request's `--out`).
    step: Option<String>,
}

struct World {
    dir: tempfile::TempDir,
    _fake: FakeFal,
    audit: Arc<MemoryAudit>,
    ledger: Arc<SqliteLedger>,
    suite: Suite,
}

impl Scenario {
    fn prompt(self) -> String {
        match self {
            Self::GuardRefusal => format!("a lighthouse, key {FAL_KEY}"),
            Self::ModerationRefusal => "a forbidden lighthouse".into(),
            _ => "a lighthouse at dusk".into(),
        }
    }

    async fn world(self) -> World {
        let dir = tempfile::tempdir().expect("tmp");
        let outcome = match self {
            Self::ProviderFailure => Outcome::CompletedWithError,
            Self::Interrupted => Outcome::KeepRunning,
            _ => Outcome::Images,
        };
        let fake = FakeFal::builder("fal-ai/flux/dev")
            .queued(0)
            .in_progress(0)
            .outcome(outcome)
            .start()
            .await;
        let mut config = Config {
            output_dir: dir.path().join("output"),
            ..Config::default()
        };
        config.network.allow_http_loopback = true;
        config
            .providers
            .set(acgs_core::ProviderId::Fal, "queue_url", fake.uri());
        config.cost_management.daily_limit = Usd::from_micros(200_000);
        config.cost_management.alert_at = vec![Fraction(100)];
        if matches!(self, Self::BudgetRefusal) {
            config.cost_management.daily_limit = Usd::from_micros(10_000);
        }
        // Ask about every spend, however small.
        config.cost_management.confirm_above = Usd::ZERO;
        let ledger =
            Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite3")).expect("ledger"));
        let audit = Arc::new(MemoryAudit::default());
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
            .audit(audit.clone())
            .secrets(redactor)
            .caller(Caller::new("tester"));
        if matches!(self, Self::ModerationRefusal) {
            let moderator: Arc<dyn Moderator> = Arc::new(Refuses("forbidden"));
            builder = builder.moderator(moderator);
        }
        if matches!(self, Self::ConfirmationRefusal) {
            builder = builder.caller(Caller::new("tester").confirm(Arc::new(Declines)));
        }
        World {
            suite: builder.build().expect("suite"),
            dir,
            _fake: fake,
            audit,
            ledger,
        }
    }
}

impl World {
    /// An interrupt fired once the job is submitted (in the interrupted scenario).
    fn interrupt_when_submitted(&self, scenario: Scenario) -> Interrupt {
        let interrupt = Interrupt::new();
        if matches!(scenario, Scenario::Interrupted) {
            let (fired, dir) = (interrupt.clone(), self.dir.path().to_owned());
            tokio::spawn(async move {
                for _ in 0..2000 {
                    if submitted(&dir) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                fired.fire(Signal::Interrupt);
            });
        }
        interrupt
    }

    async fn single(&self, scenario: Scenario) {
        let request = GenerationRequest {
            model: "flux_dev".into(),
            texts: BTreeMap::from([("prompt".to_owned(), scenario.prompt())]),
            ..GenerationRequest::default()
        };
        let interrupt = self.interrupt_when_submitted(scenario);
        let _ = self
            .suite
            .generate_with(&request, &EventSink::none(), &interrupt)
            .await;
    }

    async fn pipeline(&self, scenario: Scenario) {
        let file = self.dir.path().join("one.yaml");
        let yaml = format!(
            "version: 1\nsteps:\n  - id: main\n    model: flux_dev\n    prompt: {:?}\n",
            scenario.prompt()
        );
        fs_err::write(&file, yaml).expect("pipeline file");
        let pipeline = self.suite.load_pipeline(&file).expect("valid file");
        let interrupt = self.interrupt_when_submitted(scenario);
        let _ = self
            .suite
            .run_pipeline(
                &pipeline,
                &BTreeMap::new(),
                false,
                &EventSink::none(),
                &interrupt,
            )
            .await;
    }

    async fn trace(&self) -> Trace {
        let mut ledger: Vec<_> = self
            .ledger
            .reservations(None)
            .await
            .expect("rows")
            .into_iter()
            .map(|r| (r.state.as_str().to_owned(), r.estimate, r.actual))
            .collect();
        ledger.sort();
        let audit = self
            .audit
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| e.operation != "pipeline")
            .map(|e| {
                format!(
                    "{} {:?} {:?} {:?} {:?} {:?} {:?}",
                    e.operation, e.outcome, e.code, e.step, e.model, e.estimate, e.actual
                )
            })
            .collect();
        Trace {
            ledger,
            audit,
            step: step_record(self.dir.path()).map(|s| comparable(&s)),
        }
    }
}

/// The one step record of the one run under `dir`, if a run folder was made.
fn step_record(dir: &std::path::Path) -> Option<StepRecord> {
    let root = dir.join("output");
    let run = fs_err::read_dir(&root).ok()?.next()?.ok()?;
    let id = run.file_name().to_string_lossy().into_owned();
    let folder = OutputRoot::open(&root).ok()?.open_run(&id).ok()?;
    Manifest::load(&folder).ok()?.steps.into_iter().next()
}

fn submitted(dir: &std::path::Path) -> bool {
    step_record(dir).is_some_and(|s| s.job.is_some())
}

fn comparable(step: &StepRecord) -> String {
    let outputs: Vec<_> = step
        .outputs
        .iter()
        .map(|o| (o.sha256.as_str(), o.bytes, o.content_type.as_str()))
        .collect();
    format!(
        "{} {} {} {:?} {:?} {:?} {:?} job:{} {:?} texts:{:?}",
        step.id,
        step.model,
        step.endpoint,
        step.status,
        step.estimate,
        step.actual,
        step.error_code,
        step.job.is_some(),
        outputs,
        step.request.as_ref().map(|r| &r.texts),
    )
}

async fn both(scenario: Scenario) -> (Trace, Trace) {
    let single = scenario.world().await;
    single.single(scenario).await;
    let pipeline = scenario.world().await;
    pipeline.pipeline(scenario).await;
    (single.trace().await, pipeline.trace().await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_of_one_leaves_what_a_single_command_leaves() {
    for scenario in [
        Scenario::Success,
        Scenario::ProviderFailure,
        Scenario::GuardRefusal,
        Scenario::ModerationRefusal,
        Scenario::BudgetRefusal,
        Scenario::ConfirmationRefusal,
        Scenario::Interrupted,
    ] {
        let (single, pipeline) = both(scenario).await;
        assert_eq!(single, pipeline, "{scenario:?}");
        // Each scenario leaves what it should, so that equal traces mean something.
        let ops = |t: &Trace| {
            t.audit
                .iter()
                .map(|a| a.split(' ').next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        match scenario {
            Scenario::Success => {
                assert_eq!(ops(&single), ["spend.alert", "generate"], "{single:#?}");
                assert_eq!(single.ledger.len(), 1);
                assert_eq!(single.ledger[0].0, "settled");
                assert!(single.step.as_deref().is_some_and(|s| s.contains("Done")));
            }
            Scenario::ProviderFailure => {
                assert_eq!(
                    single.ledger[0].0, "settled",
                    "a 422 settles at the estimate"
                );
                assert!(
                    single.audit.iter().any(|a| a.contains("Failed")),
                    "{single:#?}"
                );
                assert!(single.step.as_deref().is_some_and(|s| s.contains("Failed")));
            }
            Scenario::GuardRefusal | Scenario::ModerationRefusal => {
                assert!(single.ledger.is_empty(), "nothing reserved");
                assert!(single.step.is_none(), "no run folder");
                assert!(
                    single.audit.iter().all(|a| a.contains("Refused")) && single.audit.len() == 1,
                    "{single:#?}"
                );
            }
            Scenario::BudgetRefusal | Scenario::ConfirmationRefusal => {
                assert!(single.ledger.is_empty(), "nothing reserved");
                assert!(single.step.is_none(), "no run folder");
                let code = if matches!(scenario, Scenario::BudgetRefusal) {
                    "budget.daily_limit"
                } else {
                    "budget.confirmation_declined"
                };
                assert!(
                    single.audit.len() == 1 && single.audit[0].contains(code),
                    "{single:#?}"
                );
            }
            Scenario::Interrupted => {
                assert!(
                    single.audit.iter().any(|a| a.contains("Cancelled")),
                    "{single:#?}"
                );
                assert!(
                    single
                        .step
                        .as_deref()
                        .is_some_and(|s| s.contains("job:true")),
                    "{single:#?}"
                );
            }
        }
    }
}
