//! Running ffmpeg and ffprobe: an argument vector, no shell, no standard input, an empty
//! environment, a working folder of acgs's own, a time limit; and ffprobe's report read into the
//! few facts the steps need.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use acgs_core::config::ToolsConfig;
use acgs_core::provider::{Charge, FailureClass, ProviderError};
use acgs_core::tools::Tool;
use serde::Deserialize;

/// The most of ffmpeg's error output kept for `-v`.
const MAX_STDERR: usize = 4096;
/// The widest or tallest video frame read (8K; a decoded frame stays under 200 MB).
const MAX_SIDE: u32 = 8192;
/// The largest file ffmpeg may write (`-fs`): the engine's cap for a video output.
pub(crate) const MAX_OUTPUT_BYTES: u64 = 4096 * 1024 * 1024;

/// The located programs and their limits.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    ffmpeg: Result<PathBuf, String>,
    ffprobe: Result<PathBuf, String>,
    timeout: Duration,
    /// The longest input read, in milliseconds.
    pub(crate) max_input_ms: u64,
}

/// A failure of a local step: nothing was billed, so the reservation is released.
pub(crate) fn failure(
    class: FailureClass,
    code: &'static str,
    message: impl Into<String>,
) -> ProviderError {
    ProviderError::new(class, code, message, Charge::Release)
}

impl Tools {
    /// The programs `config` names, or the first on `path_var`.
    pub(crate) fn locate(config: &ToolsConfig, path_var: Option<&std::ffi::OsStr>) -> Self {
        Self {
            ffmpeg: Tool::Ffmpeg.locate(config, path_var),
            ffprobe: Tool::Ffprobe.locate(config, path_var),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            max_input_ms: config.max_input_seconds.saturating_mul(1000),
        }
    }

    /// Run ffmpeg in `dir` with `args` after the options every run gets.
    pub(crate) async fn ffmpeg(
        &self,
        dir: &Path,
        args: Vec<OsString>,
    ) -> Result<(), ProviderError> {
        let mut all: Vec<OsString> = ["-nostdin", "-hide_banner", "-loglevel", "error", "-n"]
            .into_iter()
            .map(OsString::from)
            .collect();
        all.extend(args);
        // The output (always last) may not grow past the cap.
        let output = all.pop();
        all.extend(["-fs".into(), MAX_OUTPUT_BYTES.to_string().into()]);
        all.extend(output);
        self.run(Tool::Ffmpeg, dir, all).await.map(drop)
    }

    /// What ffprobe reads of `name` (a file in `dir`); a file it cannot read is
    /// `local.unreadable_media`, one longer than the limit `local.too_long`.
    pub(crate) async fn probe(&self, dir: &Path, name: &str) -> Result<Probe, ProviderError> {
        let args = [
            "-v",
            "error",
            "-protocol_whitelist",
            "file",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ]
        .into_iter()
        .map(OsString::from)
        .chain([file_arg(name)])
        .collect();
        let unreadable = || {
            failure(
                FailureClass::Rejected,
                "local.unreadable_media",
                format!("ffprobe cannot read the input {name} as media"),
            )
        };
        // ffprobe answers 1 for a file it cannot read; any other failure (a missing library,
        // a signal) is the tool's, not the input's.
        let out = self.run(Tool::Ffprobe, dir, args).await.map_err(|e| {
            if e.code == "local.tool_failed" && e.message.ends_with("(exit status: 1)") {
                unreadable().with_detail(e.detail.unwrap_or_default())
            } else {
                e
            }
        })?;
        let report: Report = serde_json::from_slice(&out).map_err(|_| unreadable())?;
        let probe = Probe::from_report(&report).ok_or_else(unreadable)?;
        if probe.duration_ms > self.max_input_ms {
            return Err(failure(
                FailureClass::Rejected,
                "local.too_long",
                format!(
                    "the input {name} lasts {} s, more than the {} s a local step reads (tools.max_input_seconds)",
                    probe.duration_ms / 1000,
                    self.max_input_ms / 1000
                ),
            ));
        }
        Ok(probe)
    }

    async fn run(
        &self,
        tool: Tool,
        dir: &Path,
        args: Vec<OsString>,
    ) -> Result<Vec<u8>, ProviderError> {
        let program = match tool {
            Tool::Ffmpeg => &self.ffmpeg,
            Tool::Ffprobe => &self.ffprobe,
        };
        let program = program
            .as_ref()
            .map_err(|why| failure(FailureClass::Other, "local.tool_missing", why.clone()))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                failure(
                    FailureClass::Other,
                    "local.tool_missing",
                    format!("{} could not be started: {}", tool.name(), e.kind()),
                )
            })?;
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                failure(
                    FailureClass::Timeout,
                    "local.timeout",
                    format!(
                        "{} ran longer than {} s and was stopped (tools.timeout_secs)",
                        tool.name(),
                        self.timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| {
                failure(
                    FailureClass::Other,
                    "local.tool_failed",
                    format!("{} failed: {}", tool.name(), e.kind()),
                )
            })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(MAX_STDERR)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(failure(
            FailureClass::Other,
            "local.tool_failed",
            format!(
                "{} could not process the inputs ({})",
                tool.name(),
                output.status
            ),
        )
        .with_detail(tail))
    }
}

