//! YAML pipelines (DESIGN.md §3.7): a typed DAG of steps, fully checked before a cent is spent,
//! run with independent steps at once, and resumable.
//!
//! - [`schema`]: the version-1 file, parsed with hard limits;
//! - [`refs`]: `{{ inputs.NAME }}` and `{{ steps.ID.OUTPUT }}`;
//! - [`validate`]: every problem at once, each with its line and step;
//! - [`plan`]: the order, and each step's request (with worst-case stand-ins for what earlier
//!   steps will make, for the estimate);
//! - [`run`]: one reservation per step, all or nothing, then the steps as their inputs are ready.

pub mod plan;
pub mod refs;
mod resume;
pub mod run;
pub mod schema;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use acgs_core::catalog::ModelSpec;
use acgs_core::config::CostManagement;

pub use refs::{OutputKind, Piece, Ref};
pub use schema::{InputSpec, InputType, OnError};

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// The step it concerns.
    pub step: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn at(line: u32, step: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            line: (line > 0).then_some(line),
            step: step.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Every problem found in a pipeline file, with the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The file as given.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if let Some(step) = &p.step {
                write!(f, ": step `{step}`")?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

/// Where a step's media field gets its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// A file under the pipeline's own folder.
    Path(PathBuf),
    /// An input or an earlier step's output.
    Ref(Ref),
}

/// A checked step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its id.
    pub id: String,
    /// The line it starts on.
    pub line: u32,
    /// Its model.
    pub model: Arc<ModelSpec>,
    /// Text fields: the model's flag, and the value as pieces.
    pub texts: Vec<(String, Vec<Piece>)>,
    /// Media fields: the model's flag (`image`, `images`, `video`, `audio`), and the source.
    pub media: Vec<(String, MediaSource)>,
    /// Parameters: name, and the value as pieces (literals or inputs).
    pub params: Vec<(String, Vec<Piece>)>,
    /// `n`.
    pub count: Option<u32>,
    /// Steps that must finish first.
    pub deps: BTreeSet<String>,
}

/// A checked pipeline, its steps in an order where every step follows what it needs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file as given.
    pub file: String,
    /// The folder its relative paths are read from.
    pub folder: PathBuf,
    /// The file's text.
    pub source: String,
    /// sha256 of the file.
    pub sha256: String,
    /// Its name.
    pub name: Option<String>,
    /// Declared inputs.
    pub inputs: BTreeMap<String, InputSpec>,
    /// Steps running at once.
    pub max_parallel: usize,
    /// After a failed step.
    pub on_error: OnError,
    /// The limits of this run: the configuration's, tightened by the file.
    pub cost: CostManagement,
    /// The steps, in dependency order.
    pub steps: Vec<Step>,
}

impl Pipeline {
    /// The step with this id.
    #[must_use]
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}
