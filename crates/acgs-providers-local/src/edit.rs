//! The ffmpeg steps: each reads staged inputs by the names acgs gave them, writes one output in
//! the same private folder, and returns its name. Every input is probed first, so a file that
//! is not media — or claims a duration beyond the limit — is refused before ffmpeg decodes it.

use std::ffi::OsString;
use std::path::Path;

use acgs_core::provider::{FailureClass, ProviderError};

use crate::ffmpeg::{Probe, Tools, VideoStream, failure, file_arg, seconds};

/// Where a step works: the folder, its tools, and a fresh number for the names it writes.
pub(crate) struct Bench<'a> {
    pub(crate) tools: &'a Tools,
    pub(crate) dir: &'a Path,
    pub(crate) job: u64,
}

fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(items: I) -> Vec<OsString> {
    items.into_iter().map(Into::into).collect()
}

/// `-protocol_whitelist file -i file:NAME`.
fn input(name: &str) -> Vec<OsString> {
    vec![
        "-protocol_whitelist".into(),
        "file".into(),
        "-i".into(),
        file_arg(name),
    ]
}

fn no_video(name: &str) -> ProviderError {
    failure(
        FailureClass::Rejected,
        "local.unreadable_media",
        format!("the input {name} has no video stream"),
    )
}

/// Sizes made even (H.264 in 4:2:0 takes no odd width or height).
const EVEN: &str = "scale=trunc(iw/2)*2:trunc(ih/2)*2";

/// Video encoding for steps that re-encode: H.264 in yuv420p, AAC, ready to stream.
const ENCODE: [&str; 12] = [
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "20",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-movflags",
    "+faststart",
];