/// A file in the working folder as an ffmpeg argument: `file:` first, so no name is read as a
/// protocol (`concat:`, `http:`) or an option (`-i`). acgs chooses every such name.
pub(crate) fn file_arg(name: &str) -> OsString {
    OsString::from(format!("file:{name}"))
}

/// What ffprobe prints (the parts read).
#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
struct Format {
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    pix_fmt: Option<String>,
    profile: Option<String>,
    time_base: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    duration: Option<String>,
}

/// A video stream's shape: two streams join by stream copy only when all of it agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VideoStream {
    pub(crate) codec: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// `N/D`, digits only.
    pub(crate) rate: String,
    /// Pixel format, profile and time base, as ffprobe names them (empty when absent).
    pub(crate) format: (String, String, String),
}

/// An audio stream's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AudioStream {
    pub(crate) codec: String,
    pub(crate) sample_rate: String,
    pub(crate) channels: u32,
}

/// What a media file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Its duration, in milliseconds.
    pub(crate) duration_ms: u64,
    pub(crate) video: Option<VideoStream>,
    pub(crate) audio: Option<AudioStream>,
}

impl Probe {
    fn from_report(report: &Report) -> Option<Self> {
        let of = |kind: &str| {
            report
                .streams
                .iter()
                .find(|s| s.codec_type.as_deref() == Some(kind))
        };
        let video = of("video").and_then(|s| {
            let rate = s.r_frame_rate.clone().filter(|r| {
                r.split_once('/').is_some_and(|(n, d)| {
                    [n, d].iter().all(|p| {
                        !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit())
                    }) && d != "0"
                        && n != "0"
                })
            });
            Some(VideoStream {
                codec: s.codec_name.clone()?,
                width: s.width.filter(|w| (1..=MAX_SIDE).contains(w))?,
                height: s.height.filter(|h| (1..=MAX_SIDE).contains(h))?,
                rate: rate.unwrap_or_else(|| "24/1".into()),
                format: (
                    s.pix_fmt.clone().unwrap_or_default(),
                    s.profile.clone().unwrap_or_default(),
                    s.time_base.clone().unwrap_or_default(),
                ),
            })
        });
        let audio = of("audio").and_then(|s| {
            Some(AudioStream {
                codec: s.codec_name.clone()?,
                sample_rate: s.sample_rate.clone().unwrap_or_default(),
                channels: s.channels.unwrap_or(0),
            })
        });
        let duration = report
            .format
            .as_ref()
            .and_then(|f| f.duration.as_deref())
            .or_else(|| report.streams.iter().find_map(|s| s.duration.as_deref()))
            .and_then(millis)?;
        (video.is_some() || audio.is_some()).then_some(Self {
            duration_ms: duration,
            video,
            audio,
        })
    }
}

/// `12.345678` seconds as milliseconds (integers only: no float arithmetic).
pub(crate) fn millis(seconds: &str) -> Option<u64> {
    let (whole, fraction) = seconds
        .trim()
        .split_once('.')
        .unwrap_or((seconds.trim(), ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let mut ms = 0u64;
    for (i, digit) in fraction.bytes().take(3).enumerate() {
        ms += u64::from(digit - b'0') * [100, 10, 1][i];
    }
    whole.checked_mul(1000)?.checked_add(ms)
}

/// Milliseconds as ffmpeg's seconds (`12.345`).
pub(crate) fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_without_floats() {
        assert_eq!(millis("5.000000"), Some(5000));
        assert_eq!(millis("12.3456"), Some(12_345));
        assert_eq!(millis("7"), Some(7000));
        assert_eq!(millis("36000.5"), Some(36_000_500));
        for bad in ["", "-1", "1e9", "N/A", "1.2.3"] {
            assert_eq!(millis(bad), None, "{bad}");
        }
        assert_eq!(seconds(12_345), "12.345");
        assert_eq!(seconds(5), "0.005");
    }

    #[test]
    fn a_report_without_media_streams_is_not_media() {
        let report: Report =
            serde_json::from_str(r#"{"streams":[],"format":{"duration":"1.0"}}"#).expect("json");
        assert_eq!(Probe::from_report(&report), None);
        let report: Report = serde_json::from_str(
            r#"{"streams":[{"codec_type":"video","codec_name":"h264","width":64,"height":48,"r_frame_rate":"24/1"}],"format":{"duration":"2.5"}}"#,
        )
        .expect("json");
        let probe = Probe::from_report(&report).expect("a video");
        assert_eq!(probe.duration_ms, 2500);
        assert_eq!(probe.video.expect("video").rate, "24/1");
        assert!(probe.audio.is_none());
    }
}
