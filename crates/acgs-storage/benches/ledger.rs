//! reserve + settle pairs per second with 8 processes (targets: SQLite ≥ 1,000/s, PostgreSQL
//! ≥ 500/s), results in docs/benchmarks.md.
//!
//! `cargo bench -p acgs-storage --bench ledger` runs SQLite; with `ACGS_TEST_POSTGRES_URL` set it
//! also runs PostgreSQL (a fresh database on that server). The bench re-runs itself as 8 worker
//! processes that each make `PAIRS` reserve + settle pairs against one ledger, and reports the total
//! rate over the wall-clock time of the slowest worker. SQLite runs with WAL and
//! `synchronous=NORMAL`; PostgreSQL with its defaults (`fsync=on`, `synchronous_commit=on`).

#![allow(clippy::print_stdout)] // a bench binary reports on stdout

use std::process::Command;
use std::time::{Duration, Instant};

use acgs_core::ledger::ReserveRequest;
use acgs_core::{ProviderId, Usd};

const WORKERS: usize = 8;
const PAIRS: usize = 400;

fn request() -> ReserveRequest {
    ReserveRequest {
        run_id: "bench".into(),
        step: "main".into(),
        provider: ProviderId::Fal,
        model: "flux_dev".into(),
        user: "bench".into(),
        amount: Usd::parse("0.025").expect("usd"),
        daily_limit: Usd::from_dollars(1_000_000),
        timezone: "UTC".into(),
        lease: Duration::from_secs(60),
        scopes: Vec::new(),
    }
}

fn worker(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let ledger = acgs_storage::open_ledger(url, &acgs_storage::LedgerAccess::default())
            .await
            .expect("ledger");
        for _ in 0..PAIRS {
            let r = ledger.reserve(request()).await.expect("reserve");
            ledger
                .settle(&r.id, Usd::parse("0.025").expect("usd"))
                .await
                .expect("settle");
        }
    });
}

fn measure(label: &str, url: &str) {
    let exe = std::env::current_exe().expect("own path");
    // Create the schema once so that workers measure steady-state pairs.
    worker_setup(url);
    let started = Instant::now();
    let children: Vec<_> = (0..WORKERS)
        .map(|_| {
            Command::new(&exe)
                .args(["--worker", url])
                .spawn()
                .expect("worker")
        })
        .collect();
    for mut child in children {
        assert!(
            child.wait().expect("worker exits").success(),
            "a worker failed"
        );
    }
    let elapsed = started.elapsed();
    let pairs = WORKERS * PAIRS;
    let rate = u128::try_from(pairs).unwrap_or(0) * 1000 / elapsed.as_millis().max(1);
    println!(
        "{label}: {pairs} reserve+settle pairs by {WORKERS} processes in {} ms: {rate} pairs/s",
        elapsed.as_millis()
    );
}

fn worker_setup(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        acgs_storage::open_ledger(url, &acgs_storage::LedgerAccess::default())
            .await
            .expect("ledger");
    });
}

fn postgres_database(url: &str) -> String {
    let name = format!("acgs_bench_{}", std::process::id());
    let status = Command::new("psql")
        .args([url, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql");
    assert!(status.success(), "creating the bench database failed");
    format!(
        "{}/{name}",
        url.rsplit_once('/').map_or(url, |(base, _)| base)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        worker(&args[i + 1]);
        return;
    }
    let dir = std::env::temp_dir().join(format!("acgs-ledger-bench-{}", std::process::id()));
    fs_err::create_dir_all(&dir).expect("bench folder");
    measure(
        "SQLite (WAL, synchronous=NORMAL)",
        &format!("sqlite://{}", dir.join("ledger.sqlite3").display()),
    );
    let _ = fs_err::remove_dir_all(&dir);
    match std::env::var("ACGS_TEST_POSTGRES_URL") {
        Ok(url) => measure("PostgreSQL (fsync on)", &postgres_database(&url)),
        Err(_) => println!("PostgreSQL: skipped (set ACGS_TEST_POSTGRES_URL)"),
    }
}
