//! `acgs resume RUN_ID`: finish a run where it stopped, a single command or a pipeline.

use acgs_engine::{Interrupt, Resumed};

use crate::app::App;
use crate::cli::ResumeArgs;
use crate::failure::CmdResult;

/// `acgs resume`.
pub(crate) async fn resume(app: &App, args: &ResumeArgs, interrupt: &Interrupt) -> CmdResult {
    let providers = app.providers_of_run(&args.run_id)?;
    let suite = app.spending_suite_for(&providers).await?;
    let resumed = suite
        .resume(
            &args.run_id,
            args.resubmit,
            &super::progress_sink(&app.ui),
            interrupt,
        )
        .await?;
    match resumed {
        Resumed::Single(report) => super::generate::render_report(app, &report),
        Resumed::Pipeline(report) => super::pipeline::render_report(app, &report, interrupt),
    }
}
