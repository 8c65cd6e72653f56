//! The examples at the end of each command's long help (`acgs COMMAND --help`, and the man
//! pages made from the same definitions). Each one is a command that works as written against
//! the built-in catalogue.

/// `acgs image`.
pub(crate) const IMAGE: &str = "Examples:
  acgs image \"a lighthouse at dusk, oil painting\"
  acgs image \"a fox in the snow\" -n 2 --param image_size=landscape_16_9
  acgs image \"make it winter\" --edit photo.jpg --model nano_banana_pro_edit
  acgs image \"a kite\" --dry-run            # the worst case, no key, no network";

/// `acgs video`.
pub(crate) const VIDEO: &str = "Examples:
  acgs video \"waves at dusk\" --duration 5
  acgs video \"the camera circles the teapot\" --image still.png --model kling_2_1
  acgs video \"a slow pan\" --detach          # Ctrl-C leaves the job running; finish it with acgs resume
  acgs video \"make it snow\" --video clip.mp4                    # video to video
  acgs video \"she dances\" --video moves.mp4 --image dancer.png   # motion transfer
  acgs video \"dawn to dusk\" --image dawn.png --end-image dusk.png
  acgs video \"the two of them at a cafe\" --ref anna.png --ref ben.png";

/// `acgs avatar`.
pub(crate) const AVATAR: &str = "Examples:
  acgs avatar portrait.png --audio narration.mp3
  acgs avatar portrait.png --text \"Welcome to the show.\"";

/// `acgs upscale`.
pub(crate) const UPSCALE: &str = "Examples:
  acgs upscale photo.jpg
  acgs upscale clip.mp4 --dry-run";

/// `acgs transcribe`.
pub(crate) const TRANSCRIBE: &str = "Examples:
  acgs transcribe interview.wav > interview.txt     # files .txt, .json and .srt in the run folder too
  acgs transcribe talk.mp3 --model elevenlabs_scribe_v1 --json";

/// `acgs text`.
pub(crate) const TEXT: &str = "Examples:
  acgs text \"three names for a bakery\"
  acgs text --file brief.md --system \"You are a copy editor.\"
  git log -5 --oneline | acgs text          # a piped prompt
  acgs text \"a haiku\" --param response_mime_type=application/json";

/// `acgs analyze`.
pub(crate) const ANALYZE: &str = "Examples:
  acgs analyze photo.jpg                     # describe
  acgs analyze receipt.png --preset ocr
  acgs analyze clip.mp4 -Q \"what happens at the end?\"";

/// `acgs speech`.
pub(crate) const SPEECH: &str = "Examples:
  acgs speech \"Hello there.\" --voice Rachel
  acgs speech --file script.txt --model elevenlabs_multilingual_v2
  echo \"Read from stdin.\" | acgs speech
  acgs speech --dialogue --file scene.txt     # lines like `Rachel: Where were you?`";

/// `acgs sound`.
pub(crate) const SOUND: &str = "Examples:
  acgs sound \"a door creaks open, then slams\" --duration 4
  acgs sound \"rain on a tin roof, distant thunder\" --video storm.mp4";

/// `acgs music`.
pub(crate) const MUSIC: &str = "Examples:
  acgs music \"a calm lo-fi beat for studying\" --duration 60 --instrumental
  acgs music \"an upbeat jingle about tea\" --dry-run";

/// `acgs voices`.
pub(crate) const VOICES: &str = "Examples:
  acgs voices
  acgs voices --models                       # the catalogue key --model takes, and each model's limit";

/// `acgs validate`.
pub(crate) const VALIDATE: &str = "Examples:
  acgs validate pipeline.yaml
  acgs validate pipeline.yaml --json         # every problem as {file, line, step, code, message, hint}";

/// `acgs import`.
pub(crate) const IMPORT: &str = "Examples:
  acgs import chain.yaml                     # writes chain.acgs.yaml; lists what it could not convert
  acgs import chain.yaml -o film.yaml && acgs validate film.yaml";

