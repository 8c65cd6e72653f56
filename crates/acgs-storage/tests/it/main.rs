//! The ledger contract, run against the SQLite ledger and — with the `postgres` feature and a
//! server (`ACGS_TEST_POSTGRES_URL`, started by `cargo xtask ci`) — the PostgreSQL ledger.

#![allow(clippy::print_stderr)] // a skipped PostgreSQL test says so

use std::sync::Arc;
use std::time::Duration;

use acgs_core::ledger::{
    Ledger, LedgerError, ReservationState, ReserveRequest, ScopeLimit, shared_limits,
};
use acgs_core::request::{JOB_HANDLE_SCHEMA, JobHandle, JobRef};
use acgs_core::{ProviderId, Usd};

fn usd(text: &str) -> Usd {
    Usd::parse(text).expect("usd")
}

fn request(amount: &str, limit: &str, lease: Duration) -> ReserveRequest {
    ReserveRequest {
        run_id: "run".into(),
        step: "main".into(),
        provider: ProviderId::Fal,
        model: "flux_dev".into(),
        user: "alice".into(),
        amount: usd(amount),
        daily_limit: usd(limit),
        timezone: "UTC".into(),
        lease,
        scopes: Vec::new(),
    }
}

fn job() -> JobHandle {
    JobHandle {
        schema_version: JOB_HANDLE_SCHEMA,
        provider: ProviderId::Fal,
        model: "flux_dev".into(),
        endpoint: "fal-ai/flux/dev".into(),
        job: JobRef::Queue {
            request_id: "80e732af".into(),
        },
        submitted_at: jiff::Timestamp::now(),
    }
}

async fn contract_states_and_limits(ledger: &dyn Ledger) {
    let long = Duration::from_secs(60);
    let a = ledger
        .reserve(request("0.60", "1.00", long))
        .await
        .expect("fits");
    let err = ledger
        .reserve(request("0.50", "1.00", long))
        .await
        .expect_err("over");
    assert!(matches!(err, LedgerError::DailyLimit { .. }), "{err:?}");
    ledger
        .mark_submitted(&a.id, Some(&job()))
        .await
        .expect("submitted");
    assert!(
        ledger.mark_submitted(&a.id, Some(&job())).await.is_err(),
        "only held can be submitted"
    );
    let s = ledger.settle(&a.id, usd("0.40")).await.expect("settled");
    assert_eq!((s.estimate, s.actual), (usd("0.60"), usd("0.40")));
    assert!(ledger.release(&a.id).await.is_err(), "settled is final");
    let b = ledger
        .reserve(request("0.55", "1.00", long))
        .await
        .expect("fits after settle");
    ledger.release(&b.id).await.expect("released");
    let today = ledger.today("UTC").await.expect("today");
    assert_eq!((today.reserved, today.settled), (Usd::ZERO, usd("0.40")));
    let rows = ledger.reservations(None).await.expect("rows");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.state == ReservationState::Released));
    let settled = rows
        .iter()
        .find(|r| r.state == ReservationState::Settled)
        .expect("settled row");
    assert_eq!(
        settled.job.as_ref().map(|j| j.model.as_str()),
        Some("flux_dev")
    );
    // A pipeline's steps: all or nothing ($0.40 is settled, so $0.30 + $0.40 is over $1.00).
    let err = ledger
        .reserve_all(vec![
            request("0.30", "1.00", long),
            request("0.40", "1.00", long),
        ])
        .await
        .expect_err("the second does not fit");
    assert!(matches!(err, LedgerError::DailyLimit { .. }), "{err:?}");
    let today = ledger.today("UTC").await.expect("today");
    assert_eq!(today.reserved, Usd::ZERO, "nothing is left reserved");
    let both = ledger
        .reserve_all(vec![
            request("0.30", "1.00", long),
            request("0.20", "1.00", long),
        ])
        .await
        .expect("both fit");
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[1].spent_before,
        usd("0.70"),
        "the first counts for the second"
    );
    assert_eq!(
        ledger.today("UTC").await.expect("today").reserved,
        usd("0.50")
    );
    for r in &both {
        ledger.release(&r.id).await.expect("released");
    }
}

