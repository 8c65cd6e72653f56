//! Facts about local media read from their headers: image dimensions and media duration. Used to
//! price requests whose cost depends on the input (per megapixel of the input image, per second of
//! input audio or video) and to enforce the duration limits models state.
//!
//! Every reader is bounded: it looks at the bytes it is given and never seeks past them.

use acgs_core::task::ContentType;

/// What a probe found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaFacts {
    /// Width and height in pixels (images).
    pub dimensions: Option<(u64, u64)>,
    /// Duration in whole seconds, rounded up (audio and video).
    pub seconds: Option<u64>,
}

fn be16(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_be_bytes(
        b.get(at..at + 4)?.try_into().ok()?,
    )))
}

fn le16(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le32(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(at..at + 4)?.try_into().ok()?,
    )))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Probe `bytes` (the whole file, or at least its first megabyte for images) of type `kind`.
#[must_use]
pub fn probe(kind: ContentType, bytes: &[u8]) -> MediaFacts {
    match kind {
        ContentType::Png => MediaFacts {
            dimensions: Some((be32(bytes, 16).unwrap_or(0), be32(bytes, 20).unwrap_or(0)))
                .filter(|(w, h)| *w > 0 && *h > 0),
            seconds: None,
        },
        ContentType::Gif => MediaFacts {
            dimensions: le16(bytes, 6).zip(le16(bytes, 8)),
            seconds: None,
        },
        ContentType::Jpeg => MediaFacts {
            dimensions: jpeg_dimensions(bytes),
            seconds: None,
        },
        ContentType::Webp => MediaFacts {
            dimensions: webp_dimensions(bytes),
            seconds: None,
        },
        ContentType::Heic | ContentType::Avif => MediaFacts {
            dimensions: heif_dimensions(bytes),
            seconds: None,
        },
        ContentType::Wav => MediaFacts {
            dimensions: None,
            seconds: wav_seconds(bytes),
        },
        ContentType::Mp4 | ContentType::Quicktime | ContentType::M4a => MediaFacts {
            dimensions: None,
            seconds: mp4_seconds(bytes),
        },
        ContentType::Flac => MediaFacts {
            dimensions: None,
            seconds: flac_seconds(bytes),
        },
        ContentType::Mp3 => MediaFacts {
            dimensions: None,
            seconds: mp3_seconds(bytes),
        },
        _ => MediaFacts::default(),
    }
}

/// The largest image an HEIF file (HEIC, AVIF) declares: the biggest of its `ispe` (image
/// spatial extents) properties, so that a grid image is priced by its whole size, not a tile.
fn heif_dimensions(bytes: &[u8]) -> Option<(u64, u64)> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"ispe")
        // The box type is followed by version and flags (4 bytes), then width and height.
        .filter_map(|(at, _)| Some((be32(bytes, at + 8)?, be32(bytes, at + 12)?)))
        .filter(|(w, h)| *w > 0 && *h > 0)
        .max_by_key(|(w, h)| w.saturating_mul(*h))
}

/// Most bytes read to probe a file (audio is read whole up to this; video only its `moov` box).
pub const PROBE_CAP: u64 = 64 * 1024 * 1024;

/// Probe an open file of `size` bytes: ISO BMFF files by walking their top-level boxes to `moov`,
/// everything else from its first [`PROBE_CAP`] bytes.
pub fn probe_file<R: std::io::Read + std::io::Seek>(
    kind: ContentType,
    reader: &mut R,
    size: u64,
) -> std::io::Result<MediaFacts> {
    use std::io::{Read as _, SeekFrom};
    reader.seek(SeekFrom::Start(0))?;
    if !matches!(
        kind,
        ContentType::Mp4 | ContentType::Quicktime | ContentType::M4a
    ) {
        let mut bytes = Vec::new();
        reader.by_ref().take(PROBE_CAP).read_to_end(&mut bytes)?;
        return Ok(probe(kind, &bytes));
    }
    let mut offset = 0u64;
    let mut header = [0u8; 16];
    while offset + 8 <= size {
        reader.seek(SeekFrom::Start(offset))?;
        reader.read_exact(&mut header[..8])?;
        let small = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let (len, head) = match small {
            1 => {
                reader.read_exact(&mut header[8..16])?;
                (
                    u64::from_be_bytes(header[8..16].try_into().unwrap_or_default()),
                    16,
                )
            }
            0 => (size - offset, 8),
            n => (n, 8),
        };
        if len < head {
            break;
        }
        if &header[4..8] == b"moov" {
            let body = (len - head).min(PROBE_CAP);
            let mut moov = Vec::with_capacity(usize::try_from(body).unwrap_or(0));
            reader.by_ref().take(body).read_to_end(&mut moov)?;
            let mut boxed = u32::try_from(body + 8)
                .unwrap_or(u32::MAX)
                .to_be_bytes()
                .to_vec();
            boxed.extend_from_slice(b"moov");
            boxed.extend_from_slice(&moov);
            return Ok(MediaFacts {
                dimensions: None,
                seconds: mp4_seconds(&boxed),
            });
        }
        offset = offset.saturating_add(len);
    }
    Ok(MediaFacts::default())
}

