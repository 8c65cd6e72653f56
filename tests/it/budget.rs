//! Budgets that hold: many processes at once, on SQLite and PostgreSQL; killed processes; alerts.

use std::time::{Duration, Instant};

use super::signal;
use acgs_core::ledger::{ReservationRecord, ReservationState};
use acgs_e2e::Sandbox;
use acgs_testkit::canary::FAL_KEY;
use acgs_testkit::fal::{FakeFal, Outcome};
use acgs_testkit::fleet::FakeFalFleet;
use acgs_testkit::media::png;

const ENDPOINT: &str = "fal-ai/flux/dev";
const FLUX_DEV_PER_MP: i64 = 25_000;

/// A fresh database on the test server, or `None` when none is configured and none is required.
pub(super) async fn postgres_database() -> Option<String> {
    let Ok(url) = std::env::var("ACGS_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("ACGS_REQUIRE_POSTGRES").is_err(),
            "ACGS_REQUIRE_POSTGRES is set but no server URL"
        );
        return None;
    };
    let name = format!(
        "acgs_e2e_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().subsec_nanosecond()
    );
    let status = tokio::process::Command::new("psql")
        .args([url.as_str(), "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .await
        .expect("psql runs");
    assert!(status.success(), "creating the test database failed");
    Some(format!(
        "{}/{name}",
        url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base)
    ))
}

async fn rows(sb: &Sandbox, ledger_url: Option<&str>) -> Vec<ReservationRecord> {
    let url = ledger_url.map_or_else(
        || format!("sqlite://{}", sb.state().join("ledger.sqlite3").display()),
        str::to_owned,
    );
    let ledger = acgs_storage::open_ledger(&url, &acgs_storage::LedgerAccess::default())
        .await
        .expect("ledger");
    ledger.reservations(None).await.expect("rows")
}

