//! Small but real media files for fakes to serve.

/// A valid 1×1 PNG.
pub const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// An SVG with a script: never acceptable as an image output.
pub const SVG_WITH_SCRIPT: &[u8] =
    b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";

/// A minimal MP4 (`ftyp` + `moov/mvhd`) lasting `seconds`, padded with an `mdat` of `padding` bytes.
#[must_use]
pub fn mp4(seconds: u32, padding: usize) -> Vec<u8> {
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
    mvhd[16..20].copy_from_slice(&(seconds * 1000).to_be_bytes());
    let mut out = b"\0\0\0\x14ftypisom\0\0\x02\0isom".to_vec();
    out.extend_from_slice(&(u32::try_from(16 + mvhd.len()).unwrap_or(0)).to_be_bytes());
    out.extend_from_slice(b"moov");
    out.extend_from_slice(&(u32::try_from(8 + mvhd.len()).unwrap_or(0)).to_be_bytes());
    out.extend_from_slice(b"mvhd");
    out.extend_from_slice(&mvhd);
    out.extend_from_slice(&(u32::try_from(8 + padding).unwrap_or(0)).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.resize(out.len() + padding, 0);
    out
}

/// A WAVE file of `seconds` of 16 kHz mono silence.
#[must_use]
pub fn wav(seconds: u32) -> Vec<u8> {
    let data = 32_000 * seconds;
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&[1, 0, 1, 0]);
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&[2, 0, 16, 0]);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    out.resize(out.len() + usize::try_from(data).unwrap_or(0), 0);
    out
}

/// A PNG of `width`×`height` as far as its header says, padded to `size` bytes (probes read the
/// header; fakes never decode pixels).
#[must_use]
pub fn png(width: u32, height: u32, size: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&[8, 6, 0, 0, 0]);
    out.resize(size.max(out.len()), 0);
    out
}

/// Real, decodable media made by the system's ffmpeg (tests of the steps that decode: join,
/// mux, cut). Panics, naming what to install, when ffmpeg is missing: such a test cannot pass
/// without it.
pub mod real {
    use std::path::Path;
    use std::process::Command;

    fn ffmpeg(args: &[&str], out: &Path) {
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(out)
            .status()
            .unwrap_or_else(|e| {
                panic!("ffmpeg is needed for this test (apt-get install ffmpeg): {e}")
            });
        assert!(status.success(), "ffmpeg could not make {}", out.display());
    }

    fn made(name: &str, args: &[&str]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("acgs-testkit-media-{}", std::process::id()));
        fs_err::create_dir_all(&dir).expect("a folder for test media");
        let out = dir.join(name);
        if !out.exists() {
            let temp = dir.join(format!(
                "tmp-{}-{name}",
                std::thread::current()
                    .name()
                    .unwrap_or("t")
                    .replace([':', '/'], "_")
            ));
            ffmpeg(args, &temp);
            fs_err::rename(&temp, &out).expect("test media in place");
        }
        fs_err::read(&out).expect("test media")
    }

    /// An H.264 MP4 test pattern of `seconds` at `width`×`height`, 24 fps, with a 440 Hz AAC
    /// tone when `sound`.
    #[must_use]
    pub fn clip(seconds: u32, width: u32, height: u32, sound: bool) -> Vec<u8> {
        let video = format!("testsrc=size={width}x{height}:rate=24:duration={seconds}");
        let audio = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
        let mut args = vec!["-f", "lavfi", "-i", video.as_str()];
        if sound {
            args.extend(["-f", "lavfi", "-i", audio.as_str(), "-c:a", "aac"]);
        }
        args.extend([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-shortest",
            "-f",
            "mp4",
        ]);
        made(
            &format!("clip-{seconds}-{width}x{height}-{sound}.mp4"),
            &args,
        )
    }

    /// A PNG test pattern of `width`×`height`.
    #[must_use]
    pub fn png(width: u32, height: u32) -> Vec<u8> {
        let source = format!("testsrc=size={width}x{height}:rate=1");
        made(
            &format!("still-{width}x{height}.png"),
            &[
                "-f",
                "lavfi",
                "-i",
                source.as_str(),
                "-frames:v",
                "1",
                "-f",
                "image2",
                "-c:v",
                "png",
            ],
        )
    }

    /// An MP3 of `seconds` of a 220 Hz tone (narration stands in).
    #[must_use]
    pub fn mp3(seconds: u32) -> Vec<u8> {
        let source = format!("sine=frequency=220:sample_rate=44100:duration={seconds}");
        made(
            &format!("tone-{seconds}.mp3"),
            &[
                "-f",
                "lavfi",
                "-i",
                source.as_str(),
                "-c:a",
                "libmp3lame",
                "-f",
                "mp3",
            ],
        )
    }

    /// What ffprobe reads of `path`: the duration in milliseconds and the stream types, in order.
    #[must_use]
    pub fn probe(path: &Path) -> (u64, Vec<String>) {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_type",
                "-of",
                "csv=p=0",
            ])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("ffprobe is needed for this test: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut kinds = Vec::new();
        let mut ms = 0;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once('.') {
                Some((s, frac)) if s.bytes().all(|b| b.is_ascii_digit()) => {
                    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
                    ms = s.parse::<u64>().unwrap_or(0) * 1000 + frac.parse::<u64>().unwrap_or(0);
                }
                _ => kinds.push(line.trim_end_matches(',').to_owned()),
            }
        }
        (ms, kinds)
    }
}
