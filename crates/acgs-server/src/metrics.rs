//! Prometheus metrics (`GET /metrics`, open, so it names no user): jobs by state, the queue's
//! depth and age, what was settled, spend against the service's and tags' limits, and — for
//! the jobs this process ran — how long they took and how they failed, by provider.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acgs_engine::Caller;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};

use crate::Shared;
use crate::error::ServerError;
use crate::store::LimitScope;

/// Jobs this process ran, by provider: how many, how long in all, and failures by code.
#[derive(Debug, Default)]
pub(crate) struct Ran {
    by_provider: Mutex<BTreeMap<String, (u64, Duration)>>,
    errors: Mutex<BTreeMap<(String, String), u64>>,
}

impl Ran {
    /// Count a job of `provider` that took `took`, failed with `code` if it did.
    pub(crate) fn record(&self, provider: &str, took: Duration, code: Option<&str>) {
        if let Ok(mut by) = self.by_provider.lock() {
            let entry = by.entry(provider.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += took;
        }
        if let Some(code) = code
            && let Ok(mut errors) = self.errors.lock()
        {
            *errors
                .entry((provider.to_owned(), code.to_owned()))
                .or_default() += 1;
        }
    }
}

fn metric(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// `GET /metrics`.
pub(crate) async fn render(State(shared): State<Arc<Shared>>) -> Result<Response, ServerError> {
    let m = shared.records.metrics().await?;
    let mut text = String::new();
    metric(&mut text, "acgs_jobs", "gauge", "Jobs by state.");
    for state in ["queued", "running", "done", "failed", "cancelled"] {
        let n = m
            .by_state
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(text, "acgs_jobs{{state=\"{state}\"}} {n}");
    }
    let age = m.oldest_queued.map_or(0, |t| {
        jiff::Timestamp::now().duration_since(t).as_secs().max(0)
    });
    metric(
        &mut text,
        "acgs_queue_oldest_seconds",
        "gauge",
        "Age of the oldest queued job.",
    );
    let _ = writeln!(text, "acgs_queue_oldest_seconds {age}");
    metric(
        &mut text,
        "acgs_settled_micro_usd_total",
        "counter",
        "What jobs were settled at, in micro-dollars.",
    );
    let _ = writeln!(text, "acgs_settled_micro_usd_total {}", m.settled_micros);
    scope_spend(&shared, &mut text).await?;
    ran(&shared.ran, &mut text);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response())
}

/// Spend and limit of every service and tag scope in its current period, from the ledger.
async fn scope_spend(shared: &Shared, text: &mut String) -> Result<(), ServerError> {
    let limits = shared.records.limits().await?;
    let tags: Vec<String> = limits
        .iter()
        .filter_map(|l| match &l.scope {
            LimitScope::Tag(tag) => Some(tag.clone()),
            LimitScope::Service => None,
        })
        .collect();
    let mut caller = Caller::new("metrics");
    for scope in shared.shared_scopes(&tags).await? {
        caller = caller.scope(scope);
    }
    let now = crate::api::spend_of(shared, caller).await?;
    metric(
        text,
        "acgs_scope_spend_micro_usd",
        "gauge",
        "Reserved and settled in a service or tag scope's current period.",
    );
    metric(
        text,
        "acgs_scope_limit_micro_usd",
        "gauge",
        "The limit of a service or tag scope's period.",
    );
    for scope in &now.scopes {
        // `SERVICE:WHAT:PERIOD` → the scope and the period's name, without the service id.
        let name = scope
            .spend
            .scope
            .split_once(':')
            .map_or("", |(_, rest)| rest);
        let (what, period) = name.rsplit_once(':').unwrap_or((name, ""));
        let labels = format!("scope=\"{what}\",period=\"{period}\"");
        let _ = writeln!(
            text,
            "acgs_scope_spend_micro_usd{{{labels}}} {}",
            scope.spend.total().micros()
        );
        if scope.limit != crate::UNLIMITED {
            let _ = writeln!(
                text,
                "acgs_scope_limit_micro_usd{{{labels}}} {}",
                scope.limit.micros()
            );
        }
    }
    Ok(())
}

/// The jobs this process ran, by provider.
fn ran(ran: &Ran, text: &mut String) {
    metric(
        text,
        "acgs_provider_job_seconds",
        "summary",
        "How long this process's jobs took, by provider.",
    );
    if let Ok(by) = ran.by_provider.lock() {
        for (provider, (count, took)) in by.iter() {
            let _ = writeln!(
                text,
                "acgs_provider_job_seconds_sum{{provider=\"{provider}\"}} {}.{:03}",
                took.as_secs(),
                took.subsec_millis()
            );
            let _ = writeln!(
                text,
                "acgs_provider_job_seconds_count{{provider=\"{provider}\"}} {count}"
            );
        }
    }
    metric(
        text,
        "acgs_provider_job_errors_total",
        "counter",
        "This process's failed jobs, by provider and code.",
    );
    if let Ok(errors) = ran.errors.lock() {
        for ((provider, code), n) in errors.iter() {
            let _ = writeln!(
                text,
                "acgs_provider_job_errors_total{{provider=\"{provider}\",code=\"{code}\"}} {n}"
            );
        }
    }
}
