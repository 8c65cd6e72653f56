//! The families beyond text, images and plain video, each end to end against the fakes with its
//! `--dry-run` price: video edits, motion transfer, first and last frames, references, sound
//! for a video (fal); sound effects, music and dialogue (ElevenLabs' own API); and a pipeline
//! that chains two of them.

use std::time::Duration;

use acgs_e2e::Sandbox;
use acgs_testkit::canary::ELEVENLABS_KEY;
use acgs_testkit::elevenlabs::{FakeElevenLabs, RACHEL};
use acgs_testkit::media::real;
use acgs_testkit::studio::{FakeStudio, FalResult};
use serde_json::Value;

use super::ok;
use super::studio::sandbox_for;

const EDIT: &str = "fal-ai/kling-video/o3/pro/video-to-video/edit";
const MOTION: &str = "fal-ai/wan-motion";
const FRAMES: &str = "fal-ai/veo3.1/fast/first-last-frame-to-video";
const REFERENCE: &str = "fal-ai/veo3.1/reference-to-video";
const SOUND: &str = "fal-ai/mmaudio-v2";

async fn studio() -> FakeStudio {
    let video = |e| (e, FalResult::Video);
    FakeStudio::films(
        &[
            video(EDIT),
            video(MOTION),
            video(FRAMES),
            video(REFERENCE),
            video(SOUND),
        ],
        Duration::from_millis(50),
    )
    .await
}

fn inputs(sb: &Sandbox) {
    fs_err::write(sb.work().join("clip.mp4"), real::clip(2, 320, 240, false)).expect("clip");
    for name in ["a.png", "b.png"] {
        fs_err::write(sb.work().join(name), real::png(320, 240)).expect("png");
    }
}

/// `args` priced by `--dry-run` at `price` on `model`, then run: the body fal received.
async fn priced_then_run(
    sb: &Sandbox,
    studio: &FakeStudio,
    args: &[&str],
    model: &str,
    price: &str,
    endpoint: &str,
) -> Value {
    let plan = ok(&sb.run(&[&["--json"], args, &["--dry-run"]].concat()).await);
    assert_eq!(
        (plan["model"].as_str(), plan["estimate"]["amount"].as_str()),
        (Some(model), Some(price)),
        "{args:?}"
    );
    let run = ok(&sb.run(&[&["--json"], args, &["--yes"]].concat()).await);
    assert_eq!(run["outputs"].as_array().map(Vec::len), Some(1), "{run}");
    studio
        .bodies(&format!("fal:{endpoint}"))
        .pop()
        .expect("a submit")
}

