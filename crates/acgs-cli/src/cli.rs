//! The command-line definition (also used by `cargo xtask dist` for completions and the man page).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// acgs — AI Content Generation Suite.
///
/// Generate images, video, speech and text through fal.ai, Google Gemini and ElevenLabs. Every
/// request is validated, sanitized, moderated, priced and paid for against hard budgets, stored
/// safely and audited; keys never leave the one guarded path.
#[derive(Debug, Parser)]
#[command(name = "acgs", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Configuration profile (default: dev; also ACGS_PROFILE).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// A trusted configuration file to use instead of ./acgs.toml (also ACGS_CONFIG).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the result as one JSON document; every stderr line becomes a JSON object.
    #[arg(long, global = true)]
    pub json: bool,
    /// Only errors on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More detail on stderr (-v: provider answers in errors, -vv: debug logs).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Confirm spending without asking.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Refuse what acgs otherwise only warns about (a project `.env` shadowing your own key);
    /// always on in the `prod` profile.
    #[arg(long, global = true)]
    pub strict: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Colour on stderr: auto (a terminal, unless NO_COLOR or TERM=dumb; CLICOLOR_FORCE forces
    /// it), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal that can show it, as the environment allows.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate images from a prompt, or edit images (--edit).
    #[command(after_long_help = crate::examples::IMAGE)]
    Image(ImageArgs),
    /// Generate a video from a prompt, animate an image (--image), or edit a video (--video).
    #[command(after_long_help = crate::examples::VIDEO)]
    Video(VideoArgs),
    /// Make a portrait talk: lip-sync to audio, or speak a text.
    #[command(after_long_help = crate::examples::AVATAR)]
    Avatar(AvatarArgs),
    /// Upscale an image or a video.
    #[command(after_long_help = crate::examples::UPSCALE)]
    Upscale(UpscaleArgs),
    /// Transcribe speech to text, word timings and subtitles.
    #[command(after_long_help = crate::examples::TRANSCRIBE)]
    Transcribe(TranscribeArgs),
    /// Write text with a language model.
    #[command(after_long_help = crate::examples::TEXT)]
    Text(TextArgs),
    /// Describe, read or question an image, a video or a recording.
    #[command(after_long_help = crate::examples::ANALYZE)]
    Analyze(AnalyzeArgs),
    /// Turn text into speech, or a script into a dialogue of several voices (--dialogue).
    #[command(after_long_help = crate::examples::SPEECH)]
    Speech(SpeechArgs),
    /// Make a sound effect, or the sound track of a video (--video).
    #[command(after_long_help = crate::examples::SOUND)]
    Sound(SoundArgs),
    /// Make music from a description.
    #[command(after_long_help = crate::examples::MUSIC)]
    Music(MusicArgs),
    /// List the ElevenLabs voices (or, with --models, the speech models and their limits).
    #[command(after_long_help = crate::examples::VOICES)]
    Voices(VoicesArgs),
    /// Check a pipeline file: every problem at once, each with its line.
    #[command(after_long_help = crate::examples::VALIDATE)]
    Validate(ValidateArgs),
    /// The worst case of every step of a pipeline, and of the run, against your limits.
    #[command(after_long_help = crate::examples::ESTIMATE)]
    Estimate(PipelineArgs),
    /// Run a pipeline: one confirmation, steps at once where they can be.
    #[command(after_long_help = crate::examples::RUN)]
    Run(PipelineArgs),
    /// Write a starter acgs.toml and pipeline.yaml in this folder.
    #[command(after_long_help = crate::examples::INIT)]
    Init(InitArgs),
    /// Convert a chain file of the Python suite into a pipeline (written, never run).
    #[command(after_long_help = crate::examples::IMPORT)]
    Import(ImportArgs),
    /// Finish a run that stopped: re-attach to its job, or send what was never sent.
    #[command(after_long_help = crate::examples::RESUME)]
    Resume(ResumeArgs),
    /// The runs made on this machine, newest first: what was asked, how it ended, what it cost,
    /// and where its files are.
    #[command(after_long_help = crate::examples::RUNS)]
    Runs(RunsArgs),
    /// List the model catalogue with prices.
    #[command(after_long_help = crate::examples::MODELS)]
    Models(ModelsArgs),
    /// Show where each provider key comes from.
    #[command(after_long_help = crate::examples::KEYS)]
    Keys(KeysArgs),
    /// Explain what the guard makes of a text.
    #[command(after_long_help = crate::examples::GUARD)]
    Guard(GuardArgs),
    /// What was spent: reserved, settled, expired; by model, provider or user.
    #[command(after_long_help = crate::examples::SPEND)]
    Spend(SpendArgs),
    /// The audit log: check its chain, show its last entries, anchor its head.
    #[command(after_long_help = crate::examples::AUDIT)]
    Audit(AuditArgs),
    /// Check this folder and your setup against the security checklist (exit 7 on a failure).
    #[command(after_long_help = crate::examples::DOCTOR)]
    Doctor(DoctorArgs),
    /// Serve AI agents over the Model Context Protocol, within the allowance `[mcp]` sets.
    #[command(after_long_help = crate::examples::MCP)]
    Mcp(McpArgs),
    /// Serve people and programs over HTTP: jobs with their own token, within their own budgets.
    #[command(after_long_help = crate::examples::SERVE)]
    Serve(ServeArgs),
    /// Run the service's jobs from its shared PostgreSQL records, on this or another machine.
    #[command(after_long_help = crate::examples::WORKER)]
    Worker(WorkerArgs),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of acgs; `acgs man | man -l -` shows it.
    Man,
}

