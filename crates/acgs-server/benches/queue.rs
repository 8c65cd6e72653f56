//! Jobs claimed per second from the PostgreSQL queue (target ≥ 500/s), results in
//! docs/benchmarks.md.
//!
//! `ACGS_TEST_POSTGRES_URL=postgres://… cargo bench -p acgs-server --features postgres --bench
//! queue` makes a fresh database on that server, queues `JOBS` jobs, then `CLAIMERS` claimers —
//! each with its own connection, as worker processes have — claim and finish jobs until none is
//! left. It reports claims per second over the whole drain. PostgreSQL runs with its defaults
//! (`fsync=on`, `synchronous_commit=on`).

#![allow(clippy::print_stdout)] // a bench binary reports on stdout

use std::time::Instant;

use acgs_core::Usd;
use acgs_server::store::{JobState, Outcome};
use acgs_server::store_pg::PgStore;

const JOBS: usize = 10_000;
const CLAIMERS: usize = 8;

async fn store(url: &str) -> PgStore {
    let access = acgs_storage::LedgerAccess::default();
    let (client, _) = acgs_storage::postgres::connect(url, &access)
        .await
        .expect("connects");
    PgStore::new(client).await.expect("the tables")
}

async fn fresh_database(url: &str) -> String {
    let name = format!("acgs_bench_queue_{}", std::process::id());
    let access = acgs_storage::LedgerAccess::default();
    let (client, _) = acgs_storage::postgres::connect(url, &access)
        .await
        .expect("connects");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("a database");
    format!(
        "{}/{name}",
        url.rsplit_once('/').map_or(url, |(base, _)| base)
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let Ok(url) = std::env::var("ACGS_TEST_POSTGRES_URL") else {
        println!("queue: skipped (set ACGS_TEST_POSTGRES_URL)");
        return;
    };
    let url = fresh_database(&url).await;
    let queue = store(&url).await;
    let filled = Instant::now();
    for n in 0..JOBS {
        let user = format!("user{}", n % 100);
        queue
            .enqueue(&user, None, "{}", Usd::parse("0.025").expect("usd"))
            .await
            .expect("queued");
    }
    println!(
        "queue: {JOBS} jobs queued in {:.2} s",
        filled.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let mut claimers = Vec::new();
    for c in 0..CLAIMERS {
        let url = url.clone();
        claimers.push(tokio::spawn(async move {
            let records = store(&url).await;
            let worker = format!("bench{c}");
            let mut claimed = 0_usize;
            while let Some(job) = records.claim(&worker, 30, "run").await.expect("claims") {
                let done = Outcome {
                    state: JobState::Done,
                    actual: Some(job.estimate),
                    run_id: None,
                    outputs: None,
                    error: None,
                };
                records
                    .finish(&job.id, &worker, &done)
                    .await
                    .expect("finishes");
                claimed += 1;
            }
            claimed
        }));
    }
    let mut total = 0;
    for claimer in claimers {
        total += claimer.await.expect("a claimer");
    }
    let ms = start.elapsed().as_millis().max(1);
    assert_eq!(total, JOBS, "every job claimed once");
    println!(
        "queue: {CLAIMERS} claimers drained {total} jobs (claim + finish) in {ms} ms: {} claims/s",
        total as u128 * 1000 / ms
    );
}
