//! # acgs-http
//!
//! The only way acgs talks HTTP (DESIGN.md §5):
//!
//! - HTTPS with verification always (rustls with ring, OS roots plus an optional CA bundle, the
//!   OS roots read at the first handshake: [`preload_trust_roots`]); plain http only to loopback
//!   IP literals and only with `allow_http_loopback`;
//! - address checks inside the connector: a resolver that drops private, link-local, CGNAT,
//!   multicast, documentation and other special ranges, with IP literals checked by the same
//!   function ([`address::is_allowed`]);
//! - no automatic redirects: at most five, GET only, every check re-run at each hop;
//! - credentials bound to the provider's base origin ([`Credential`]), never sent elsewhere;
//! - one retry layer ([`RetryPolicy`]) honouring `Retry-After`, `retry-after-ms` and Gemini's
//!   `RetryInfo`; a submit is retried only when it was provably not accepted;
//! - split timeouts, capped bodies, error bodies redacted, and streaming
//!   [`HttpClient::download_to`] with a size cap and sha256 on the fly;
//! - Server-Sent Events read with a cap on each event ([`sse::Events`]).

pub mod address;
mod client;
mod download;
mod error;
mod multipart;
mod provider_error;
mod retry;
pub mod sse;
mod tls;

pub use client::{
    Body, ByteStream, Credential, HttpClient, HttpRequest, HttpResponse, JSON_BODY_CAP,
    MAX_REDIRECTS, Method, NetworkPolicy, target_of,
};
pub use download::Download;
pub use error::{Delivery, HttpError};
pub use multipart::multipart_form;
pub use provider_error::{code_for, provider_error};
pub use retry::{Classifier, RetryPolicy, advised_delay};
pub use tls::preload_trust_roots;