impl Command {
    /// Whether the command may spend (and so write audit entries): generating commands that
    /// are not dry runs, pipeline runs, resumes, write-offs and the MCP server.
    #[must_use]
    pub fn may_spend(&self) -> bool {
        match self {
            Self::Image(a) => !a.run.dry_run,
            Self::Video(a) => !a.run.dry_run,
            Self::Avatar(a) => !a.run.dry_run,
            Self::Upscale(a) => !a.run.dry_run,
            Self::Transcribe(a) => !a.run.dry_run,
            Self::Text(a) => !a.run.dry_run,
            Self::Analyze(a) => !a.run.dry_run,
            Self::Speech(a) => !a.run.dry_run,
            Self::Sound(a) => !a.run.dry_run,
            Self::Music(a) => !a.run.dry_run,
            Self::Run(a) => !a.dry_run,
            Self::Resume(_) => true,
            Self::Spend(a) => a.action.is_some(),
            Self::Mcp(a) => a.action.is_none(),
            Self::Serve(a) => a.action.is_none(),
            Self::Worker(_) => true,
            _ => false,
        }
    }
}

/// `acgs spend`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SpendArgs {
    /// Write off a reservation left `submitted`.
    #[command(subcommand)]
    pub action: Option<SpendAction>,
    /// Only today (the default).
    #[arg(long, conflicts_with = "since")]
    pub today: bool,
    /// From this day (YYYY-MM-DD) to today.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Group by model, provider or user.
    #[arg(long, value_enum)]
    pub by: Option<SpendBy>,
}

/// `acgs spend …`.
#[derive(Debug, Subcommand)]
pub enum SpendAction {
    /// Write off the `submitted` reservation of RUN/STEP at its estimate (audited).
    Abandon {
        /// `RUN_ID/STEP`, e.g. `20261127T210555Z-a1b2c3/main`.
        target: String,
    },
    /// Compare the fal requests settled since DATE with what fal billed for each (its billing
    /// events; an ADMIN-scoped key in FAL_ADMIN_KEY), per model; recorded in the audit log.
    Reconcile {
        /// The first day (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        since: String,
    },
}

/// What `acgs spend --by` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpendBy {
    /// Catalogue key.
    Model,
    /// Provider.
    Provider,
    /// acgs user.
    User,
}

/// `acgs mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Serve streamable HTTP at this address (loopback, e.g. 127.0.0.1:8765) instead of stdio;
    /// clients must send the token `acgs mcp token` created.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub action: Option<McpAction>,
}

/// `acgs mcp …`.
#[derive(Debug, Subcommand)]
pub enum McpAction {
    /// Create the bearer token of `acgs mcp --http`, replacing any earlier one; it is shown once
    /// and only its digest is kept.
    Token,
}

