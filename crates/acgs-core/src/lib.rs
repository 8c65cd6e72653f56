//! # acgs-core
//!
//! The vocabulary of acgs, the AI Content Generation Suite: what every other acgs crate implements
//! against. It is small on purpose and does no network I/O and no file writes.
//!
//! - [`task`]: providers, task kinds, media types and content sniffing;
//! - [`catalog`] and [`pricing`]: models, parameter schemas with field kinds, prices with provenance;
//! - [`money`]: [`Usd`], integer micro-dollars;
//! - [`request`]: requests, the sealed [`Authorized`] wrapper, outputs and job handles;
//! - [`progress`]: progress events and their sink;
//! - [`provider`], [`ledger`], [`audit`], [`moderation`]: the traits providers, ledgers, audit sinks
//!   and moderators implement;
//! - [`config`], [`mod@env`]: layered configuration, and the process environment it reads;
//! - [`tools`]: finding the system programs local media steps run (ffmpeg, ffprobe);
//! - [`redact`]: the redactor behind the one redacting sink;
//! - [`error`]: error kinds, exit codes and the [`UserFacing`] trait.

pub mod audit;
pub mod callback;
pub mod catalog;
pub mod config;
pub mod env;
pub mod error;
pub mod files;
pub mod job;
pub mod ledger;
pub mod moderation;
pub mod money;
pub mod params;
pub mod pricing;
pub mod progress;
pub mod provider;
pub mod redact;
pub mod request;
pub mod suggest;
pub mod task;
pub mod tools;

pub use catalog::{Catalog, ModelSpec, Params};
pub use error::{Error, ErrorKind, Problem, UserFacing};
pub use money::{Quantity, Units, Usd};
pub use provider::Provider;
pub use request::{Authorized, Request};
pub use task::{ContentType, MediaKind, ProviderId, TaskKind};
