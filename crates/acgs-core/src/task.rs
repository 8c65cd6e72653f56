//! Providers, task kinds and media types, with content sniffing by magic bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A provider acgs talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    /// fal.ai (queue API).
    Fal,
    /// Google Gemini API.
    Gemini,
    /// ElevenLabs.
    #[serde(rename = "elevenlabs")]
    ElevenLabs,
    /// Steps run on this machine (ffmpeg, image cutting): no network, no key, no price.
    Local,
}

impl ProviderId {
    /// Every provider, in a stable order.
    pub const ALL: [Self; 4] = [Self::Fal, Self::Gemini, Self::ElevenLabs, Self::Local];

    /// The providers reached over the network with a key of the user's, in a stable order.
    pub const KEYED: [Self; 3] = [Self::Fal, Self::Gemini, Self::ElevenLabs];

    /// The lowercase name used in configuration and `provider:key` model references.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fal => "fal",
            Self::Gemini => "gemini",
            Self::ElevenLabs => "elevenlabs",
            Self::Local => "local",
        }
    }

    /// The variables users keep this provider's key in, for messages.
    #[must_use]
    pub const fn key_variables(self) -> &'static str {
        match self {
            Self::Fal => "FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET)",
            Self::Gemini => "GEMINI_API_KEY (or GOOGLE_API_KEY)",
            Self::ElevenLabs => "ELEVENLABS_API_KEY",
            Self::Local => "no key (local steps need ffmpeg and ffprobe)",
        }
    }

    /// Parse the lowercase name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Prompt → image.
    TextToImage,
    /// Image(s) + prompt → image.
    ImageToImage,
    /// Prompt → video.
    TextToVideo,
    /// Image + prompt → video.
    ImageToVideo,
    /// Text → speech audio.
    TextToSpeech,
    /// Audio → transcript.
    SpeechToText,
    /// Prompt → text.
    TextGeneration,
    /// Image + question → text.
    ImageUnderstanding,
    /// Video or audio + question → text.
    VideoUnderstanding,
    /// Portrait + audio or text → talking video (avatar, lip-sync).
    Avatar,
    /// Image → larger image.
    UpscaleImage,
    /// Video → larger video.
    UpscaleVideo,
    /// Videos (with audio or subtitles) → one video, on this machine: concat, mux, trim.
    EditVideo,
    /// Video → one of its frames.
    VideoFrame,
    /// Image → a grid of images cut from it.
    SplitImage,
    /// Video (+ prompt, reference images) → video: edits, restyles, motion transfer.
    VideoToVideo,
    /// Video → the same video with a sound track made for it.
    AddSound,
    /// Prompt → sound: sound effects, music.
    TextToAudio,
}

impl TaskKind {
    /// Every task kind, in a stable order.
    pub const ALL: [Self; 18] = [
        Self::TextToImage,
        Self::ImageToImage,
        Self::TextToVideo,
        Self::ImageToVideo,
        Self::TextToSpeech,
        Self::SpeechToText,
        Self::TextGeneration,
        Self::ImageUnderstanding,
        Self::VideoUnderstanding,
        Self::Avatar,
        Self::UpscaleImage,
        Self::UpscaleVideo,
        Self::EditVideo,
        Self::VideoFrame,
        Self::SplitImage,
        Self::VideoToVideo,
        Self::AddSound,
        Self::TextToAudio,
    ];