impl Bench<'_> {
    fn out(&self, ext: &str) -> String {
        format!("out-{}.{ext}", self.job)
    }

    /// Remove what this step wrote but its output: the clip list, the subtitles (a transcript),
    /// and an output ffmpeg left when it failed.
    pub(crate) fn clean(&self, keep: Option<&str>) {
        let job = self.job;
        let names = [
            format!("list-{job}.txt"),
            format!("subs-{job}.srt"),
            format!("subs-{job}.ass"),
            format!("out-{job}.mp4"),
            format!("out-{job}.png"),
        ];
        for name in names.iter().filter(|n| Some(n.as_str()) != keep) {
            let _ = fs_err::remove_file(self.dir.join(name));
        }
    }

    async fn probe_video(&self, name: &str) -> Result<Probe, ProviderError> {
        let probe = self.tools.probe(self.dir, name).await?;
        if probe.video.is_none() {
            return Err(no_video(name));
        }
        Ok(probe)
    }

    /// `concat`: the clips in order; stream copy when every clip has the same codecs and size,
    /// else re-encoded to the first clip's size and frame rate (silence where a clip has no
    /// sound while another has).
    pub(crate) async fn concat(&self, clips: &[String]) -> Result<String, ProviderError> {
        if clips.is_empty() {
            return Err(failure(
                FailureClass::Rejected,
                "local.no_input",
                "concat needs at least one video",
            ));
        }
        let mut probes = Vec::with_capacity(clips.len());
        for clip in clips {
            probes.push(self.probe_video(clip).await?);
        }
        let first = &probes[0];
        // Stream copy only when every stream agrees in full (an mp4 keeps the first clip's
        // codec parameters for all of them); otherwise one re-encode.
        let same = probes
            .iter()
            .all(|p| p.video == first.video && p.audio == first.audio);
        let out = self.out("mp4");
        let mut argv = match (&first.video, same) {
            (_, true) => self.copy_concat(clips)?,
            (Some(video), false) => reencode_concat(clips, &probes, video),
            (None, false) => return Err(no_video(&clips[0])),
        };
        argv.push(file_arg(&out));
        self.tools.ffmpeg(self.dir, argv).await?;
        Ok(out)
    }

    /// The concat demuxer over a list of the staged names (plain names only: `-safe 1`).
    fn copy_concat(&self, clips: &[String]) -> Result<Vec<OsString>, ProviderError> {
        let list = format!("list-{}.txt", self.job);
        let body: String = clips.iter().map(|c| format!("file '{c}'\n")).collect();
        fs_err::write(self.dir.join(&list), body).map_err(|e| {
            failure(
                FailureClass::Other,
                "local.io",
                format!("the clip list could not be written: {}", e.kind()),
            )
        })?;
        let mut argv = args(["-f", "concat", "-safe", "1"]);
        argv.extend(input(&list));
        argv.extend(args(["-map", "0", "-c", "copy", "-movflags", "+faststart"]));
        Ok(argv)
    }

    /// `mux_audio`: `audio` under `video`, replacing or mixed with its sound; `pad` keeps the
    /// video's length (a short track padded with silence), `cut` ends with the shorter.
    pub(crate) async fn mux_audio(
        &self,
        video: &str,
        audio: &str,
        mix: bool,
        pad: bool,
    ) -> Result<String, ProviderError> {
        let picture = self.probe_video(video).await?;
        let sound = self.tools.probe(self.dir, audio).await?;
        if sound.audio.is_none() {
            return Err(failure(
                FailureClass::Rejected,
                "local.unreadable_media",
                format!("the input {audio} has no audio stream"),
            ));
        }
        let length = if pad {
            picture.duration_ms
        } else {
            picture.duration_ms.min(sound.duration_ms)
        };
        let out = self.out("mp4");
        let mut argv = input(video);
        argv.extend(input(audio));
        let graph = if mix && picture.audio.is_some() {
            "[0:a]apad[own];[1:a]apad[track];[own][track]amix=inputs=2:duration=first:dropout_transition=0:normalize=0[mixed]"
        } else {
            "[1:a]apad[mixed]"
        };
        argv.extend(args([
            "-filter_complex",
            graph,
            "-map",
            "0:v:0",
            "-map",
            "[mixed]",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-t",
        ]));
        argv.push(seconds(length).into());
        argv.extend(args(["-movflags", "+faststart"]));
        argv.push(file_arg(&out));
        self.tools.ffmpeg(self.dir, argv).await?;
        Ok(out)
    }

    /// `subtitles`: `srt` as a soft subtitle track, or drawn into the picture when `burn`.
    pub(crate) async fn subtitles(
        &self,
        video: &str,
        srt: &str,
        burn: bool,
    ) -> Result<String, ProviderError> {
        self.probe_video(video).await?;
        let subs = format!("subs-{}.srt", self.job);
        fs_err::write(self.dir.join(&subs), srt).map_err(|e| {
            failure(
                FailureClass::Other,
                "local.io",
                format!("the subtitles could not be written: {}", e.kind()),
            )
        })?;
        let out = self.out("mp4");
        let mut argv = input(video);
        if burn {
            // The subtitles are read once, as SubRip only (`-f srt`, the file protocol only),
            // and written as ASS; the `ass` filter reads that file as ASS and nothing else, so
            // no text can make a filter guess another format (a playlist, a concat list).
            let ass = format!("subs-{}.ass", self.job);
            let mut convert = args(["-f", "srt"]);
            convert.extend(input(&subs));
            convert.push(file_arg(&ass));
            self.tools.ffmpeg(self.dir, convert).await?;
            argv.extend(args(["-vf"]));
            argv.push(format!("ass={ass},{EVEN}").into());
            argv.extend(args(ENCODE));
            argv.extend(args(["-c:a", "copy"]));
        } else {
            argv.extend(args(["-f", "srt"]));
            argv.extend(input(&subs));
            argv.extend(args([
                "-map",
                "0",
                "-map",
                "1:0",
                "-c",
                "copy",
                "-c:s",
                "mov_text",
                "-movflags",
                "+faststart",
            ]));
        }
        argv.push(file_arg(&out));
        self.tools.ffmpeg(self.dir, argv).await?;
        Ok(out)
    }

    /// `trim`: from `start_ms` to `end_ms` (the end when `None`), re-encoded so the cut is exact.
    pub(crate) async fn trim(
        &self,
        video: &str,
        start_ms: u64,
        end_ms: Option<u64>,
    ) -> Result<String, ProviderError> {
        let probe = self.probe_video(video).await?;
        let end = end_ms.unwrap_or(probe.duration_ms).min(probe.duration_ms);
        if start_ms >= end {
            return Err(failure(
                FailureClass::Rejected,
                "local.bad_range",
                format!(
                    "trim needs start < end within the video's {} s (start {}, end {})",
                    seconds(probe.duration_ms),
                    seconds(start_ms),
                    seconds(end)
                ),
            ));
        }
        let out = self.out("mp4");
        let mut argv = args(["-ss"]);
        argv.push(seconds(start_ms).into());
        argv.extend(input(video));
        argv.push("-t".into());
        argv.push(seconds(end - start_ms).into());
        argv.extend(args(["-vf", EVEN]));
        argv.extend(args(ENCODE));
        argv.push(file_arg(&out));
        self.tools.ffmpeg(self.dir, argv).await?;
        Ok(out)
    }

    /// `frame`: the frame at `at_ms`, or the last one, as a PNG.
    pub(crate) async fn frame(
        &self,
        video: &str,
        at_ms: Option<u64>,
    ) -> Result<String, ProviderError> {
        let probe = self.probe_video(video).await?;
        let out = self.out("png");
        let mut argv = match at_ms {
            Some(at) if at >= probe.duration_ms => {
                return Err(failure(
                    FailureClass::Rejected,
                    "local.bad_range",
                    format!(
                        "the video lasts {} s; there is no frame at {} s",
                        seconds(probe.duration_ms),
                        seconds(at)
                    ),
                ));
            }
            Some(at) => args(["-ss".to_owned(), seconds(at)]),
            // The last second, every frame written over the one before: the last remains.
            None => args(["-sseof", "-1"]),
        };
        argv.extend(input(video));
        argv.extend(args([
            "-map", "0:v:0", "-update", "1", "-c:v", "png", "-f", "image2",
        ]));
        if at_ms.is_some() {
            argv.extend(args(["-frames:v", "1"]));
        }
        argv.push(file_arg(&out));
        self.tools.ffmpeg(self.dir, argv).await?;
        // Past the video stream's end (a container whose sound runs longer) ffmpeg writes
        // nothing and still succeeds.
        if !self.dir.join(&out).exists() {
            return Err(failure(
                FailureClass::Rejected,
                "local.bad_range",
                "the video has no frame there (its picture ends before its sound)",
            ));
        }
        Ok(out)
    }
}

