//! `acgs guard check`: the verdict of every rule on a text.

use acgs_core::UserFacing as _;
use acgs_guard::{InspectOptions, Report};
use serde_json::{Value, json};

use crate::app::App;
use crate::cli::GuardCheckArgs;
use crate::failure::{CliError, CmdResult, Failure};

fn read_text(args: &GuardCheckArgs) -> Result<String, Failure> {
    super::text_argument(args.text.as_ref(), args.file.as_deref())
}

fn rule(name: &str, kind: &str, verdict: &str, detail: Value) -> Value {
    json!({"rule": name, "kind": kind, "verdict": verdict, "detail": detail})
}

fn rules(report: &Report) -> Vec<Value> {
    let mut out = vec![rule(
        "length",
        "limit",
        if report.chars > report.limit as usize {
            "refuse"
        } else {
            "pass"
        },
        json!({"chars": report.chars, "limit": report.limit}),
    )];
    for f in &report.credentials {
        let verdict = if f.severity == acgs_guard::scan::Severity::Refuse {
            "refuse"
        } else {
            "warn"
        };
        out.push(rule(
            f.rule,
            "credential",
            verdict,
            json!({"at": [f.span.start, f.span.end]}),
        ));
    }
    if report.loaded_key {
        out.push(rule("loaded_key", "credential", "refuse", Value::Null));
    }
    if let Some(hit) = &report.blocked {
        out.push(rule(
            "blocklist",
            "moderation",
            "refuse",
            json!({"category": hit.category, "list": hit.list}),
        ));
    }
    for hit in &report.injection.hits {
        out.push(rule(
            hit.rule,
            "injection",
            "scored",
            json!({"score": hit.score}),
        ));
    }
    out
}

/// Run `acgs guard check`.
pub(crate) fn check(app: &App, args: &GuardCheckArgs) -> CmdResult {
    let text = read_text(args)?;
    let suite = app.planning_suite()?;
    let config = app.config();
    let options = match &args.model {
        Some(key) => {
            let model = app.catalog.resolve(key)?;
            InspectOptions {
                limit: acgs_engine::limit_for(model.task, model.max_text_chars, config),
                injection: model
                    .task
                    .is_text_model()
                    .then_some(config.guard.on_injection),
            }
        }
        None => InspectOptions {
            limit: config.guard.max_prompt_chars,
            injection: Some(config.guard.on_injection),
        },
    };
    let report = suite.guard().report("text", &text, options);
    let verdict = match (&report.refusal, report.warnings.is_empty()) {
        (Some(_), _) => "refuse",
        (None, false) => "warn",
        (None, true) => "pass",
    };
    let s = &report.sanitized;
    let doc = json!({
        "verdict": verdict,
        "refusal": report.refusal.as_ref().map(|e| json!({"code": e.code(), "message": e.to_string()})),
        "warnings": report.warnings,
        "sanitizer": {"changed": s.changed(), "removed": s.removed, "normalized": s.normalized, "trimmed": s.trimmed},
        "injection": {"score": report.injection.score, "threshold": acgs_guard::inject::THRESHOLD, "applied": options.injection.is_some()},
        "rules": rules(&report),
    });
    if app.ui.json {
        app.ui.result_json(&doc).map_err(CliError::from)?;
    } else {
        app.ui.result_text(&render(&doc)).map_err(CliError::from)?;
    }
    match report.refusal {
        Some(refusal) => Err(Failure::after_result(refusal)),
        None => Ok(()),
    }
}

fn render(doc: &Value) -> String {
    let mut text = format!(
        "verdict   {}\n",
        doc["verdict"].as_str().unwrap_or_default()
    );
    let s = &doc["sanitizer"];
    text.push_str(&format!(
        "sanitizer {} invisible or control characters removed{}{}\n",
        s["removed"],
        if s["normalized"] == json!(true) {
            ", compatibility forms normalized"
        } else {
            ""
        },
        if s["trimmed"] == json!(true) {
            ", whitespace trimmed"
        } else {
            ""
        }
    ));
    for r in doc["rules"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "{:<10}{:<22} {:<7} {}\n",
            r["kind"].as_str().unwrap_or_default(),
            r["rule"].as_str().unwrap_or_default(),
            r["verdict"].as_str().unwrap_or_default(),
            if r["detail"].is_null() {
                String::new()
            } else {
                r["detail"].to_string()
            }
        ));
    }
    let inj = &doc["injection"];
    text.push_str(&format!(
        "injection score {} (threshold {}{})\n",
        inj["score"],
        inj["threshold"],
        if inj["applied"] == json!(true) {
            ""
        } else {
            "; not applied for this model"
        }
    ));
    for w in doc["warnings"].as_array().into_iter().flatten() {
        text.push_str(&format!("warning   {}\n", w.as_str().unwrap_or_default()));
    }
    text
}