    /// The snake_case name used in catalogues and `--task`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TextToImage => "text_to_image",
            Self::ImageToImage => "image_to_image",
            Self::TextToVideo => "text_to_video",
            Self::ImageToVideo => "image_to_video",
            Self::TextToSpeech => "text_to_speech",
            Self::SpeechToText => "speech_to_text",
            Self::TextGeneration => "text_generation",
            Self::ImageUnderstanding => "image_understanding",
            Self::VideoUnderstanding => "video_understanding",
            Self::Avatar => "avatar",
            Self::UpscaleImage => "upscale_image",
            Self::UpscaleVideo => "upscale_video",
            Self::EditVideo => "edit_video",
            Self::VideoFrame => "video_frame",
            Self::SplitImage => "split_image",
            Self::VideoToVideo => "video_to_video",
            Self::AddSound => "add_sound",
            Self::TextToAudio => "text_to_audio",
        }
    }

    /// Whether the task sends user text to a text model, which answers in text (where the
    /// injection heuristics apply, and whose answer is printed).
    #[must_use]
    pub const fn is_text_model(self) -> bool {
        matches!(
            self,
            Self::TextGeneration | Self::ImageUnderstanding | Self::VideoUnderstanding
        )
    }

    /// Whether the model's result is text a person reads (written text, an answer about media,
    /// a transcript): shown on the terminal, and always untrusted.
    #[must_use]
    pub const fn writes_text(self) -> bool {
        self.is_text_model() || matches!(self, Self::SpeechToText)
    }

    /// Parse the snake_case name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The kind of media this task produces.
    #[must_use]
    pub const fn output(self) -> MediaKind {
        match self {
            Self::TextToImage
            | Self::ImageToImage
            | Self::UpscaleImage
            | Self::VideoFrame
            | Self::SplitImage => MediaKind::Image,
            Self::TextToVideo
            | Self::ImageToVideo
            | Self::Avatar
            | Self::UpscaleVideo
            | Self::EditVideo
            | Self::VideoToVideo
            | Self::AddSound => MediaKind::Video,
            Self::TextToSpeech | Self::TextToAudio => MediaKind::Audio,
            Self::SpeechToText
            | Self::TextGeneration
            | Self::ImageUnderstanding
            | Self::VideoUnderstanding => MediaKind::Text,
        }
    }

    /// The largest output acgs accepts for one artifact of this task, in bytes.
    #[must_use]
    pub const fn output_cap_bytes(self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        match self.output() {
            MediaKind::Image => 64 * MIB,
            MediaKind::Video => 4096 * MIB,
            MediaKind::Audio => 512 * MIB,
            MediaKind::Text => 16 * MIB,
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The broad kind of a piece of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Still image.
    Image,
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Text (prose, transcripts, subtitles).
    Text,
}

/// A content type acgs knows by its magic bytes. SVG, HTML and XML are deliberately absent: they
/// can carry scripts and are never written as media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// WebP image.
    Webp,
    /// GIF image.
    Gif,
    /// HEIC/HEIF photo (what phones take).
    Heic,
    /// AVIF image.
    Avif,
    /// MP4 video.
    Mp4,
    /// QuickTime video.
    Quicktime,
    /// WebM / Matroska video.
    Webm,
    /// MPEG audio (MP3).
    Mp3,
    /// WAVE audio.
    Wav,
    /// Ogg container (Vorbis/Opus audio).
    Ogg,
    /// FLAC audio.
    Flac,
    /// MPEG-4 audio.
    M4a,
    /// UTF-8 text.
    Text,
    /// JSON text.
    Json,
    /// SubRip subtitles.
    Srt,
}