/// `acgs serve`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    /// Where to listen: a loopback address (put a TLS proxy in front to serve others).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub addr: std::net::SocketAddr,
    /// How many jobs run at once in this process (0 with a PostgreSQL ledger: `acgs worker`
    /// processes run them).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(0..=4096))]
    pub workers: u16,
    /// How long a worker's claim on a job lasts unless renewed, in seconds (PostgreSQL).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(3..=3600))]
    pub lease_secs: u32,
    /// Send jobs' callbacks to loopback addresses too (plain http included); private and
    /// link-local addresses stay refused.
    #[arg(long)]
    pub allow_private_callbacks: bool,
    /// The service's public https URL (behind its TLS proxy): fal then calls back at
    /// `URL/v1/webhooks/fal` when a job ends, and the callbacks are verified against fal's keys.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The most requests one user may make a minute (bursts of as many); more get 429.
    #[arg(long, value_name = "N", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub user_rate: u32,
    /// The largest upload (`POST /v1/files`), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_upload_mib: u32,
    /// Manage users and tokens instead of serving.
    #[command(subcommand)]
    pub action: Option<ServeAction>,
}

/// `acgs worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// How many jobs run at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub jobs: u16,
    /// How long its claim on a job lasts unless renewed, in seconds: a job whose worker died
    /// is taken over by another after this.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(3..=3600))]
    pub lease_secs: u32,
    /// The service's public https URL, as given to `acgs serve --public-url`: fal jobs are then
    /// submitted with its webhook, and the callbacks the API verifies wake their waits here.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// On a signal, how long running jobs may take to end before they are handed over to other
    /// workers (their leases released, resumed elsewhere from their last checkpoint).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub drain_secs: u32,
    /// Send jobs' callbacks to loopback addresses too (plain http included); private and
    /// link-local addresses stay refused.
    #[arg(long)]
    pub allow_private_callbacks: bool,
}

/// `acgs serve …`.
#[derive(Debug, Subcommand)]
pub enum ServeAction {
    /// Users and their budgets.
    User {
        /// What to do.
        #[command(subcommand)]
        action: ServeUserAction,
    },
    /// Bearer tokens.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: ServeTokenAction,
    },
    /// Budgets of the whole service and of tags (projects, teams), per day, week or month.
    Limit {
        /// What to do.
        #[command(subcommand)]
        action: ServeLimitAction,
    },
}

/// `acgs serve limit …`.
#[derive(Debug, Subcommand)]
pub enum ServeLimitAction {
    /// Set a limit: `service` or `tag:NAME`, `daily`, `weekly` or `monthly`, an amount.
    Set {
        /// `service` or `tag:NAME`.
        scope: String,
        /// `daily`, `weekly` or `monthly` (UTC; weeks are ISO weeks).
        period: String,
        /// The most, e.g. 100.00.
        amount: String,
    },
    /// Remove a limit (a tag with no limit left is refused on jobs).
    Remove {
        /// `service` or `tag:NAME`.
        scope: String,
        /// `daily`, `weekly` or `monthly`.
        period: String,
    },
    /// Every limit set.
    List,
}

/// `acgs serve user …`.
#[derive(Debug, Subcommand)]
pub enum ServeUserAction {
    /// Add a user, or change an existing user's budgets.
    Add(UserAddArgs),
}

/// `acgs serve user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The name (letters, digits, `-`, `_`; at most 64).
    pub name: String,
    /// The most their jobs may count in one day (UTC), e.g. 5.00.
    #[arg(long, value_name = "USD")]
    pub daily: String,
    /// The most in one ISO week (UTC); kept when not given.
    #[arg(long, value_name = "USD")]
    pub weekly: Option<String>,
    /// The most in one calendar month (UTC); kept when not given.
    #[arg(long, value_name = "USD")]
    pub monthly: Option<String>,
    /// May use the admin routes (`/v1/admin/…`: users, tokens, limits); without it, may not.
    #[arg(long)]
    pub admin: bool,
}

/// `acgs serve token …`.
#[derive(Debug, Subcommand)]
pub enum ServeTokenAction {
    /// Create a token for a user: shown once, only its SHA-256 is kept.
    Create {
        /// Whose token.
        #[arg(long)]
        user: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Revoke a token by its id (`tok_…`).
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// `acgs audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: AuditAction,
}

/// `acgs audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check every entry's chain and that the log still reaches the head kept in the ledger;
    /// names the first broken entry (exit 7).
    Verify,
    /// The last entries, optionally only those of one entrance or session.
    Tail {
        /// How many.
        #[arg(short = 'n', default_value_t = 10)]
        count: usize,
        /// Only entries that came through this entrance: cli, mcp, service or library.
        #[arg(long)]
        origin: Option<String>,
        /// Only entries of this session (an `acgs mcp` connection prints its id when it starts).
        #[arg(long)]
        session: Option<String>,
    },
    /// Record the current head in the ledger and print it, to keep somewhere else too.
    Anchor,
}

