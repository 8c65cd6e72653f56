//! # acgs-cli
//!
//! The `acgs` command line: thin on purpose. It parses arguments, loads the context, calls the
//! engine and renders results; stdout carries the result only, everything else goes to stderr
//! through the redactor. Exit codes follow DESIGN.md §3.5.

mod app;
pub mod cli;
mod commands;
mod confirm;
mod examples;
mod failure;
mod logging;
mod ui;

use std::process::ExitCode;

use acgs_core::env::ProcessEnv;
use acgs_core::redact::Redactor;
use acgs_engine::{Interrupt, Signal};
use clap::Parser as _;

use crate::app::App;
use crate::cli::{Cli, Command, GuardAction, KeysAction, ModelsAction};
use crate::failure::CmdResult;
use crate::ui::Ui;

/// Run the command line; the process exit code is returned.
#[must_use]
pub fn main_entry() -> ExitCode {
    let builtin = app::BuiltinCatalog::parse_in_background();
    let cli = Cli::parse();
    if cli.command.may_spend() {
        // Work every such command needs, done on the second core while this one starts.
        let _ = std::thread::Builder::new()
            .name("acgs-prepare".into())
            .spawn(|| {
                acgs_guard::prepare();
                acgs_http::preload_trust_roots();
            });
    }
    let env = ProcessEnv::capture();
    let redactor = Redactor::new();
    redactor.add_scrubber(acgs_guard::scan::scrubber());
    // A terminal whose type is unknown (no TERM) is as dumb as TERM=dumb: no redrawn lines.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && env.var("TERM").is_some_and(|t| t != "dumb");
    let choice = match cli.color {
        cli::ColorWhen::Auto => ui::ColorChoice::Auto,
        cli::ColorWhen::Always => ui::ColorChoice::Always,
        cli::ColorWhen::Never => ui::ColorChoice::Never,
    };
    let color = ui::wants_color(choice, |name| env.var(name).map(str::to_owned), terminal);
    let ui = Ui::new(
        redactor.clone(),
        (cli.json, cli.quiet, cli.verbose),
        terminal,
        color,
    );
    let json_logs = cli.json || cli.log_format == cli::LogFormat::Json;
    logging::init(
        env.var("ACGS_LOG"),
        cli.verbose,
        cli.quiet,
        json_logs,
        redactor.clone(),
    );
    install_panic_hook(ui.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit(ui.error(&failure::CliError::Output(e), false)),
    };
    let code = runtime.block_on(async {
        let interrupt = Interrupt::new();
        watch_signals(interrupt.clone());
        match dispatch(&cli, env, ui.clone(), builtin, &interrupt).await {
            Ok(()) => 0,
            Err(failure) if is_broken_pipe(failure.error.as_ref()) => 0,
            Err(failure) => ui.error(failure.error.as_ref(), failure.result_printed),
        }
    });
    // Everything that must finish was awaited above. The runtime is not shut down: its idle
    // threads, kept-alive connections and lease timers are the operating system's to end with
    // the process (dropping them one by one cost about 1.5 ms at the end of every command).
    std::mem::forget(runtime);
    exit(code)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn is_broken_pipe(error: &dyn acgs_core::UserFacing) -> bool {
    error.code() == "io.output" && error.to_string().contains("Broken pipe")
}

async fn dispatch(
    cli: &Cli,
    env: ProcessEnv,
    ui: Ui,
    builtin: app::BuiltinCatalog,
    interrupt: &Interrupt,
) -> CmdResult {
    match &cli.command {
        Command::Completions { shell } => return commands::manual::completions(*shell, &ui),
        Command::Man => return commands::manual::man(&ui),
        _ => {}
    }
    if let Command::Models(args) = &cli.command
        && args.refresh_prices
    {
        let app = App::load(cli, env, ui, builtin, interrupt)?;
        return commands::models::refresh::run(&app).await;
    }
    if let Command::Models(args) = &cli.command
        && let Some(action @ (ModelsAction::Search { .. } | ModelsAction::Add { .. })) =
            &args.action
    {
        let app = App::load(cli, env, ui, builtin, interrupt)?;
        return commands::catalogue::run(&app, action).await;
    }
    if let Command::Models(args) = &cli.command
        && cli.config.is_none()
        && cli.profile.is_none()
    {
        // Fast path: the catalogue with user overrides needs the configuration, but a missing
        // or unreadable one must not stop a listing.
        if let Ok(app) = App::load(cli, env.clone(), ui.clone(), builtin, interrupt) {
            return commands::models::run(
                &app.catalog,
                args,
                &ui,
                app.config().cost_management.unverified_price_margin.0,
            );
        }
        return commands::models::run(&app::builtin_catalog()?, args, &ui, 2000);
    }
    let app = App::load(cli, env, ui, builtin, interrupt)?;
    let result = command(cli, &app, interrupt).await;
    if cli.command.may_spend() {
        // The audit log's head, kept in the ledger, lets `acgs audit verify` see a cut tail.
        if let Err(e) = commands::audit::record_head(&app).await {
            app.ui.warning(&format!(
                "the audit head could not be kept in the ledger: {}",
                e.error
            ));
        }
    }
    result
}

/// Run the command.
async fn command(cli: &Cli, app: &App, interrupt: &Interrupt) -> CmdResult {
    match &cli.command {
        Command::Image(args) => commands::generate::image(app, args, interrupt).await,
        Command::Video(args) => commands::generate::video(app, args, interrupt).await,
        Command::Avatar(args) => commands::generate::avatar(app, args, interrupt).await,
        Command::Upscale(args) => commands::generate::upscale(app, args, interrupt).await,
        Command::Transcribe(args) => commands::generate::transcribe(app, args, interrupt).await,
        Command::Text(args) => commands::text::text(app, args, interrupt).await,
        Command::Analyze(args) => commands::text::analyze(app, args, interrupt).await,
        Command::Speech(args) => commands::speech::speech(app, args, interrupt).await,
        Command::Sound(args) => commands::speech::sound(app, args, interrupt).await,
        Command::Music(args) => commands::speech::music(app, args, interrupt).await,
        Command::Voices(args) => commands::speech::voices(app, args).await,
        Command::Resume(args) => commands::resume::resume(app, args, interrupt).await,
        Command::Runs(args) => commands::runs::run(app, args).await,
        Command::Validate(args) => commands::pipeline::validate(app, args),
        Command::Estimate(args) => commands::pipeline::estimate(app, args),
        Command::Run(args) => commands::pipeline::run(app, args, interrupt).await,
        Command::Init(args) => commands::init::run(app, args),
        Command::Import(args) => commands::import::run(app, args),
        Command::Models(args) => commands::models::run(
            &app.catalog,
            args,
            &app.ui,
            app.config().cost_management.unverified_price_margin.0,
        ),
        Command::Keys(args) => match &args.action {
            None | Some(KeysAction::Status) => commands::keys::status(app),
            Some(KeysAction::Check { provider }) => {
                commands::keys::check(app, provider.as_deref()).await
            }
            Some(KeysAction::Set { name }) => commands::keys::set(app, name),
            Some(KeysAction::Delete { name }) => commands::keys::delete(app, name),
        },
        Command::Guard(args) => match &args.action {
            GuardAction::Check(check) => commands::guard::check(app, check),
        },
        Command::Spend(args) => commands::spend::run(app, args).await,
        Command::Audit(args) => commands::audit::run(app, args).await,
        Command::Doctor(args) => commands::doctor::run(app, args).await,
        Command::Mcp(args) => commands::mcp::run(app, args, interrupt).await,
        Command::Serve(args) => commands::serve::run(app, args, interrupt).await,
        Command::Worker(args) => commands::serve::worker(app, args, interrupt).await,
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}

/// Ctrl-C and SIGTERM fire the interrupt: jobs are cancelled, reservations follow the charge
/// table, no partial file is left.
fn watch_signals(interrupt: Interrupt) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => interrupt.fire(Signal::Interrupt),
            _ = term.recv() => interrupt.fire(Signal::Terminate),
        }
    });
}

/// Panics are reported without internals (details, redacted, only with -v).
fn install_panic_hook(ui: Ui) {
    std::panic::set_hook(Box::new(move |info| {
        let detail = if ui.verbose > 0 {
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            Some(format!("{payload}{at}"))
        } else {
            None
        };
        ui.error(&InternalError(detail), false);
    }));
}

#[derive(Debug, thiserror::Error)]
#[error("acgs hit an internal error; nothing more was sent. Please report it")]
struct InternalError(Option<String>);

impl acgs_core::UserFacing for InternalError {
    fn code(&self) -> &'static str {
        "internal.panic"
    }
    fn kind(&self) -> acgs_core::ErrorKind {
        acgs_core::ErrorKind::Internal
    }
    fn hint(&self) -> Option<String> {
        Some("run again with -v for details".into())
    }
    fn detail(&self) -> Option<String> {
        self.0.clone()
    }
}