/// The concat filter over every clip, scaled and padded to the first clip's size and rate.
fn reencode_concat(clips: &[String], probes: &[Probe], first: &VideoStream) -> Vec<OsString> {
    let sound = probes.iter().any(|p| p.audio.is_some());
    let mut argv = Vec::new();
    for clip in clips {
        argv.extend(input(clip));
    }
    // The first clip's size, made even.
    let (w, h) = ((first.width / 2 * 2).max(2), (first.height / 2 * 2).max(2));
    let mut graph = String::new();
    let mut joined = String::new();
    for (i, probe) in probes.iter().enumerate() {
        graph.push_str(&format!(
            "[{i}:v:0]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={},format=yuv420p[v{i}];",
            first.rate
        ));
        joined.push_str(&format!("[v{i}]"));
        if sound {
            if probe.audio.is_some() {
                graph.push_str(&format!(
                    "[{i}:a:0]aresample=48000,aformat=channel_layouts=stereo[a{i}];"
                ));
            } else {
                graph.push_str(&format!(
                    "anullsrc=r=48000:cl=stereo,atrim=duration={}[a{i}];",
                    seconds(probe.duration_ms)
                ));
            }
            joined.push_str(&format!("[a{i}]"));
        }
    }
    let n = probes.len();
    graph.push_str(&format!(
        "{joined}concat=n={n}:v=1:a={}[v]",
        u8::from(sound)
    ));
    if sound {
        graph.push_str("[a]");
    }
    argv.extend(args([
        "-filter_complex".to_owned(),
        graph,
        "-map".into(),
        "[v]".into(),
    ]));
    if sound {
        argv.extend(args(["-map", "[a]"]));
    }
    argv.extend(args(ENCODE));
    argv
}
