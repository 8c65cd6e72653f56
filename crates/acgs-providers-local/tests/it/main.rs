//! The local steps against the system's ffmpeg, with clips ffmpeg makes for the test.

use std::path::Path;
use std::sync::Arc;

use acgs_core::Provider;
use acgs_core::catalog::Params;
use acgs_core::config::ToolsConfig;
use acgs_core::ledger::ReservationId;
use acgs_core::provider::ProviderError;
use acgs_core::request::{Artifact, Authorized, LocalInput, Request, Submitted, Verdict};
use acgs_core::task::ContentType;
use acgs_providers_local::LocalProvider;
use acgs_testkit::media::real;
use serde_json::{Value, json};

fn provider() -> LocalProvider {
    LocalProvider::new(&ToolsConfig::default(), std::env::var_os("PATH").as_deref())
        .expect("provider")
}

async fn stage(p: &LocalProvider, dir: &Path, name: &str, bytes: &[u8]) -> Value {
    let path = dir.join(name);
    fs_err::write(&path, bytes).expect("write");
    let file = fs_err::File::open(&path).expect("open").into_parts().0;
    let input = LocalInput {
        field: "x".into(),
        file_name: "x".into(),
        content_type: ContentType::sniff(bytes).unwrap_or(ContentType::Mp4),
        size: bytes.len() as u64,
        file: Arc::new(file),
    };
    Value::String(p.upload(input).await.expect("staged").url)
}

async fn run(p: &LocalProvider, model: &str, params: Value) -> Result<Vec<Vec<u8>>, ProviderError> {
    let catalog = acgs_providers_local::catalog().expect("catalog");
    let Value::Object(params) = params else {
        panic!("object")
    };
    let request = Request {
        run_id: "r".into(),
        step: "s".into(),
        model: catalog.resolve(model).expect("model"),
        params: Params::from(params),
        system: None,
        text_events: None,
    };
    let authorized = Authorized::by_engine(request, Verdict::default(), ReservationId("r1".into()));
    match p.submit(&authorized).await? {
        Submitted::Done(out) => Ok(out
            .artifacts
            .into_iter()
            .map(|a| match a {
                Artifact::Bytes { data, .. } => data,
                other => panic!("bytes expected, got {other:?}"),
            })
            .collect()),
        Submitted::Pending(_) => panic!("local steps finish at once"),
    }
}

fn probe(dir: &Path, bytes: &[u8]) -> (u64, Vec<String>) {
    let path = dir.join(format!("probe-{}.mp4", bytes.len()));
    fs_err::write(&path, bytes).expect("write");
    real::probe(&path)
}