/// 8 groups of 25 `acgs image` processes at once, random sizes and counts, a daily limit far below
/// what they ask for.
async fn stress(ledger_url: Option<String>) {
    let fleet = FakeFalFleet::start(ENDPOINT, Duration::ZERO).await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fleet.uri())
        .set_env("ACGS_COST_MANAGEMENT__DAILY_LIMIT", "2.00");
    if let Some(url) = &ledger_url {
        sb.set_env("ACGS_LEDGER__URL", url);
    }
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut children = Vec::new();
    let mut largest_estimate = 0i64;
    for _ in 0..8 * 25 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = 1 + seed % 4;
        let size = if seed.is_multiple_of(3) {
            "square_hd"
        } else {
            "landscape_4_3"
        };
        let mp = if size == "square_hd" { 2 } else { 1 };
        largest_estimate =
            largest_estimate.max(i64::try_from(n).unwrap_or(4) * mp * FLUX_DEV_PER_MP);
        let n = n.to_string();
        let size = format!("image_size={size}");
        let child = sb
            .command(&["-q", "image", "a fox", "--yes", "-n", &n, "--param", &size])
            .spawn()
            .expect("spawn");
        children.push(child);
    }
    let (mut accepted, mut refused) = (0usize, 0usize);
    for child in children {
        let out = child.wait_with_output().await.expect("exits");
        match out.status.code() {
            Some(0) => accepted += 1,
            Some(4) => refused += 1,
            other => panic!(
                "unexpected exit {other:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    assert_eq!(accepted + refused, 200);
    assert!(
        refused > 0 && accepted > 0,
        "accepted {accepted}, refused {refused}"
    );
    let provider_side: i64 = fleet
        .accepted()
        .iter()
        .map(|p| FakeFalFleet::cost_micros(p, FLUX_DEV_PER_MP))
        .sum();
    assert_eq!(
        fleet.accepted().len(),
        accepted,
        "every refusal happened before a request reached the provider"
    );
    let rows = rows(&sb, ledger_url.as_deref()).await;
    let settled: i64 = rows
        .iter()
        .filter(|r| r.state == ReservationState::Settled)
        .map(|r| r.actual.map_or(0, |a| a.micros()))
        .sum();
    assert!(
        rows.iter()
            .all(|r| matches!(r.state, ReservationState::Settled)),
        "nothing is left held or submitted"
    );
    assert_eq!(
        settled, provider_side,
        "the ledger's sum equals what the provider accepted"
    );
    assert!(
        settled <= 2_000_000,
        "settled {settled} µ$ against a 2.00 limit"
    );
    assert!(
        settled >= 2_000_000 - largest_estimate,
        "settled {settled} µ$: the budget was used, not refused wholesale"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_processes_never_overspend_sqlite() {
    stress(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_processes_never_overspend_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    stress(Some(url)).await;
}

async fn spend(sb: &Sandbox) -> serde_json::Value {
    let run = sb.run(&["--json", "spend"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_holder_frees_its_budget_after_the_lease() {
    // The edit's input is too big for a data URI, so the process holds its reservation while
    // it waits for an upload token that never comes.
    let slow = FakeFal::builder("fal-ai/flux-kontext/dev")
        .token_delay(Duration::from_secs(120))
        .start()
        .await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &slow.uri())
        .set_env("ACGS_PROVIDERS__FAL__REST_URL", &slow.uri())
        .set_env("ACGS_LEDGER__LEASE_SECS", "2")
        .set_env("ACGS_COST_MANAGEMENT__DAILY_LIMIT", "0.06");
    fs_err::write(sb.work().join("big.png"), png(1024, 1024, 400_000)).expect("input");
    let mut child = sb
        .command(&["image", "a fox", "--edit", "big.png", "--yes"])
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rows(&sb, None)
        .await
        .iter()
        .any(|r| r.state == ReservationState::Held)
    {
        assert!(Instant::now() < deadline, "no held reservation appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait().await;
    assert_eq!(
        spend(&sb).await["today"]["reserved"],
        "0.05",
        "the hold ($0.025 unverified, ×2) counts until its lease runs out"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc = spend(&sb).await;
        if doc["today"]["reserved"] == "0.00" {
            assert_eq!(doc["totals"]["expired"], "0.05");
            break;
        }
        assert!(Instant::now() < deadline, "the lease never expired: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fast = FakeFalFleet::start(ENDPOINT, Duration::ZERO).await;
    sb.set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fast.uri());
    let run = sb.run(&["image", "a fox", "--yes"]).await;
    assert_eq!(
        run.code,
        Some(0),
        "the budget is available again: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_job_keeps_counting_until_written_off() {
    let fake = FakeFal::builder(ENDPOINT)
        .outcome(Outcome::KeepRunning)
        .start()
        .await;
    let mut sb = Sandbox::new();
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fake.uri())
        .set_env("ACGS_LEDGER__LEASE_SECS", "1");
    let mut child = sb
        .command(&["image", "a fox", "--yes"])
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_id = loop {
        let submitted = rows(&sb, None)
            .await
            .into_iter()
            .find(|r| r.state == ReservationState::Submitted);
        if let Some(r) = submitted {
            break r.run_id;
        }
        assert!(
            Instant::now() < deadline,
            "the job never reached `submitted`"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    signal(&child, rustix::process::Signal::KILL);
    let _ = child.wait().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        spend(&sb).await["today"]["reserved"],
        "0.025",
        "a submitted job never expires"
    );
    let run = sb
        .run(&["--json", "spend", "abandon", &format!("{run_id}/main")])
        .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc = spend(&sb).await;
    assert_eq!(
        (
            doc["today"]["reserved"].as_str(),
            doc["today"]["settled"].as_str()
        ),
        (Some("0.00"), Some("0.025"))
    );
    let audit = fs_err::read_to_string(sb.state().join("audit.jsonl")).expect("audit");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"operation\":\"spend.abandon\"")
                && l.contains("\"outcome\":\"override\""))
    );
    let again = sb
        .run(&["spend", "abandon", &format!("{run_id}/main")])
        .await;
    assert_eq!(again.code, Some(2), "nothing left to write off");
}

#[tokio::test(flavor = "multi_thread")]
async fn crossing_a_fraction_of_the_daily_limit_alerts_once() {
    let fleet = FakeFalFleet::start(ENDPOINT, Duration::ZERO).await;
    let mut sb = Sandbox::new();
    let marker = sb.root().join("alerts.txt");
    sb.set_env("FAL_KEY", FAL_KEY)
        .set_env("ACGS_PROVIDERS__FAL__QUEUE_URL", &fleet.uri())
        .set_env("ACGS_COST_MANAGEMENT__DAILY_LIMIT", "0.10")
        .set_env("ACGS_COST_MANAGEMENT__WARN_THRESHOLD", "0.04");
    sb.user_config(&format!(
        "[default.cost_management]\nalert_command = [\"/bin/sh\", \"-c\", \"echo \\\"$1 $2 $3\\\" >> {}\", \"sh\"]\n",
        marker.display()
    ));
    let first = sb.run(&["image", "a fox", "--yes", "-n", "2"]).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first.stderr.contains("50% of the daily limit"),
        "{}",
        first.stderr
    );
    let second = sb.run(&["image", "a fox", "--yes"]).await;
    assert!(
        !second.stderr.contains("50% of the daily limit"),
        "each crossing is reported once"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs_err::read_to_string(&marker).is_ok_and(|t| t.contains("0.500 0.05 0.10")) {
        assert!(Instant::now() < deadline, "alert_command was not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let audit = fs_err::read_to_string(sb.state().join("audit.jsonl")).expect("audit");
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.contains("\"operation\":\"spend.alert\""))
            .count(),
        1
    );
}