async fn contract_expiry_and_abandon(ledger: &dyn Ledger) {
    let held = ledger
        .reserve(request("0.30", "1.00", Duration::from_millis(300)))
        .await
        .expect("held");
    let sub = ledger
        .reserve(request("0.20", "1.00", Duration::from_millis(300)))
        .await
        .expect("held");
    ledger
        .mark_submitted(&sub.id, Some(&job()))
        .await
        .expect("submitted");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let today = ledger.today("UTC").await.expect("today");
    assert_eq!(
        today.reserved,
        usd("0.20"),
        "the expired hold stops counting, the submitted one does not"
    );
    assert!(
        ledger
            .renew(&held.id, &held.owner, Duration::from_secs(5))
            .await
            .is_err()
    );
    let rows = ledger.reservations(None).await.expect("rows");
    assert!(
        rows.iter()
            .any(|r| r.id == held.id && r.state == ReservationState::Expired)
    );
    let s = ledger.abandon(&sub.id).await.expect("written off");
    assert_eq!(s.actual, usd("0.20"));
    assert!(ledger.abandon(&sub.id).await.is_err());
    let rows = ledger.reservations(None).await.expect("rows");
    assert!(
        rows.iter()
            .any(|r| r.id == sub.id && r.state == ReservationState::Abandoned),
        "{rows:?}"
    );
    assert_eq!(
        ledger.today("UTC").await.expect("today").settled,
        usd("0.20")
    );
}

async fn contract_renew_and_overrun(ledger: &dyn Ledger) {
    let r = ledger
        .reserve(request("0.90", "1.00", Duration::from_millis(1500)))
        .await
        .expect("held");
    // 6 × 400 ms outlives the 1.5 s lease only because each renewal extends it; the margin
    // between renewals (1.1 s) absorbs a loaded machine.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ledger
            .renew(&r.id, &r.owner, Duration::from_millis(1500))
            .await
            .expect("renewed by its owner");
    }
    let wrong = acgs_core::ledger::OwnerToken("someone-else".into());
    assert!(
        ledger
            .renew(&r.id, &wrong, Duration::from_secs(1))
            .await
            .is_err()
    );
    let s = ledger.settle(&r.id, usd("1.30")).await.expect("settled");
    assert_eq!(s.overrun(), Some(usd("0.40")));
    let err = ledger
        .reserve(request("0.01", "1.00", Duration::from_secs(60)))
        .await
        .expect_err("over budget");
    assert!(matches!(err, LedgerError::OverBudget { .. }), "{err:?}");
}