#[tokio::test(flavor = "multi_thread")]
async fn concat_copies_like_clips_and_reencodes_unlike_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = provider();
    let (a, b) = (real::clip(1, 160, 120, true), real::clip(2, 160, 120, true));
    let list = json!([
        stage(&p, dir.path(), "a.mp4", &a).await,
        stage(&p, dir.path(), "b.mp4", &b).await
    ]);
    let out = run(&p, "concat", json!({ "video_urls": list }))
        .await
        .expect("joined");
    let (ms, kinds) = probe(dir.path(), &out[0]);
    assert!((2900..=3100).contains(&ms), "1 s + 2 s, got {ms} ms");
    assert_eq!(kinds, ["video", "audio"]);
    // A different size and no sound: re-encoded to the first clip's size, silence added.
    let c = real::clip(1, 96, 96, false);
    let list = json!([
        stage(&p, dir.path(), "a2.mp4", &a).await,
        stage(&p, dir.path(), "c.mp4", &c).await
    ]);
    let out = run(&p, "concat", json!({ "video_urls": list }))
        .await
        .expect("joined");
    let (ms, kinds) = probe(dir.path(), &out[0]);
    assert!((1900..=2100).contains(&ms), "1 s + 1 s, got {ms} ms");
    assert_eq!(kinds, ["video", "audio"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn mux_subtitles_trim_and_frame_make_what_they_say() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = provider();
    let clip = real::clip(2, 160, 120, false);
    let video = stage(&p, dir.path(), "v.mp4", &clip).await;
    let audio = stage(&p, dir.path(), "n.mp3", &real::mp3(1)).await;
    let out = run(
        &p,
        "mux_audio",
        json!({ "video_url": video, "audio_url": audio, "fit": "pad" }),
    )
    .await
    .expect("muxed");
    let (ms, kinds) = probe(dir.path(), &out[0]);
    assert!(
        (1900..=2100).contains(&ms),
        "padded to the video's 2 s, got {ms}"
    );
    assert_eq!(kinds, ["video", "audio"]);
    let video = stage(&p, dir.path(), "v2.mp4", &clip).await;
    let srt = "1\n00:00:00,000 --> 00:00:01,000\nHello there\n\n";
    let out = run(&p, "subtitles", json!({ "video_url": video, "srt": srt }))
        .await
        .expect("subtitled");
    assert_eq!(probe(dir.path(), &out[0]).1, ["video", "subtitle"]);
    let video = stage(&p, dir.path(), "v3.mp4", &clip).await;
    let out = run(
        &p,
        "trim",
        json!({ "video_url": video, "start": 0.5, "end": 1.5 }),
    )
    .await
    .expect("trimmed");
    let (ms, _) = probe(dir.path(), &out[0]);
    assert!((900..=1100).contains(&ms), "1 s kept, got {ms}");
    let video = stage(&p, dir.path(), "v4.mp4", &clip).await;
    let out = run(&p, "frame", json!({ "video_url": video }))
        .await
        .expect("a frame");
    assert_eq!(ContentType::sniff(&out[0]), Some(ContentType::Png));
    let video = stage(&p, dir.path(), "v5.mp4", &clip).await;
    let err = run(&p, "frame", json!({ "video_url": video, "at": 9 }))
        .await
        .expect_err("past the end");
    assert_eq!(err.code, "local.bad_range");
}

#[tokio::test(flavor = "multi_thread")]
async fn split_grid_cuts_real_images() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = provider();
    let image = stage(&p, dir.path(), "g.png", &real::png(128, 96)).await;
    let tiles = run(
        &p,
        "split_grid",
        json!({ "image_url": image, "rows": 2, "cols": 2 }),
    )
    .await
    .expect("cut");
    assert_eq!(tiles.len(), 4);
    assert!(
        tiles
            .iter()
            .all(|t| ContentType::sniff(t) == Some(ContentType::Png))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = provider();
    // Text named .mp4 (staged under a video type, as a caller that skipped sniffing would).
    let text = stage(
        &p,
        dir.path(),
        "notes.mp4",
        b"hello, I am text named clip.mp4, truly",
    )
    .await;
    let err = run(&p, "trim", json!({ "video_url": text, "end": 1 }))
        .await
        .expect_err("not media");
    assert_eq!(err.code, "local.unreadable_media", "{err}");
    // A clip whose header claims ten hours.
    let mut long = real::clip(1, 160, 120, false);
    let at = long.windows(4).position(|w| w == b"mvhd").expect("mvhd") + 4;
    let scale = u32::from_be_bytes(long[at + 12..at + 16].try_into().expect("4 bytes"));
    long[at + 16..at + 20].copy_from_slice(&(scale * 36_000).to_be_bytes());
    let video = stage(&p, dir.path(), "long.mp4", &long).await;
    let err = run(&p, "trim", json!({ "video_url": video, "end": 1 }))
        .await
        .expect_err("too long");
    assert_eq!(err.code, "local.too_long", "{err}");
    // Names that are not staged inputs are never read, whatever they look like.
    for name in [
        "local:-i",
        "local:concat:in-1.mp4|in-2.mp4",
        "http://example.com/a.mp4",
        "local:../in-1.mp4",
    ] {
        let err = run(&p, "trim", json!({ "video_url": name }))
            .await
            .expect_err("refused");
        assert_eq!(err.code, "local.bad_input", "{name}");
    }
    // ffmpeg missing.
    let none = LocalProvider::new(&ToolsConfig::default(), Some(dir.path().as_os_str()))
        .expect("provider");
    let video = stage(&none, dir.path(), "v.mp4", &real::clip(1, 160, 120, false)).await;
    let err = run(&none, "trim", json!({ "video_url": video }))
        .await
        .expect_err("no ffmpeg");
    assert_eq!(err.code, "local.tool_missing");
    assert!(err.to_string().contains("not found on PATH"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn burned_subtitles_are_drawn_into_the_picture() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = provider();
    let clip = real::clip(1, 160, 120, false);
    let video = stage(&p, dir.path(), "v.mp4", &clip).await;
    let srt = "1\n00:00:00,000 --> 00:00:01,000\nHello there\n\n";
    let out = run(
        &p,
        "subtitles",
        json!({ "video_url": video, "srt": srt, "burn": true }),
    )
    .await
    .expect("burned");
    let (ms, kinds) = probe(dir.path(), &out[0]);
    assert_eq!(
        kinds,
        ["video"],
        "no subtitle track: they are in the picture"
    );
    assert!((900..=1100).contains(&ms), "{ms}");
    assert_ne!(out[0], clip, "the picture changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn mixing_keeps_the_clip_s_sound_and_cut_ends_with_the_shorter() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = provider();
    let clip = real::clip(2, 160, 120, true);
    let video = stage(&p, dir.path(), "v.mp4", &clip).await;
    let audio = stage(&p, dir.path(), "n.mp3", &real::mp3(1)).await;
    let params = json!({ "video_url": video, "audio_url": audio, "mode": "mix", "fit": "cut" });
    let out = run(&p, "mux_audio", params).await.expect("mixed");
    let (ms, kinds) = probe(dir.path(), &out[0]);
    assert_eq!(kinds, ["video", "audio"]);
    assert!((900..=1100).contains(&ms), "cut to the 1 s track, got {ms}");
    let silent = stage(&p, dir.path(), "s.mp4", &real::clip(1, 160, 120, false)).await;
    let err = run(
        &p,
        "mux_audio",
        json!({ "video_url": silent, "audio_url": silent }),
    )
    .await
    .expect_err("a video as the track");
    assert_eq!(err.code, "local.unreadable_media", "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_ffprobe_is_the_tool_s_failure_not_the_input_s() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let probe = dir.path().join("ffprobe");
    fs_err::write(&probe, "#!/bin/sh\nexit 127\n").expect("write");
    fs_err::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tools = ToolsConfig {
        ffprobe: probe,
        ..ToolsConfig::default()
    };
    let p = LocalProvider::new(&tools, std::env::var_os("PATH").as_deref()).expect("provider");
    let video = stage(&p, dir.path(), "v.mp4", &real::clip(1, 160, 120, false)).await;
    let err = run(&p, "trim", json!({ "video_url": video }))
        .await
        .expect_err("broken");
    assert_eq!(err.code, "local.tool_failed", "{err}");
}