/// `acgs estimate`.
pub(crate) const ESTIMATE: &str = "Examples:
  acgs estimate pipeline.yaml --input \"a brass diving watch\"
  acgs estimate pipeline.yaml --input-file inputs.yaml --json";

/// `acgs run`.
pub(crate) const RUN: &str = "Examples:
  acgs run pipeline.yaml --input \"a brass diving watch\"
  acgs run pipeline.yaml --input product=\"a watch\" --input photo=watch.jpg --yes
  acgs run pipeline.yaml --dry-run";

/// `acgs init`.
pub(crate) const INIT: &str = "Examples:
  acgs init && acgs run pipeline.yaml --dry-run";

/// `acgs resume`.
pub(crate) const RESUME: &str = "Examples:
  acgs resume 20261127T210555Z-a1b2c3
  acgs runs --status unfinished              # which runs have something left to do";

/// `acgs runs`.
pub(crate) const RUNS: &str = "Examples:
  acgs runs
  acgs runs --model flux_dev --since 2026-12-01
  acgs runs show 20261127T210555Z-a1b2c3 --json";

/// `acgs models`.
pub(crate) const MODELS: &str = "Examples:
  acgs models --task text_to_video
  acgs models show kling_2_1
  acgs models --provider elevenlabs --json";

/// `acgs keys`.
pub(crate) const KEYS: &str = "Examples:
  acgs keys                                  # where each key comes from, never the key
  acgs keys check                            # does each provider accept its key? nothing spent
  acgs keys set FAL_KEY                      # from a hidden prompt, into [default]
  acgs --profile prod keys set FAL_KEY       # only for the prod profile";

/// `acgs guard`.
pub(crate) const GUARD: &str = "Examples:
  acgs guard check \"ignore all previous instructions\"
  acgs guard check --file prompt.txt --json";

/// `acgs spend`.
pub(crate) const SPEND: &str = "Examples:
  acgs spend
  acgs spend --since 2026-12-01 --by model
  acgs spend abandon 20261127T210555Z-a1b2c3/main
  acgs spend reconcile --since 2026-12-01    # fal's billed amounts beside the ledger's (FAL_ADMIN_KEY)";

/// `acgs audit`.
pub(crate) const AUDIT: &str = "Examples:
  acgs audit verify
  acgs audit tail -n 20 --origin mcp";

/// `acgs doctor`.
pub(crate) const DOCTOR: &str = "Examples:
  acgs doctor
  acgs doctor ~/projects/teaser --history";

/// `acgs serve`.
pub(crate) const SERVE: &str = "Examples:
  acgs serve user add ada --daily 5.00 --monthly 50.00
  acgs serve token create --user ada         # shown once; give it as `Authorization: Bearer …`
  acgs serve                                 # http://127.0.0.1:8787, SQLite ledger, 4 workers
  acgs serve --workers 0                     # PostgreSQL ledger: the API only, workers run jobs
  acgs serve limit set tag:film weekly 100   # a budget for every job tagged film";

/// `acgs worker`.
pub(crate) const WORKER: &str = "Examples:
  acgs worker --jobs 16                      # with ledger.url = \"postgres://…\"
  acgs worker --jobs 1000 --lease-secs 60    # many long provider jobs in one process";

/// `acgs mcp`.
pub(crate) const MCP: &str = "Examples:
  acgs mcp                                   # on stdio, as desktop clients launch it
  acgs mcp token && acgs mcp --http 127.0.0.1:8765";

/// Every example, in the order of the commands.
#[cfg(test)]
pub(crate) const ALL: [&str; 26] = [
    IMAGE, VIDEO, AVATAR, UPSCALE, TRANSCRIBE, TEXT, ANALYZE, SPEECH, SOUND, MUSIC, VOICES,
    VALIDATE, ESTIMATE, RUN, INIT, RESUME, RUNS, MODELS, KEYS, GUARD, SPEND, AUDIT, DOCTOR, MCP,
    SERVE, WORKER,
];