/// `acgs doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The project folder to check (default: the current one).
    pub dir: Option<PathBuf>,
    /// Also scan the git history for credentials.
    #[arg(long)]
    pub history: bool,
}

/// `acgs guard`.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: GuardAction,
}

/// `acgs guard …`.
#[derive(Debug, Subcommand)]
pub enum GuardAction {
    /// The verdict of every rule on a text, what the sanitizer changed, and why it would be refused
    /// (exit 3 when it would be).
    Check(GuardCheckArgs),
}

/// `acgs guard check`.
#[derive(Debug, Args)]
pub struct GuardCheckArgs {
    /// The text (or use --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from a file (at most 4 MiB of UTF-8).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Check as for this model (its task and character limit); default: every rule, including
    /// the injection heuristics that apply to text models.
    #[arg(long)]
    pub model: Option<String>,
}

/// Options every generating command takes.
#[derive(Debug, Args)]
pub struct RunOptions {
    /// A model parameter, `name=value` (repeatable); `acgs models --json` lists them.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// File stem for the outputs ([A-Za-z0-9._-], never a path).
    #[arg(long, value_name = "STEM")]
    pub out: Option<String>,
    /// Validate, inspect and price only: no network, no key, no spending.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop waiting after this many seconds (the run stays resumable).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// On Ctrl-C, leave the job running instead of cancelling it (finish it with `acgs resume`).
    #[arg(long)]
    pub detach: bool,
}

/// `acgs image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to draw (or, with --edit, what to change).
    pub prompt: String,
    /// Catalogue key (default: flux_dev; with --edit, kontext or kontext_multi).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Edit these images instead of drawing from scratch.
    #[arg(long, value_name = "IMAGE", num_args = 1..)]
    pub edit: Vec<PathBuf>,
    /// What to avoid (models that take a negative prompt).
    #[arg(long, value_name = "TEXT")]
    pub negative_prompt: Option<String>,
    /// Number of images.
    #[arg(short = 'n', value_name = "N")]
    pub count: Option<u32>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs video`.
#[derive(Debug, Args)]
pub struct VideoArgs {
    /// What should happen in the video.
    pub prompt: String,
    /// Animate this image (image to video) instead of starting from text; with --video, the
    /// character that moves like the video (motion transfer).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// End on this frame: the video moves from --image to it.
    #[arg(
        long,
        value_name = "IMAGE",
        requires = "image",
        conflicts_with = "video"
    )]
    pub end_image: Option<PathBuf>,
    /// Edit or restyle this video (video to video), as the prompt says.
    #[arg(long, value_name = "VIDEO")]
    pub video: Option<PathBuf>,
    /// A reference image for the subject (repeat for several): reference to video, or the
    /// looks of an edit.
    #[arg(long = "ref", value_name = "IMAGE")]
    pub refs: Vec<PathBuf>,
    /// Catalogue key (default: kling_2_6_pro from text, kling_2_1 from an image, kling_o3_pro_edit
    /// from a video, wan_motion from a video and an image, veo_3_1_fast_flf to an end frame,
    /// veo_3_1_reference from references).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Length in seconds (one of the model's durations).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// What to avoid (models that take a negative prompt).
    #[arg(long, value_name = "TEXT")]
    pub negative_prompt: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs avatar`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("speech").required(true).args(["audio", "text"]))]
