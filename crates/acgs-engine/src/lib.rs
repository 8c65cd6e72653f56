//! # acgs-engine
//!
//! The guarded path of acgs (DESIGN.md §2). Every generation — from the command line, a pipeline
//! step, a resume or library code — runs the same fourteen stages, one private module each:
//! resolve, validate, inspect, template, price, authorize, rate limit, upload, submit, wait,
//! check output, settle, store and audit. One driver runs them for every entrance
//! (`docs/architecture.md` maps them to their files).
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

mod driver;
mod error;
mod history;
mod inputs;
mod interrupt;
pub mod pipeline;
mod plan;
mod problems;
mod report;
mod request;
mod resume;
mod run_state;
mod services;
mod stages;
mod status;
mod suite;

/// A fresh run id, for an entrance that names its run before starting it ([`Suite::generate_as`]).
pub use acgs_storage::runs::new_run_id;
pub use error::{EngineError, Signal};
pub use history::{RunFilter, RunOutcome, RunSummary};
pub use inputs::OpenedInputs;
pub use interrupt::Interrupt;
pub use pipeline::Pipeline;
pub use plan::{MAIN_STEP, Plan};
pub use problems::{Problem, Problems};
pub use report::{PipelineEstimate, PipelineReport, Resumed, RunReport, StepOutcome};
pub use request::{AssumedMedia, GenerationRequest};
pub use services::{AlertHook, AssumeYes, Caller, Confirm, ConfirmAnswer, KeyInfo, SpendAlert};
pub use stages::authorize::effective_limits;
pub use stages::inspect::limit_for;
pub use status::{OutputState, RunStatus, ScopeNow, SpendNow, StepState};
pub use suite::{Suite, SuiteBuilder};
