//! # acgs-providers-local
//!
//! The `local` provider: media steps that run on this machine, behind the same
//! [`acgs_core::Provider`] interface as the network providers, so they go through the one guarded
//! path — validated, stored in the run folder, audited — at a price of $0.
//!
//! - [`LocalProvider`]: `concat`, `mux_audio`, `subtitles`, `trim` and `frame` with the system's
//!   ffmpeg and ffprobe; `split_grid` in pure Rust;
//! - inputs are "uploaded" by copying them into a private working folder under names acgs
//!   chose (`in-7.mp4`), so a file name written by anyone else — `-i`, `concat:a|b`,
//!   `http://…` — never reaches ffmpeg's command line;
//! - ffmpeg runs with an argument vector (no shell), `-nostdin`, `-protocol_whitelist file` on
//!   every input, every name given as `file:NAME`, an empty environment (no key can leak into
//!   it) and a time limit; what it writes is handed back as bytes, and the engine stores them
//!   in the run folder through the contained store.
//!
//! The catalogue ([`catalog`]) is data: `catalog.toml`, compiled in.

mod edit;
mod ffmpeg;
mod grid;
mod provider;

use acgs_core::catalog::Catalog;
use acgs_core::{Error, ProviderId};

pub use provider::LocalProvider;

/// The catalogue source shipped with this crate.
pub const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// The local steps' built-in catalogue.
pub fn catalog() -> Result<Catalog, Error> {
    Catalog::from_toml(
        ProviderId::Local,
        "acgs-providers-local/catalog.toml",
        CATALOG_TOML,
    )
}