fn is_media(body: &Value, field: &str) -> bool {
    body[field]
        .as_str()
        .is_some_and(|u| u.starts_with("data:") || u.starts_with("http"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_fal_family_runs_from_the_video_and_sound_commands() {
    let studio = studio().await;
    let sb = sandbox_for(&studio);
    inputs(&sb);
    // A 2 s input edited at $0.336 per second of output (as long as the input), verified.
    let edit = priced_then_run(
        &sb,
        &studio,
        &["video", "make it snow", "--video", "clip.mp4"],
        "kling_o3_pro_edit",
        "0.672",
        EDIT,
    )
    .await;
    assert!(
        is_media(&edit, "video_url") && edit["prompt"] == "make it snow",
        "{edit}"
    );
    let motion = priced_then_run(
        &sb,
        &studio,
        &[
            "video",
            "she dances",
            "--video",
            "clip.mp4",
            "--image",
            "a.png",
        ],
        "wan_motion",
        "0.12",
        MOTION,
    )
    .await;
    assert!(is_media(&motion, "video_url") && is_media(&motion, "image_url"));
    // 8 s with audio at $0.15 per second.
    let frames = priced_then_run(
        &sb,
        &studio,
        &[
            "video",
            "dawn to dusk",
            "--image",
            "a.png",
            "--end-image",
            "b.png",
        ],
        "veo_3_1_fast_flf",
        "1.20",
        FRAMES,
    )
    .await;
    assert!(is_media(&frames, "first_frame_url") && is_media(&frames, "last_frame_url"));
    let reference = priced_then_run(
        &sb,
        &studio,
        &["video", "two friends", "--ref", "a.png", "--ref", "b.png"],
        "veo_3_1_reference",
        "3.20",
        REFERENCE,
    )
    .await;
    assert_eq!(reference["image_urls"].as_array().map(Vec::len), Some(2));
    let sound = priced_then_run(
        &sb,
        &studio,
        &[
            "sound",
            "rain on a roof",
            "--video",
            "clip.mp4",
            "--duration",
            "10",
        ],
        "mmaudio_v2",
        "0.01",
        SOUND,
    )
    .await;
    assert_eq!(
        (sound["duration"].as_f64(), sound["prompt"].as_str()),
        (Some(10.0), Some("rain on a roof"))
    );
    let refused = sb
        .run(&["video", "x", "--end-image", "b.png", "--dry-run"])
        .await;
    assert_eq!(refused.code, Some(2), "an end frame needs a first one");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_moves_between_two_frames_then_gives_the_film_its_sound() {
    let studio = studio().await;
    let sb = sandbox_for(&studio);
    inputs(&sb);
    sb.work_file(
        "frames.yaml",
        "version: 1\ninputs:\n  first: { type: image }\n  last: { type: image }\nsteps:\n  - id: move\n    model: veo_3_1_fast_flf\n    image: \"{{ inputs.first }}\"\n    end_image: \"{{ inputs.last }}\"\n    prompt: dawn to dusk\n    params: { duration: 4s, generate_audio: false }\n  - id: sound\n    model: mmaudio_v2\n    video: \"{{ steps.move.video }}\"\n    prompt: birds, then crickets\n    params: { duration: 4 }\n",
    );
    let run = [
        "run",
        "frames.yaml",
        "--input",
        "first=a.png",
        "--input",
        "last=b.png",
    ];
    let estimate = ok(&sb
        .run(&[
            "--json",
            "estimate",
            "frames.yaml",
            "--input",
            "first=a.png",
            "--input",
            "last=b.png",
        ])
        .await);
    assert_eq!(
        estimate["total"], "0.404",
        "4 s × $0.10 + 4 s × $0.001: {estimate}"
    );
    let done = ok(&sb.run(&[&["--json"], &run[..], &["--yes"]].concat()).await);
    assert_eq!(done["actual"], "0.404", "{done}");
    let body = studio
        .bodies(&format!("fal:{SOUND}"))
        .pop()
        .expect("the sound step ran");
    assert!(
        is_media(&body, "video_url"),
        "the first step's film went to the second"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sound_effects_music_and_dialogue_go_to_elevenlabs_own_endpoints() {
    let fake = FakeElevenLabs::builder().start().await;
    let mut sb = Sandbox::new();
    sb.set_env("ELEVENLABS_API_KEY", ELEVENLABS_KEY)
        .set_env("ACGS_PROVIDERS__ELEVENLABS__BASE_URL", &fake.uri());
    let effect = ok(&sb
        .run(&[
            "--json",
            "sound",
            "a door creaks open",
            "--duration",
            "4",
            "--dry-run",
        ])
        .await);
    assert_eq!(
        effect["estimate"]["amount"], "0.24",
        "$0.12 per effect, unverified ×2"
    );
    ok(&sb
        .run(&[
            "--json",
            "sound",
            "a door creaks open",
            "--duration",
            "4",
            "--yes",
        ])
        .await);
    let music = ok(&sb
        .run(&[
            "--json",
            "music",
            "calm lo-fi",
            "--duration",
            "60",
            "--instrumental",
            "--dry-run",
        ])
        .await);
    assert_eq!(
        music["estimate"]["amount"], "0.60",
        "60 s × $0.005, unverified ×2"
    );
    let song = ok(&sb
        .run(&[
            "--json",
            "music",
            "calm lo-fi",
            "--duration",
            "60",
            "--instrumental",
            "--yes",
        ])
        .await);
    assert_eq!(song["actual"], "0.30");
    let script = "Rachel: Where were you?\nAdam: Out.\n  Walking the dog.";
    let planned = ok(&sb
        .run(&["--json", "speech", "--dialogue", script, "--dry-run"])
        .await);
    assert_eq!(planned["model"], "elevenlabs_dialogue");
    assert!(
        planned["estimate"]["margin"] == "2.000"
            && planned["estimate"]["amount"]
                .as_str()
                .is_some_and(|a| a != "0"),
        "per 1,000 characters of the script, with the unverified margin: {planned}"
    );
    let dialogue = ok(&sb
        .run(&["--json", "speech", "--dialogue", script, "--yes"])
        .await);
    assert_eq!(dialogue["model"], "elevenlabs_dialogue");
    let bodies: Vec<(String, Value)> = fake
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| {
            (
                r.url.path().to_owned(),
                serde_json::from_slice(&r.body).unwrap_or_default(),
            )
        })
        .collect();
    let body = |p: &str| {
        bodies
            .iter()
            .find(|(path, _)| path == p)
            .map(|(_, b)| b.clone())
            .expect(p)
    };
    assert_eq!(body("/v1/sound-generation")["duration_seconds"], 4.0);
    let song = body("/v1/music");
    assert_eq!(
        (
            song["music_length_ms"].as_u64(),
            song["force_instrumental"].as_bool()
        ),
        (Some(60_000), Some(true))
    );
    let turns = body("/v1/text-to-dialogue")["inputs"].clone();
    assert_eq!(turns[0]["voice_id"], RACHEL);
    assert_eq!(
        turns[1]["text"], "Out. Walking the dog.",
        "a line without a speaker continues the turn"
    );
    let unknown = sb
        .run(&["speech", "--dialogue", "Nobody: hi", "--yes"])
        .await;
    assert_eq!(
        unknown.code,
        Some(2),
        "an unknown voice is refused before anything is sent: {}",
        unknown.stderr
    );
    assert!(
        fake.unexpected().await.is_empty(),
        "{:?}",
        fake.unexpected().await
    );
}
