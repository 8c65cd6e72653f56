//! `acgs spend`: reserved, settled and expired spend, grouped, against the daily limit and the
//! trailing 7-day average; and `acgs spend abandon RUN/STEP`. Money is never printed as a float.

use std::collections::BTreeMap;

use acgs_core::Usd;
use acgs_core::ledger::{ReservationRecord, ReservationState, shared_limits};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::{SpendAction, SpendArgs, SpendBy};
use crate::failure::{CliError, CmdResult};

/// How much of spend a set of reservations holds.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    reserved: Usd,
    settled: Usd,
    expired: Usd,
    count: u64,
}

impl Totals {
    fn add(&mut self, r: &ReservationRecord) {
        self.count += 1;
        match r.state {
            ReservationState::Held | ReservationState::Submitted => {
                self.reserved = self.reserved.saturating_add(r.estimate)
            }
            ReservationState::Settled | ReservationState::Abandoned => {
                self.settled = self.settled.saturating_add(r.actual.unwrap_or(r.estimate));
            }
            ReservationState::Expired => self.expired = self.expired.saturating_add(r.estimate),
            ReservationState::Released => {}
        }
    }

    fn counted(&self) -> Usd {
        self.reserved.saturating_add(self.settled)
    }

    fn json(&self) -> Value {
        json!({"reserved": self.reserved, "settled": self.settled, "expired": self.expired, "total": self.counted(), "count": self.count})
    }
}

fn day_minus(day: &str, days: i64) -> Result<String, CliError> {
    let date: jiff::civil::Date = day
        .parse()
        .map_err(|_| CliError::Usage(format!("`{day}` is not a date (YYYY-MM-DD)")))?;
    date.checked_sub(jiff::Span::new().days(days))
        .map(|d| d.to_string())
        .map_err(|_| CliError::Usage("date out of range".into()))
}

/// Run `acgs spend`.
pub(crate) async fn run(app: &App, args: &SpendArgs) -> CmdResult {
    match &args.action {
        Some(SpendAction::Abandon { target }) => return abandon(app, target).await,
        Some(SpendAction::Reconcile { since }) => return super::reconcile::run(app, since).await,
        None => {}
    }
    let ledger = app.ledger().await?;
    let cost = acgs_engine::effective_limits(
        &app.config().cost_management,
        &shared_limits(ledger.as_ref()).await?,
    );
    let today = ledger.today(&cost.timezone).await?;
    let from = match &args.since {
        Some(date) => day_minus(date, 0)?,
        None => today.day.clone(),
    };
    let week_start = day_minus(&today.day, 7)?;
    let rows = ledger
        .reservations(Some(from.as_str().min(week_start.as_str())))
        .await?;
    let mut totals = Totals::default();
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    let mut per_day: BTreeMap<String, Totals> = BTreeMap::new();
    for r in &rows {
        per_day.entry(r.day.clone()).or_default().add(r);
        if r.day < from {
            continue;
        }
        totals.add(r);
        if let Some(by) = args.by {
            let key = match by {
                SpendBy::Model => format!("{}:{}", r.provider, r.model),
                SpendBy::Provider => r.provider.clone(),
                SpendBy::User => r.user.clone(),
            };
            groups.entry(key).or_default().add(r);
        }
    }
    let trailing: Usd = per_day
        .iter()
        .filter(|(d, _)| d.as_str() >= week_start.as_str() && d.as_str() < today.day.as_str())
        .fold(Usd::ZERO, |acc, (_, t)| acc.saturating_add(t.counted()));
    let average = trailing.mul_div_ceil(1, 7).unwrap_or(Usd::ZERO);
    let today_total = today.total();
    let unusual = average > Usd::ZERO && today_total > average.checked_mul(2).unwrap_or(Usd::MAX);
    let doc = json!({
        "from": from, "to": today.day, "timezone": cost.timezone,
        "daily_limit": cost.daily_limit,
        "today": {"day": today.day, "reserved": today.reserved, "settled": today.settled, "total": today_total,
                  "remaining": cost.daily_limit.saturating_sub(today_total)},
        "trailing_7_day_average": average, "unusual": unusual,
        "totals": totals.json(),
        "by": args.by.map(|_| groups.iter().map(|(k, t)| { let mut v = t.json(); v["key"] = json!(k); v }).collect::<Vec<_>>()),
    });
    if app.ui.json {
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    let mut text = format!(
        "today {}: ${} counted (${} settled, ${} reserved) of ${}, ${} left\n",
        today.day,
        today_total,
        today.settled,
        today.reserved,
        cost.daily_limit,
        cost.daily_limit.saturating_sub(today_total)
    );
    text.push_str(&format!(
        "trailing 7-day average ${}{}\n",
        average,
        if unusual {
            "  — today is unusually high"
        } else {
            ""
        }
    ));
    text.push_str(&format!(
        "{} to {}: ${} settled, ${} reserved, ${} expired, {} reservations\n",
        from, today.day, totals.settled, totals.reserved, totals.expired, totals.count
    ));
    for (key, t) in &groups {
        text.push_str(&format!(
            "  {key:<32} ${} settled, ${} reserved, {} reservations\n",
            t.settled, t.reserved, t.count
        ));
    }
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

async fn abandon(app: &App, target: &str) -> CmdResult {
    let (run_id, step) = target.split_once('/').ok_or_else(|| {
        CliError::Usage("give RUN_ID/STEP, e.g. 20261127T210555Z-a1b2c3/main".into())
    })?;
    let suite = app.ledger_suite().await?;
    let record = suite.abandon(run_id, step).await?;
    let doc = json!({"run_id": run_id, "step": step, "written_off": record.estimate, "reservation_id": record.id});
    if app.ui.json {
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    app.ui
        .result_text(&format!(
            "{run_id}/{step}: written off at ${} (audited)",
            record.estimate
        ))
        .map_err(|e| CliError::from(e).into())
}