async fn contract_meta_and_shared_limits(ledger: &dyn Ledger) {
    assert!(
        ledger
            .set_meta("alert:2026-11-27:500", "run-a", true)
            .await
            .expect("first")
    );
    assert!(
        !ledger
            .set_meta("alert:2026-11-27:500", "run-b", true)
            .await
            .expect("second")
    );
    assert_eq!(
        ledger
            .meta("alert:2026-11-27:500")
            .await
            .expect("read")
            .as_deref(),
        Some("run-a")
    );
    ledger
        .set_meta("limits.daily_limit", "25.00", false)
        .await
        .expect("limit");
    ledger
        .set_meta("limits.timezone", "Europe/Paris", false)
        .await
        .expect("zone");
    let advance = |rank, rest| ledger.advance_meta("audit.head", rank, rest);
    assert!(advance(5, "e").await.expect("first"));
    assert!(!advance(4, "d").await.expect("lower"), "never backwards");
    assert!(
        !advance(5, "x").await.expect("same"),
        "the first of a rank stays"
    );
    assert!(
        advance(12, "l").await.expect("higher"),
        "ranks are numbers, not text"
    );
    assert_eq!(
        ledger.meta("audit.head").await.expect("read").as_deref(),
        Some("12:l")
    );
    ledger
        .set_meta("unranked", "no rank here", false)
        .await
        .expect("set");
    assert!(
        ledger
            .advance_meta("unranked", 1, "a")
            .await
            .expect("ranked")
    );
    let limits = shared_limits(ledger).await.expect("limits");
    assert_eq!(limits.daily_limit, Some(usd("25.00")));
    assert_eq!(limits.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(limits.max_cost_per_run, None);
    assert!(matches!(
        ledger.today("Mars/Olympus").await,
        Err(LedgerError::TimeZone(_))
    ));
}

fn scoped(amount: &str, scopes: &[(&str, &str)]) -> ReserveRequest {
    ReserveRequest {
        scopes: scopes
            .iter()
            .map(|(scope, limit)| ScopeLimit {
                scope: (*scope).into(),
                limit: usd(limit),
            })
            .collect(),
        ..request(amount, "100.00", Duration::from_secs(60))
    }
}

async fn contract_scopes(ledger: &dyn Ledger) {
    let a = ledger
        .reserve(scoped("0.60", &[("agent:a", "1.00")]))
        .await
        .expect("fits");
    let err = ledger
        .reserve(scoped("0.50", &[("user:ada", "5.00"), ("agent:a", "1.00")]))
        .await
        .expect_err("over the agent's allowance");
    let LedgerError::ScopeLimit {
        scope,
        limit,
        spent,
        requested,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (scope.as_str(), *limit, *spent, *requested),
        ("agent:a", usd("1.00"), usd("0.60"), usd("0.50"))
    );
    assert_eq!(
        ledger.scope_spend("user:ada").await.expect("spend"),
        acgs_core::ledger::ScopeSpend {
            scope: "user:ada".into(),
            ..Default::default()
        },
        "a refused request counts nowhere, not even in the scopes it fitted"
    );
    ledger
        .reserve(scoped("0.50", &[("agent:b", "1.00")]))
        .await
        .expect("another scope is its own budget");
    ledger.settle(&a.id, usd("0.20")).await.expect("settled");
    let spend = ledger.scope_spend("agent:a").await.expect("spend");
    assert_eq!((spend.reserved, spend.settled), (usd("0"), usd("0.20")));
    let b = ledger
        .reserve(scoped("0.80", &[("agent:a", "1.00")]))
        .await
        .expect("settling below the estimate gave the difference back");
    ledger.release(&b.id).await.expect("released");
    assert_eq!(
        ledger.scope_spend("agent:a").await.expect("spend").total(),
        usd("0.20")
    );
    let short = ReserveRequest {
        lease: Duration::from_millis(200),
        ..scoped("0.80", &[("agent:a", "1.00")])
    };
    ledger.reserve(short).await.expect("held");
    tokio::time::sleep(Duration::from_millis(400)).await;
    ledger
        .reserve(scoped("0.80", &[("agent:a", "1.00")]))
        .await
        .expect("an expired lease frees its scopes");
    assert_eq!(
        ledger.scope_spend("agent:a").await.expect("spend").total(),
        usd("1.00")
    );
}

async fn contract_scope_concurrency(ledgers: Vec<Arc<dyn Ledger>>) {
    let mut tasks = Vec::new();
    for (i, ledger) in ledgers.iter().cycle().take(16).enumerate() {
        let ledger = Arc::clone(ledger);
        tasks.push(tokio::spawn(async move {
            let scopes = [("session:s", "1.00"), ("user:u", "50.00")];
            match ledger.reserve(scoped("0.30", &scopes)).await {
                Ok(_) => true,
                Err(LedgerError::ScopeLimit { scope, .. }) => {
                    assert_eq!(scope, "session:s", "task {i}");
                    false
                }
                Err(other) => panic!("task {i}: {other:?}"),
            }
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += usize::from(t.await.expect("task"));
    }
    assert_eq!(granted, 3, "16 racing reservations of 0.30 against 1.00");
    let spend = ledgers[0].scope_spend("user:u").await.expect("spend");
    assert_eq!(spend.reserved, usd("0.90"));
}

async fn contract_concurrency(ledgers: Vec<Arc<dyn Ledger>>) {
    let mut heads = Vec::new();
    for (i, ledger) in ledgers.iter().enumerate() {
        let ledger = Arc::clone(ledger);
        heads.push(tokio::spawn(async move {
            for rank in (0..20).map(|j| (j * 7 + i as u64 * 3) % 40 + 1) {
                ledger
                    .advance_meta("audit.head", rank, &format!("from {i}"))
                    .await
                    .expect("advanced");
            }
        }));
    }
    for h in heads {
        h.await.expect("task");
    }
    let head = ledgers[0].meta("audit.head").await.expect("read");
    assert!(
        head.as_deref().is_some_and(|h| h.starts_with("40:")),
        "the highest rank wins whatever the order: {head:?}"
    );
    let mut tasks = Vec::new();
    for (i, ledger) in ledgers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut granted = 0i64;
            for j in 0..15 {
                let amount = format!("0.0{}", 1 + (i + j) % 9);
                if let Ok(r) = ledger
                    .reserve(request(&amount, "2.00", Duration::from_secs(60)))
                    .await
                {
                    granted += usd(&amount).micros();
                    ledger.settle(&r.id, usd(&amount)).await.expect("settled");
                }
            }
            granted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("task");
    }
    assert!(
        total <= 2_000_000,
        "granted {total} µ$ against a 2.00 limit"
    );
    assert!(
        total >= 2_000_000 - 90_000,
        "the limit was used up: {total}"
    );
}

#[tokio::test]
async fn an_unknown_ledger_url_is_its_own_error_and_keeps_its_password() {
    for url in [
        "mysql://acgs:hunter2secret@db/acgs",
        "hunter2secret",
        "file:/tmp/x",
    ] {
        let Err(err) = acgs_storage::open_ledger(url, &acgs_storage::LedgerAccess::default()).await
        else {
            panic!("{url} opened");
        };
        assert_eq!(
            acgs_core::UserFacing::code(&err),
            "config.ledger_url",
            "{url}"
        );
        assert_eq!(acgs_core::UserFacing::exit_code(&err), 2);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

mod sqlite {
    use super::*;
    use acgs_storage::ledger_sqlite::SqliteLedger;

    fn open(dir: &tempfile::TempDir) -> SqliteLedger {
        SqliteLedger::open(&dir.path().join("ledger.sqlite3")).expect("ledger")
    }

    #[tokio::test]
    async fn states_and_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        contract_states_and_limits(&open(&dir)).await;
    }

    #[tokio::test]
    async fn expiry_and_abandon() {
        let dir = tempfile::tempdir().expect("tmp");
        contract_expiry_and_abandon(&open(&dir)).await;
    }

    #[tokio::test]
    async fn renew_and_overrun() {
        let dir = tempfile::tempdir().expect("tmp");
        contract_renew_and_overrun(&open(&dir)).await;
    }

    #[tokio::test]
    async fn meta_and_shared_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        contract_meta_and_shared_limits(&open(&dir)).await;
    }

    #[tokio::test]
    async fn the_database_and_its_wal_stay_private_after_the_process() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = open(&dir);
        ledger
            .reserve(request("0.10", "1.00", Duration::from_secs(60)))
            .await
            .expect("reserved");
        drop(ledger);
        let names = ["ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"];
        for name in names {
            let meta = fs_err::metadata(dir.path().join(name)).expect("kept after close");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
        let again = open(&dir);
        assert_eq!(
            again.today("UTC").await.expect("today").reserved,
            usd("0.10"),
            "a closed ledger's WAL is read by the next process"
        );
    }

    #[tokio::test]
    async fn scopes() {
        let dir = tempfile::tempdir().expect("tmp");
        contract_scopes(&open(&dir)).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn scope_concurrency() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledgers: Vec<Arc<dyn Ledger>> = (0..4)
            .map(|_| Arc::new(open(&dir)) as Arc<dyn Ledger>)
            .collect();
        contract_scope_concurrency(ledgers).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrency() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledgers: Vec<Arc<dyn Ledger>> = (0..8)
            .map(|_| Arc::new(open(&dir)) as Arc<dyn Ledger>)
            .collect();
        contract_concurrency(ledgers).await;
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use acgs_storage::LedgerAccess;
    use acgs_storage::ledger_postgres::PostgresLedger;

    /// A fresh database on the test server, or `None` (with a note) when no server is configured
    /// and none is required.
    async fn fresh_database() -> Option<String> {
        let Ok(url) = std::env::var("ACGS_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("ACGS_REQUIRE_POSTGRES").is_err(),
                "ACGS_REQUIRE_POSTGRES is set but ACGS_TEST_POSTGRES_URL is not"
            );
            eprintln!("skipped: set ACGS_TEST_POSTGRES_URL (cargo xtask ci starts a server)");
            return None;
        };
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("test server");
        tokio::spawn(connection);
        let name = format!("acgs_test_{}", std::process::id()) + &format!("_{}", fastrand_suffix());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        Some(format!(
            "{}/{name}",
            url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base)
        ))
    }

    fn fastrand_suffix() -> u64 {
        use std::time::{SystemTime, UNIX_EPOCH};
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()))
    }

    async fn open(url: &str) -> PostgresLedger {
        PostgresLedger::connect(url, &LedgerAccess::default())
            .await
            .expect("ledger")
    }

    #[tokio::test]
    async fn states_and_limits() {
        let Some(url) = fresh_database().await else {
            return;
        };
        contract_states_and_limits(&open(&url).await).await;
    }

    #[tokio::test]
    async fn expiry_and_abandon() {
        let Some(url) = fresh_database().await else {
            return;
        };
        contract_expiry_and_abandon(&open(&url).await).await;
    }

    #[tokio::test]
    async fn renew_and_overrun() {
        let Some(url) = fresh_database().await else {
            return;
        };
        contract_renew_and_overrun(&open(&url).await).await;
    }

    #[tokio::test]
    async fn meta_and_shared_limits() {
        let Some(url) = fresh_database().await else {
            return;
        };
        contract_meta_and_shared_limits(&open(&url).await).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrency() {
        let Some(url) = fresh_database().await else {
            return;
        };
        let mut ledgers: Vec<Arc<dyn Ledger>> = Vec::new();
        for _ in 0..8 {
            ledgers.push(Arc::new(open(&url).await));
        }
        contract_concurrency(ledgers).await;
    }

    #[tokio::test]
    async fn scopes() {
        let Some(url) = fresh_database().await else {
            return;
        };
        contract_scopes(&open(&url).await).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn scope_concurrency() {
        let Some(url) = fresh_database().await else {
            return;
        };
        let mut ledgers: Vec<Arc<dyn Ledger>> = Vec::new();
        for _ in 0..4 {
            ledgers.push(Arc::new(open(&url).await));
        }
        contract_scope_concurrency(ledgers).await;
    }

    #[tokio::test]
    async fn passwords_come_from_pgpass_and_are_redacted() {
        let config: tokio_postgres::Config = "postgres://acgs@db.example:5433/budget"
            .parse()
            .expect("url");
        let text = "# comment\nother:5432:*:*:nope\ndb.example:5433:budget:acgs:s3cret-pw\n*:*:*:*:fallback\n";
        let found = acgs_storage::postgres::pgpass_lookup(text, &config).expect("matched");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&found), "s3cret-pw");
    }
}
