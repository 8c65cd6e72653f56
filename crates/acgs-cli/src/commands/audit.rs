//! `acgs audit verify|tail|anchor`: the tamper-evident log, checked against the head the ledger
//! keeps.

use acgs_core::error::{ErrorKind, UserFacing};
use acgs_storage::audit::{Anchor, AuditEntry, AuditKey, ChainBreak, head, verify};
use serde_json::json;

use super::models::aligned;
use crate::app::App;
use crate::cli::{AuditAction, AuditArgs};
use crate::failure::{CliError, CmdResult, Failure};
use crate::ui::printable;

/// A broken chain (exit 7).
#[derive(Debug, thiserror::Error)]
#[error("the audit log was changed: {0}")]
pub(crate) struct Tampered(ChainBreak);

impl UserFacing for Tampered {
    fn code(&self) -> &'static str {
        "audit.tampered"
    }
    fn kind(&self) -> ErrorKind {
        ErrorKind::Check
    }
    fn hint(&self) -> Option<String> {
        Some("entries from that line on cannot be trusted; keep a copy of the file as it is".into())
    }
}

/// `acgs audit …`.
pub(crate) async fn run(app: &App, args: &AuditArgs) -> CmdResult {
    match args.action {
        AuditAction::Verify => verify_log(app).await,
        AuditAction::Tail {
            count,
            ref origin,
            ref session,
        } => tail(app, count, (origin.as_deref(), session.as_deref())),
        AuditAction::Anchor => anchor(app).await,
    }
}

fn key(app: &App) -> Option<AuditKey> {
    let path = app.loaded.paths.config_dir.join("audit-key");
    path.exists()
        .then(|| AuditKey::load_or_create(&path).ok())
        .flatten()
}

async fn verify_log(app: &App) -> CmdResult {
    let path = app.loaded.audit_path();
    if !path.exists() {
        return app
            .ui
            .result_text("the audit log is empty: nothing to check\n")
            .map_err(|e| CliError::from(e).into());
    }
    let ledger = app.ledger().await?;
    let anchor = ledger
        .meta(&app.audit_log().head_key())
        .await?
        .and_then(|m| Anchor::from_meta(&m));
    let report = match verify(&path, key(app).as_ref(), anchor.as_ref())? {
        Ok(report) => report,
        Err(broken) => return Err(Tampered(broken).into()),
    };
    let (seq, digest) = report.head.clone().unwrap_or_default();
    if app.ui.json {
        let doc = json!({
            "intact": true, "entries": report.entries, "keyed": report.keyed,
            "head": {"seq": seq, "digest": digest},
            "anchor": anchor.as_ref().map(|a| json!({"seq": a.seq, "digest": a.digest})),
        });
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    if !report.keyed {
        app.ui.warning(
            "the chain is not keyed (no audit key): it shows edits made without recomputing it, not deliberate ones",
        );
    }
    let text = format!(
        "audit log intact: {} entries, head {seq} {digest}{}\n",
        report.entries,
        anchor.map_or_else(String::new, |a| format!(
            "; reaches the ledger's anchor at {}",
            a.seq
        ))
    );
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// The last `count` entries of the log that came through `origin` and `session` (either `None`
/// matches everything).
fn tail(app: &App, count: usize, (origin, session): (Option<&str>, Option<&str>)) -> CmdResult {
    let text = fs_err::read_to_string(app.loaded.audit_path()).unwrap_or_default();
    let mut entries: Vec<AuditEntry> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<AuditEntry>(l).ok())
        .filter(|e| origin.is_none_or(|o| e.origin.is_some_and(|eo| eo.as_str() == o)))
        .filter(|e| session.is_none_or(|s| e.session.as_deref() == Some(s)))
        .collect();
    entries.drain(..entries.len().saturating_sub(count));
    if app.ui.json {
        return app
            .ui
            .result_json(&json!({ "entries": entries }))
            .map_err(|e| CliError::from(e).into());
    }
    let mut rows = vec![
        [
            "SEQ",
            "TIME",
            "USER",
            "VIA",
            "OPERATION",
            "MODEL",
            "OUTCOME",
            "CODE",
            "COST",
        ]
        .map(str::to_owned),
    ];
    for e in &entries {
        rows.push([
            e.seq.to_string(),
            e.ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            printable(&e.user),
            via(e),
            printable(&e.operation),
            printable(e.model.as_deref().unwrap_or("-")),
            format!("{:?}", e.outcome).to_lowercase(),
            printable(e.code.as_deref().unwrap_or("-")),
            e.actual
                .or(e.estimate)
                .map_or_else(|| "-".into(), |u| format!("${u}")),
        ]);
    }
    app.ui
        .result_text(&aligned(&rows))
        .map_err(|e| CliError::from(e).into())
}

/// The entrance of `entry` and its session: `cli`, `mcp:3f2a…`.
fn via(entry: &AuditEntry) -> String {
    let origin = entry.origin.map_or("-", |o| o.as_str());
    match &entry.session {
        Some(session) => printable(&format!("{origin}:{session}")),
        None => origin.to_owned(),
    }
}

async fn anchor(app: &App) -> CmdResult {
    let Some(anchor) = record_head(app).await? else {
        return app
            .ui
            .result_text("the audit log is empty: nothing to anchor\n")
            .map_err(|e| CliError::from(e).into());
    };
    if app.ui.json {
        let doc = json!({"seq": anchor.seq, "digest": anchor.digest});
        return app
            .ui
            .result_json(&doc)
            .map_err(|e| CliError::from(e).into());
    }
    let text = format!(
        "anchored entry {} {} in the ledger; keep this line somewhere else too\n",
        anchor.seq, anchor.digest
    );
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

/// Keep the audit log's head in the ledger (never moving it backwards, even when processes
/// write it at once).
pub(crate) async fn record_head(app: &App) -> Result<Option<Anchor>, Failure> {
    let Some(current) = head(&app.loaded.audit_path(), key(app).as_ref())? else {
        return Ok(None);
    };
    app.ledger()
        .await?
        .advance_meta(&app.audit_log().head_key(), current.seq, &current.digest)
        .await?;
    Ok(Some(current))
}