/// JPEG: the first start-of-frame marker carries height and width.
fn jpeg_dimensions(b: &[u8]) -> Option<(u64, u64)> {
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = b[i + 1];
        if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) || marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::try_from(be16(b, i + 2)?).ok()?;
        let is_sof = matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF);
        if is_sof {
            let (h, w) = (be16(b, i + 5)?, be16(b, i + 7)?);
            return (w > 0 && h > 0).then_some((w, h));
        }
        i += 2 + len;
    }
    None
}

/// WebP: lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`) headers.
fn webp_dimensions(b: &[u8]) -> Option<(u64, u64)> {
    match b.get(12..16)? {
        b"VP8 " => Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)),
        b"VP8L" => {
            let bits = le32(b, 21)?;
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => {
            let w = le32(b, 24)? & 0x00FF_FFFF;
            let h = le32(b, 27)? & 0x00FF_FFFF;
            Some((w + 1, h + 1))
        }
        _ => None,
    }
}

/// WAVE: the `data` chunk size over the byte rate of the `fmt ` chunk.
fn wav_seconds(b: &[u8]) -> Option<u64> {
    let mut i = 12;
    let mut byte_rate = None;
    while i + 8 <= b.len() {
        let id = b.get(i..i + 4)?;
        let size = le32(b, i + 4)?;
        if id == b"fmt " {
            byte_rate = le32(b, i + 16);
        } else if id == b"data" {
            let rate = byte_rate.filter(|r| *r > 0)?;
            return Some(size.div_ceil(rate));
        }
        i += 8 + usize::try_from(size).ok()? + usize::try_from(size % 2).ok()?;
    }
    None
}

/// ISO BMFF: `moov/mvhd` timescale and duration.
fn mp4_seconds(b: &[u8]) -> Option<u64> {
    let moov = find_box(b, b"moov")?;
    let mvhd = find_box(moov, b"mvhd")?;
    let (timescale, duration) = match mvhd.first()? {
        1 => (be32(mvhd, 20)?, be64(mvhd, 24)?),
        _ => (be32(mvhd, 12)?, be32(mvhd, 16)?),
    };
    (timescale > 0).then(|| duration.div_ceil(timescale))
}

/// The payload of the first box of `kind` at this level.
fn find_box<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i + 8 <= b.len() {
        let size = be32(b, i)?;
        let (header, size) = match size {
            1 => (16, be64(b, i + 8)?),
            0 => (8, u64::try_from(b.len() - i).ok()?),
            s => (8, s),
        };
        let size = usize::try_from(size).ok()?;
        if size < header {
            return None;
        }
        if b.get(i + 4..i + 8)? == kind {
            return b.get(i + header..(i + size).min(b.len()));
        }
        i += size;
    }
    None
}

/// FLAC: total samples over the sample rate, from STREAMINFO.
fn flac_seconds(b: &[u8]) -> Option<u64> {
    let info = b.get(8..8 + 34)?;
    let rate =
        (u64::from(info[10]) << 12) | (u64::from(info[11]) << 4) | (u64::from(info[12]) >> 4);
    let samples = (u64::from(info[13] & 0x0F) << 32) | be32(info, 14)?;
    (rate > 0 && samples > 0).then(|| samples.div_ceil(rate))
}

/// MPEG audio: walk the frames (after an ID3 tag) and add up their durations.
fn mp3_seconds(b: &[u8]) -> Option<u64> {
    const BITRATES: [u64; 16] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
    ];
    const RATES: [u64; 4] = [44100, 48000, 32000, 0];
    let mut i = if b.starts_with(b"ID3") {
        let size = b
            .get(6..10)?
            .iter()
            .fold(0usize, |acc, x| (acc << 7) | usize::from(x & 0x7F));
        10 + size
    } else {
        0
    };
    let (mut samples, mut rate_seen) = (0u64, 0u64);
    while i + 4 <= b.len() {
        let h = &b[i..i + 4];
        let mpeg1_layer3 = h[0] == 0xFF && (h[1] & 0xFE) == 0xFA;
        if !mpeg1_layer3 {
            i += 1;
            continue;
        }
        let bitrate = BITRATES[usize::from(h[2] >> 4)] * 1000;
        let rate = RATES[usize::from((h[2] >> 2) & 0x03)];
        if bitrate == 0 || rate == 0 {
            i += 1;
            continue;
        }
        let padding = u64::from((h[2] >> 1) & 0x01);
        let frame = usize::try_from(144 * bitrate / rate + padding).ok()?;
        samples += 1152;
        rate_seen = rate;
        i += frame.max(1);
    }
    (rate_seen > 0).then(|| samples.div_ceil(rate_seen))
}

