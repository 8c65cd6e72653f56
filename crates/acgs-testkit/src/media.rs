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
