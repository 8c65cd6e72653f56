//! # acgs-media
//!
//! Media formats, for the crates that read or write them:
//!
//! - [`probe`]: facts read from a file's headers — an image's size, a recording's duration —
//!   that prices and duration limits depend on; every reader is bounded;
//! - [`transcript`]: Scribe's word timings, and SRT subtitles made from them.

pub mod probe;
pub mod transcript;