impl ContentType {
    /// The file extension written for this type.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Heic => "heic",
            Self::Avif => "avif",
            Self::Mp4 => "mp4",
            Self::Quicktime => "mov",
            Self::Webm => "webm",
            Self::Mp3 => "mp3",
            Self::Wav => "wav",
            Self::Ogg => "ogg",
            Self::Flac => "flac",
            Self::M4a => "m4a",
            Self::Text => "txt",
            Self::Json => "json",
            Self::Srt => "srt",
        }
    }

    /// The MIME type.
    #[must_use]
    pub const fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Heic => "image/heic",
            Self::Avif => "image/avif",
            Self::Mp4 => "video/mp4",
            Self::Quicktime => "video/quicktime",
            Self::Webm => "video/webm",
            Self::Mp3 => "audio/mpeg",
            Self::Wav => "audio/wav",
            Self::Ogg => "audio/ogg",
            Self::Flac => "audio/flac",
            Self::M4a => "audio/mp4",
            Self::Text => "text/plain; charset=utf-8",
            Self::Json => "application/json",
            Self::Srt => "application/x-subrip",
        }
    }

    /// The media kind of this type.
    #[must_use]
    pub const fn media_kind(self) -> MediaKind {
        match self {
            Self::Png | Self::Jpeg | Self::Webp | Self::Gif | Self::Heic | Self::Avif => {
                MediaKind::Image
            }
            Self::Mp4 | Self::Quicktime | Self::Webm => MediaKind::Video,
            Self::Mp3 | Self::Wav | Self::Ogg | Self::Flac | Self::M4a => MediaKind::Audio,
            Self::Text | Self::Json | Self::Srt => MediaKind::Text,
        }
    }

    /// Identify binary media by its first bytes (at least 12 are needed for every rule).
    /// Text types are never sniffed: acgs writes those itself.
    #[must_use]
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let found = infer::get(head).and_then(|kind| match kind.mime_type() {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "image/gif" => Some(Self::Gif),
            "image/webp" => Some(Self::Webp),
            "image/heif" => Some(Self::Heic),
            "image/avif" => Some(Self::Avif),
            "video/mp4" => Some(Self::Mp4),
            "video/quicktime" => Some(Self::Quicktime),
            "video/webm" | "video/x-matroska" => Some(Self::Webm),
            "audio/mpeg" => Some(Self::Mp3),
            "audio/x-wav" => Some(Self::Wav),
            "audio/ogg" | "audio/opus" => Some(Self::Ogg),
            "audio/x-flac" => Some(Self::Flac),
            "audio/m4a" | "audio/x-m4a" => Some(Self::M4a),
            _ => None,
        });
        // Any other ISO media file (brands infer does not list) is read as MP4; an image brand
        // was recognised above.
        found.or_else(|| (head.get(4..8) == Some(b"ftyp")).then_some(Self::Mp4))
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_media() {
        let cases: [(&[u8], ContentType); 8] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", ContentType::Png),
            (b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01", ContentType::Jpeg),
            (b"RIFF\x24\0\0\0WEBPVP8 ", ContentType::Webp),
            (b"RIFF\x24\0\0\0WAVEfmt ", ContentType::Wav),
            (b"\0\0\0\x20ftypisom\0\0\x02\0", ContentType::Mp4),
            (b"\0\0\0\x14ftypqt  \0\0\0\0", ContentType::Quicktime),
            (b"ID3\x04\0\0\0\0\0\0\0\0", ContentType::Mp3),
            (b"OggS\0\x02\0\0\0\0\0\0", ContentType::Ogg),
        ];
        for (bytes, expected) in cases {
            assert_eq!(ContentType::sniff(bytes), Some(expected));
        }
    }

    #[test]
    fn phone_photos_are_images_and_unknown_iso_brands_are_mp4() {
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0";
        let heif = b"\0\0\0\x1cftypmif1\0\0\0\0mif1heicmiaf\0\0\0\0";
        let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf\0\0\0\0";
        assert_eq!(ContentType::sniff(heic), Some(ContentType::Heic));
        assert_eq!(ContentType::sniff(heif), Some(ContentType::Heic));
        assert_eq!(ContentType::sniff(avif), Some(ContentType::Avif));
        for kind in [ContentType::Heic, ContentType::Avif] {
            assert_eq!(kind.media_kind(), MediaKind::Image);
        }
        let odd = b"\0\0\0\x18ftypxyz1\0\0\0\0xyz1isom\0\0\0\0";
        assert_eq!(ContentType::sniff(odd), Some(ContentType::Mp4));
        assert_eq!(ContentType::sniff(b"hello, I am text named clip.mp4"), None);
    }

    #[test]
    fn markup_and_text_are_never_media() {
        for bytes in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\">"[..],
            b"<!DOCTYPE html><html>",
            b"<?xml version=\"1.0\"?>",
            b"{\"images\": []}",
            b"",
        ] {
            assert_eq!(ContentType::sniff(bytes), None);
        }
    }

    #[test]
    fn names_round_trip() {
        for task in TaskKind::ALL {
            assert_eq!(TaskKind::from_name(task.as_str()), Some(task));
        }
        for provider in ProviderId::ALL {
            assert_eq!(ProviderId::from_name(provider.as_str()), Some(provider));
        }
    }
}
