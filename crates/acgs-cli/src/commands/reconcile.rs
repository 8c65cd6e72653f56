//! `acgs spend reconcile --since DATE`: the ledger's settled fal requests against what fal's
//! billing events say each was billed, with the drift per model, recorded in the audit log.
//!
//! Billing events need an ADMIN-scoped fal key: `FAL_ADMIN_KEY`, else the ordinary fal key
//! (which fal answers with 403).

use std::collections::BTreeMap;

use acgs_core::audit::{AuditEvent, AuditOutcome, AuditSink as _, Origin};
use acgs_core::job::JobRef;
use acgs_core::ledger::ReservationState;
use acgs_core::{ProviderId, Usd};
use acgs_http::{HttpClient, NetworkPolicy};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use super::models::aligned;
use crate::app::App;
use crate::failure::{CliError, CmdResult, Failure};

/// One model's requests: what acgs settled for those fal billed, what fal billed for them, and
/// those fal has not billed yet (with what acgs settled for them).
#[derive(Debug, Default)]
struct Drift {
    requests: u64,
    settled: Usd,
    billed: Usd,
    unbilled: u64,
    unbilled_settled: Usd,
}

pub(crate) async fn run(app: &App, since: &str) -> CmdResult {
    let day: jiff::civil::Date = since
        .parse()
        .map_err(|_| CliError::Usage(format!("`{since}` is not a date (YYYY-MM-DD)")))?;
    // Budget days may start before UTC's; fal's side is looked up from a day earlier, by id.
    let start = day
        .checked_sub(jiff::Span::new().days(1))
        .map_err(|_| CliError::Usage("date out of range".into()))?;
    let day = day.to_string();
    let platform = admin_platform(app)?;
    let rows = app.ledger().await?.reservations(Some(&day)).await?;
    let settled: Vec<(String, String, Usd)> = rows
        .iter()
        .filter(|r| {
            r.provider == ProviderId::Fal.as_str()
                && matches!(
                    r.state,
                    ReservationState::Settled | ReservationState::Abandoned
                )
        })
        .filter_map(|r| match &r.job.as_ref()?.job {
            JobRef::Queue { request_id } => Some((
                request_id.clone(),
                r.model.clone(),
                r.actual.unwrap_or(r.estimate),
            )),
            JobRef::Operation { .. } => None,
        })
        .collect();
    let ids: Vec<String> = settled.iter().map(|(id, _, _)| id.clone()).collect();
    let events = platform.billing_events(&ids, &start.to_string()).await?;
    // A request may be billed in several events (a refund is a negative one): they add up.
    let mut billed: BTreeMap<&str, Usd> = BTreeMap::new();
    for event in &events {
        let total = billed.entry(event.request_id.as_str()).or_insert(Usd::ZERO);
        *total = total.saturating_add(event.cost);
    }
    let mut drift: BTreeMap<String, Drift> = BTreeMap::new();
    for (id, model, actual) in &settled {
        let entry = drift.entry(model.clone()).or_default();
        entry.requests += 1;
        match billed.get(id.as_str()) {
            Some(cost) => {
                entry.settled = entry.settled.saturating_add(*actual);
                entry.billed = entry.billed.saturating_add(*cost);
            }
            None => {
                entry.unbilled += 1;
                entry.unbilled_settled = entry.unbilled_settled.saturating_add(*actual);
            }
        }
    }
    record(app, &drift)?;
    report(app, &day, &drift)
}

/// fal's platform API with `FAL_ADMIN_KEY`, else the ordinary key.
fn admin_platform(app: &App) -> Result<acgs_providers_fal::Platform, Failure> {
    let Some(admin) = app
        .env
        .var("FAL_ADMIN_KEY")
        .filter(|k| !k.trim().is_empty())
    else {
        return app.fal_platform();
    };
    let admin = SecretString::from(admin.trim().to_owned());
    app.ui.redactor().add_secret(admin.expose_secret());
    let http = HttpClient::new(
        NetworkPolicy::from_config(&app.config().network),
        app.ui.redactor().clone(),
    )?;
    Ok(acgs_providers_fal::Platform::new(
        http,
        &app.config().providers.urls(ProviderId::Fal),
        Some(&admin),
    )?)
}

/// One audit entry per model: acgs's settled total as the estimate, fal's billed total as the
/// actual, `spend.drift` when they differ.
fn record(app: &App, drift: &BTreeMap<String, Drift>) -> Result<(), Failure> {
    let user = app.loaded.user(&app.env);
    let events = drift
        .iter()
        .map(|(model, d)| {
            let differs = d.settled != d.billed || d.unbilled > 0;
            AuditEvent {
                operation: "spend.reconcile".into(),
                provider: Some(ProviderId::Fal),
                model: Some(model.clone()),
                estimate: Some(d.settled),
                actual: Some(d.billed),
                user: user.clone(),
                origin: Origin::Cli,
                outcome: Some(if differs {
                    AuditOutcome::Alert
                } else {
                    AuditOutcome::Success
                }),
                code: differs.then(|| "spend.drift".to_owned()),
                ..AuditEvent::default()
            }
        })
        .collect();
    app.audit_log()
        .record_all(events)
        .map_err(|e| CliError::Usage(e.to_string()).into())
}

fn signed(settled: Usd, billed: Usd) -> String {
    if billed >= settled {
        format!("+${}", billed.saturating_sub(settled))
    } else {
        format!("-${}", settled.saturating_sub(billed))
    }
}

fn report(app: &App, day: &str, drift: &BTreeMap<String, Drift>) -> CmdResult {
    if app.ui.json {
        let models: Vec<_> = drift
            .iter()
            .map(|(model, d)| json!({"model": model, "requests": d.requests, "settled": d.settled,
                                     "billed": d.billed, "drift": signed(d.settled, d.billed), "not_yet_billed": d.unbilled,
                                     "not_yet_billed_settled": d.unbilled_settled}))
            .collect();
        return app
            .ui
            .result_json(&json!({"since": day, "models": models}))
            .map_err(|e| CliError::from(e).into());
    }
    let mut rows = vec![
        [
            "MODEL",
            "REQUESTS",
            "SETTLED",
            "FAL BILLED",
            "DRIFT",
            "NOT YET BILLED",
        ]
        .map(str::to_owned),
    ];
    for (model, d) in drift {
        rows.push([
            model.clone(),
            d.requests.to_string(),
            format!("${}", d.settled),
            format!("${}", d.billed),
            signed(d.settled, d.billed),
            d.unbilled.to_string(),
        ]);
    }
    let mut text = format!("fal requests settled since {day}\n");
    text.push_str(&aligned(&rows));
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}
