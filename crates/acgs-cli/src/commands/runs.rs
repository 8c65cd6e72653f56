//! `acgs runs` and `acgs runs show ID`: history — what was asked, how it ended, what it cost and
//! where the files are.

use acgs_engine::{RunFilter, RunOutcome, RunStatus, RunSummary};
use jiff::tz::TimeZone;
use serde_json::json;

use super::models::aligned;
use crate::app::App;
use crate::cli::{RunStatusArg, RunsAction, RunsArgs};
use crate::failure::{CliError, CmdResult};
use crate::ui::printable;

/// The most characters of a prompt a table shows.
const PROMPT_CHARS: usize = 48;

/// `acgs runs [show ID]`.
pub(crate) async fn run(app: &App, args: &RunsArgs) -> CmdResult {
    match &args.action {
        Some(RunsAction::Show { run_id }) => show(app, run_id).await,
        None => list(app, args),
    }
}

fn list(app: &App, args: &RunsArgs) -> CmdResult {
    let since = args
        .since
        .map(|day| day.to_zoned(TimeZone::system()).map(|z| z.timestamp()))
        .transpose()
        .map_err(|e| CliError::Usage(format!("--since: {e}")))?;
    let filter = RunFilter {
        model: args.model.clone(),
        status: args.status.map(outcome),
        since,
        limit: args.limit,
    };
    let runs = app.history_suite()?.runs_made(&filter)?;
    if app.ui.json {
        return app
            .ui
            .result_json(&json!({ "runs": runs }))
            .map_err(|e| CliError::from(e).into());
    }
    if runs.is_empty() {
        app.ui
            .note("no runs match; every command that spends records its run here");
        return Ok(());
    }
    let mut rows = vec![["RUN", "MADE", "STATUS", "COST", "MODEL", "PROMPT"].map(str::to_owned)];
    rows.extend(runs.iter().map(row));
    let mut text = aligned(&rows);
    text.push_str("\n`acgs runs show RUN` lists a run's steps and files\n");
    app.ui
        .result_text(&text)
        .map_err(|e| CliError::from(e).into())
}

fn row(run: &RunSummary) -> [String; 6] {
    [
        run.run_id.clone(),
        local(run.created_at),
        run.status.as_str().to_owned(),
        format!("${}", run.cost),
        printable(&run.models.join(",")),
        run.prompt.as_deref().map(short).unwrap_or_default(),
    ]
}

async fn show(app: &App, run_id: &str) -> CmdResult {
    let status = app.ledger_suite().await?.run_status(run_id).await?;
    if app.ui.json {
        return app
            .ui
            .result_json(&json!(status))
            .map_err(|e| CliError::from(e).into());
    }
    app.ui
        .result_text(&describe(&status))
        .map_err(|e| CliError::from(e).into())
}

/// A run in words: its header, then each step with its money and files.
fn describe(status: &RunStatus) -> String {
    let mut out = format!(
        "run     {}\nmade    {}\nstatus  {}\nfolder  {}\n",
        status.run_id,
        local(status.created_at),
        status.status.as_str(),
        printable(&status.folder.display().to_string()),
    );
    if let Some(prompt) = &status.prompt {
        out.push_str(&format!("prompt  {}\n", printable(prompt)));
    }
    for step in &status.steps {
        let money = match (step.actual, step.estimate) {
            (Some(actual), _) => format!("${actual}"),
            (None, Some(estimate)) => format!("up to ${estimate}, not settled"),
            (None, None) => "nothing reserved".to_owned(),
        };
        out.push_str(&format!(
            "\nstep `{}`  {}  {}  {money}",
            printable(&step.step),
            printable(&step.model),
            format!("{:?}", step.status).to_lowercase(),
        ));
        if let Some(code) = &step.error_code {
            out.push_str(&format!("  ({})", printable(code)));
        }
        out.push('\n');
        for file in &step.outputs {
            out.push_str(&format!(
                "  {}  {}  {} bytes\n",
                printable(&file.path.display().to_string()),
                printable(&file.content_type),
                file.bytes
            ));
        }
    }
    if status.resumable() {
        out.push_str(&format!("\n`acgs resume {}` finishes it\n", status.run_id));
    }
    out
}

fn outcome(arg: RunStatusArg) -> RunOutcome {
    match arg {
        RunStatusArg::Done => RunOutcome::Done,
        RunStatusArg::Failed => RunOutcome::Failed,
        RunStatusArg::Cancelled => RunOutcome::Cancelled,
        RunStatusArg::Unfinished => RunOutcome::Unfinished,
    }
}

/// `at` on the local clock, to the minute.
fn local(at: jiff::Timestamp) -> String {
    at.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// A prompt on one line, printable, cut to [`PROMPT_CHARS`].
fn short(prompt: &str) -> String {
    let one_line = printable(&prompt.split_whitespace().collect::<Vec<_>>().join(" "));
    if one_line.chars().count() <= PROMPT_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(PROMPT_CHARS - 1).collect();
    format!("{cut}…")
}
