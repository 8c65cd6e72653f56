//! # acgs-engine
//!
//! The guarded path of acgs (DESIGN.md §2). Every generation — from the command line, a pipeline
//! step or library code — runs the same fourteen stages, each a named function in [`stages`]:
//! resolve, validate, inspect, template, price, authorize, rate limit, upload, submit, wait, check
//! output, settle, store and audit.
//!
//! [`Suite`] is the front door:
//!
//! ```no_run
//! # async fn demo(config: acgs_core::config::Config, catalog: acgs_core::Catalog,
//! #   ledger: std::sync::Arc<dyn acgs_core::ledger::Ledger>) -> Result<(), acgs_engine::EngineError> {
//! use acgs_engine::{GenerationRequest, Suite};
//! let suite = Suite::builder().config(config).catalog(catalog).ledger(ledger).build()?;
//! let request = GenerationRequest {
//!     model: "flux_dev".into(),
//!     texts: [("prompt".to_owned(), "a lighthouse at dusk".to_owned())].into(),
//!     ..GenerationRequest::default()
//! };
//! let plan = suite.plan(&request)?; // validated, inspected, priced: no network, no key
//! println!("worst case ${}", plan.quote.amount);
//! # Ok(()) }
//! ```

mod error;
pub mod pipeline;
mod run;
pub mod stages;
mod suite;

pub use error::{EngineError, Signal};
pub use pipeline::run::{PipelineEstimate, PipelineReport, StepOutcome};
pub use pipeline::{Pipeline, Problem, Problems};
pub use stages::authorize::{AssumeYes, Confirm, ConfirmAnswer};
pub use suite::{
    AssumedMedia, GenerationRequest, Interrupt, KeyInfo, Plan, Resumed, RunReport, Suite,
    SuiteBuilder,
};