pub struct AvatarArgs {
    /// The portrait to animate.
    pub image: PathBuf,
    /// Speech to lip-sync (default model: omnihuman_v1_5).
    #[arg(long, value_name = "AUDIO")]
    pub audio: Option<PathBuf>,
    /// Text to speak (default model: fabric_1_0_text).
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Catalogue key.
    #[arg(long, short)]
    pub model: Option<String>,
    /// Guidance for the motion (models that take a prompt).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs upscale`.
#[derive(Debug, Args)]
pub struct UpscaleArgs {
    /// The image or video to upscale (default model: seedvr for images, topaz for videos).
    pub input: PathBuf,
    /// Catalogue key.
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs transcribe`.
#[derive(Debug, Args)]
pub struct TranscribeArgs {
    /// The audio to transcribe; writes text, JSON with word timings, and SRT subtitles.
    pub audio: PathBuf,
    /// Catalogue key (default: scribe_v2 through fal; elevenlabs_scribe_v1 for ElevenLabs).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs text`.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// What to write (or use --file; `-`, or nothing with piped input, reads standard input).
    #[arg(conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file (UTF-8, at most 4 MiB; `-` is standard input).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// How to write: a system instruction, kept apart from the prompt.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Catalogue key (default: gemini_2_5_flash).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The image, video or audio file to look at.
    pub input: PathBuf,
    /// What to ask: describe, detailed, classify, objects, ocr or composition.
    #[arg(long, default_value = "describe", conflicts_with = "question")]
    pub preset: String,
    /// Ask your own question instead of a preset.
    #[arg(long, short = 'Q', value_name = "TEXT")]
    pub question: Option<String>,
    /// Catalogue key (default: the Gemini 2.5 Flash model for the file's kind).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs speech`.
#[derive(Debug, Args)]
pub struct SpeechArgs {
    /// What to say (or use --file; `-`, or nothing with piped input, reads standard input).
    #[arg(conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from a file (UTF-8, at most 4 MiB, `-` is standard input;
    /// `guard.max_speech_chars` applies).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Voice name or id (`acgs voices`; default: Rachel).
    #[arg(long, conflicts_with = "dialogue")]
    pub voice: Option<String>,
    /// The text is a dialogue: one `Voice: line` per turn, each voice a name or id (default
    /// model: elevenlabs_dialogue).
    #[arg(long)]
    pub dialogue: bool,
    /// Catalogue key (default: elevenlabs_multilingual_v2).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs sound`.
#[derive(Debug, Args)]
pub struct SoundArgs {
    /// The sound wanted.
    pub prompt: String,
    /// Make the sound track of this video (default model: mmaudio_v2) instead of a sound effect
    /// (default model: elevenlabs_sound_effects).
    #[arg(long, value_name = "VIDEO")]
    pub video: Option<PathBuf>,
    /// Length in seconds.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<String>,
    /// Catalogue key.
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs music`.
#[derive(Debug, Args)]
pub struct MusicArgs {
    /// The song: style, mood, instruments, lyrics.
    pub prompt: String,
    /// Length in seconds (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// No vocals.
    #[arg(long)]
    pub instrumental: bool,
    /// Catalogue key (default: elevenlabs_music).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Options of every generating command.
    #[command(flatten)]
    pub run: RunOptions,
}

/// `acgs voices`.
#[derive(Debug, Args)]
pub struct VoicesArgs {
    /// List the models with their per-request limits and character cost multipliers instead.
    #[arg(long)]
    pub models: bool,
}

/// `acgs validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The pipeline file.
    pub file: PathBuf,
}

/// `acgs import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The chain file (`steps` with `type: text_to_image`, `parallel_group`, …).
    pub file: PathBuf,
    /// Where to write the pipeline; never an existing file. Default: beside the chain file,
    /// `NAME.acgs.yaml`.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `acgs estimate` and `acgs run`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file.
    pub file: PathBuf,
    /// A declared input, `name=value` (repeatable); a bare value when the pipeline declares one
    /// input. Image, video and audio inputs are paths.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Inputs as a YAML mapping (`name: value`) from a file, or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub input_file: Option<PathBuf>,
    /// (`acgs run`) Validate, inspect and price only: no network, no key, no spending.
    #[arg(long)]
    pub dry_run: bool,
    /// (`acgs run`) On Ctrl-C, leave submitted jobs running instead of cancelling them (finish
    /// the run with `acgs resume`).
    #[arg(long)]
    pub detach: bool,
}

/// `acgs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace files that exist.
    #[arg(long)]
    pub force: bool,
}

/// `acgs resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to finish (`YYYYMMDDTHHMMSSZ-xxxxxx`).
    pub run_id: String,
    /// Send a request whose outcome is unknown again (its first reservation is written off).
    #[arg(long)]
    pub resubmit: bool,
    /// On Ctrl-C, leave the job running instead of cancelling it.
    #[arg(long)]
    pub detach: bool,
}

/// `acgs runs`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// One run in full instead of the list.
    #[command(subcommand)]
    pub action: Option<RunsAction>,
    /// Only runs with a step of this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only runs that ended this way.
    #[arg(long, value_enum)]
    pub status: Option<RunStatusArg>,
    /// Only runs made on or after this day (YYYY-MM-DD, your time zone).
    #[arg(long)]
    pub since: Option<jiff::civil::Date>,
    /// At most this many runs (0: all).
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
}

/// How a run ended, as `--status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunStatusArg {
    /// Every step done.
    Done,
    /// A step failed.
    Failed,
    /// A step was cancelled.
    Cancelled,
    /// Something is left for `acgs resume`.
    Unfinished,
}