#[cfg(test)]
mod tests {
    #[test]
    fn heif_images_report_their_largest_extent() {
        let mut bytes = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
        for (w, h) in [(512u32, 512u32), (4032, 3024), (256, 256)] {
            bytes.extend_from_slice(b"\0\0\0\x14ispe\0\0\0\0");
            bytes.extend_from_slice(&w.to_be_bytes());
            bytes.extend_from_slice(&h.to_be_bytes());
        }
        let facts = super::probe(acgs_core::ContentType::Heic, &bytes);
        assert_eq!(facts.dimensions, Some((4032, 3024)));
        let none = super::probe(acgs_core::ContentType::Avif, b"\0\0\0\x18ftypavif");
        assert_eq!(none.dimensions, None);
    }

    use super::*;

    #[test]
    fn png_and_gif_dimensions() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1920u32.to_be_bytes());
        png.extend_from_slice(&1080u32.to_be_bytes());
        assert_eq!(probe(ContentType::Png, &png).dimensions, Some((1920, 1080)));
        let gif = b"GIF89a\x80\x02\xe0\x01";
        assert_eq!(probe(ContentType::Gif, gif).dimensions, Some((640, 480)));
    }

    #[test]
    fn jpeg_dimensions_from_sof() {
        let mut jpg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x02, 0xD0, 0x05, 0x00, 0x03]);
        jpg.extend_from_slice(&[0u8; 16]);
        assert_eq!(probe(ContentType::Jpeg, &jpg).dimensions, Some((1280, 720)));
    }

    #[test]
    fn wav_duration_from_data_and_byte_rate() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[1, 0, 1, 0]);
        wav.extend_from_slice(&16000u32.to_le_bytes());
        wav.extend_from_slice(&32000u32.to_le_bytes());
        wav.extend_from_slice(&[2, 0, 16, 0]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(32000u32 * 10 + 5).to_le_bytes());
        assert_eq!(
            probe(ContentType::Wav, &wav).seconds,
            Some(11),
            "rounded up"
        );
    }

    #[test]
    fn mp4_duration_from_mvhd() {
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
        mvhd[16..20].copy_from_slice(&8500u32.to_be_bytes());
        let mut moov = (u32::try_from(8 + 8 + mvhd.len()).expect("len"))
            .to_be_bytes()
            .to_vec();
        moov.extend_from_slice(b"moov");
        moov.extend_from_slice(&(u32::try_from(8 + mvhd.len()).expect("len")).to_be_bytes());
        moov.extend_from_slice(b"mvhd");
        moov.extend_from_slice(&mvhd);
        let mut mp4 = b"\0\0\0\x10ftypisom\0\0\0\0".to_vec();
        mp4.extend_from_slice(&moov);
        assert_eq!(probe(ContentType::Mp4, &mp4).seconds, Some(9));
    }

    #[test]
    fn mp3_duration_by_frames() {
        let frame_len = 144 * 128_000 / 44_100;
        let mut mp3 = Vec::new();
        for _ in 0..77 {
            let mut frame = vec![0u8; frame_len];
            frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
            mp3.extend_from_slice(&frame);
        }
        assert_eq!(
            probe(ContentType::Mp3, &mp3).seconds,
            Some(3),
            "77 × 1152 samples ≈ 2.01 s, rounded up"
        );
    }

    #[test]
    fn files_are_probed_by_walking_boxes() {
        let mut mvhd = vec![0u8; 100];
        mvhd[12..16].copy_from_slice(&600u32.to_be_bytes());
        mvhd[16..20].copy_from_slice(&(600u32 * 42).to_be_bytes());
        let mut file = b"\0\0\0\x10ftypisom\0\0\0\0".to_vec();
        file.extend_from_slice(&(8u32 + 1_000_000).to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&vec![0u8; 1_000_000]);
        file.extend_from_slice(&(u32::try_from(16 + mvhd.len()).expect("len")).to_be_bytes());
        file.extend_from_slice(b"moov");
        file.extend_from_slice(&(u32::try_from(8 + mvhd.len()).expect("len")).to_be_bytes());
        file.extend_from_slice(b"mvhd");
        file.extend_from_slice(&mvhd);
        let size = u64::try_from(file.len()).expect("len");
        let facts =
            probe_file(ContentType::Mp4, &mut std::io::Cursor::new(file), size).expect("probe");
        assert_eq!(
            facts.seconds,
            Some(42),
            "moov after a large mdat is found by seeking"
        );
    }

    #[test]
    fn garbage_probes_to_nothing() {
        for kind in [
            ContentType::Png,
            ContentType::Jpeg,
            ContentType::Mp4,
            ContentType::Wav,
            ContentType::Mp3,
            ContentType::Flac,
        ] {
            let facts = probe(kind, &[0xFF; 7]);
            assert!(
                facts.dimensions.is_none() && facts.seconds.is_none(),
                "{kind:?}"
            );
        }
    }
}