/// `acgs runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// One run: each step with its model, status, cost (the ledger's word) and files.
    Show {
        /// The run (`YYYYMMDDTHHMMSSZ-xxxxxx`).
        run_id: String,
    },
}

/// `acgs models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Only models for this task (text_to_image, image_to_video, …).
    #[arg(long)]
    pub task: Option<String>,
    /// Only models of this provider (fal, gemini, elevenlabs).
    #[arg(long)]
    pub provider: Option<String>,
    /// Read fal's current prices from its pricing API into your user config.
    #[arg(long)]
    pub refresh_prices: bool,
    /// One model instead of the list.
    #[command(subcommand)]
    pub action: Option<ModelsAction>,
}

/// `acgs models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// One model: endpoint, parameters with their kinds, types, ranges and defaults, its price
    /// with source and date, and what it outputs.
    Show {
        /// The model key (`flux_dev` or `fal:flux_dev`).
        model: String,
    },
    /// Search fal's model list (name, description, category); nothing is added.
    Search {
        /// Words to look for, e.g. `video to video`.
        text: String,
        /// The most results to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=200))]
        limit: u16,
    },
    /// Add a fal endpoint to your catalogue (your user configuration), mapped from its own
    /// schema and priced by fal's pricing API; a schema acgs cannot map safely is refused.
    Add {
        /// `fal:ENDPOINT_ID`, e.g. `fal:fal-ai/ltx-video`.
        endpoint: String,
        /// The catalogue key (default: made from the endpoint id).
        #[arg(long = "as", value_name = "KEY")]
        key: Option<String>,
        /// Say what a field is when the rules cannot: `NAME=text|plain|priced|safety|omit`.
        #[arg(long = "mark", value_name = "NAME=KIND")]
        marks: Vec<String>,
    },
}

/// `acgs keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// What to do with keys.
    #[command(subcommand)]
    pub action: Option<KeysAction>,
}

/// `acgs keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Source, shadowed sources, fingerprint and age of each key (the default).
    Status,
    /// Ask each provider whether it accepts its key: one cheap authenticated call each, nothing
    /// spent, the key never shown (exit 5 when one is refused).
    Check {
        /// Only this provider (fal, gemini, elevenlabs).
        provider: Option<String>,
    },
    /// Store a key in the credentials file (0600) for the selected profile; the value is read
    /// from a hidden prompt or from stdin, never from the command line.
    Set {
        /// The variable: FAL_KEY, FAL_KEY_ID, FAL_KEY_SECRET, GEMINI_API_KEY, GOOGLE_API_KEY or
        /// ELEVENLABS_API_KEY.
        name: String,
    },
    /// Remove a key from the credentials file for the selected profile.
    Delete {
        /// The variable.
        name: String,
    },
}

fn parse_param(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_owned())?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("parameter names are letters, digits and _".into());
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_model_an_example_names_is_in_the_catalogue() {
        let mut catalog = acgs_providers_fal::catalog().expect("fal");
        catalog.extend(acgs_providers_gemini::catalog().expect("gemini"));
        catalog.extend(acgs_providers_elevenlabs::catalog().expect("elevenlabs"));
        for example in crate::examples::ALL {
            // Commands only, not the comments after them.
            let commands: String = example
                .lines()
                .map(|l| l.split('#').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ");
            let words: Vec<&str> = commands.split_whitespace().collect();
            for pair in words.windows(2) {
                let named = match pair {
                    ["--model", key] => Some(*key),
                    ["show", key] if commands.contains("models show") => Some(*key),
                    _ => None,
                };
                if let Some(key) = named {
                    assert!(catalog.resolve(key).is_ok(), "`{key}` in {example}");
                }
            }
        }
    }

    #[test]
    fn every_example_parses_as_an_acgs_command_line() {
        use clap::Parser as _;
        for example in crate::examples::ALL {
            for line in example.lines().skip(1) {
                // The first command of the line, without comments, pipes or redirections.
                let command = line
                    .split(['#', '|', '>', '&'])
                    .find(|c| c.contains("acgs "));
                let Some(command) = command else { continue };
                let words = shell_words(command.trim());
                let parsed = super::Cli::try_parse_from(&words);
                assert!(parsed.is_ok(), "{line}: {:?}", parsed.err());
            }
        }
    }

    /// `text` split on spaces, with double-quoted stretches kept whole.
    fn shell_words(text: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        words
    }
}
