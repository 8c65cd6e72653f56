//! YAML pipelines (DESIGN.md §3.7): a typed DAG of steps, fully checked before a cent is spent,
//! run with independent steps at once, and resumable.
//!
//! - `schema`: the version-1 file, parsed with hard limits;
//! - `refs`: `{{ inputs.NAME }}`, `{{ steps.ID.OUTPUT }}`, lists and their items;
//! - `validate`: every problem at once, each with its line and step (`order`: the order steps
//!   run in; `paths`: the files it may name; `settings`: the run's limits; `tools`: ffmpeg and ffprobe; `expand`: steps
//!   that run once per item, and whole lists, made plain);
//! - `finished`: what a finished step leaves for later steps;
//! - `plan`: each step's request (with worst-case stand-ins for what earlier steps will make,
//!   for the estimate);
//! - `estimate`: loading a file and pricing every step;
//! - `run`: the entrance — the run admitted whole by the driver, then scheduled;
//! - `schedule`: each step through the driver as soon as what it references is ready;
//! - `import`: a chain file of the Python suite (`chain`: its shape) converted into a version-1
//!   pipeline.

mod chain;
pub(crate) mod estimate;
mod expand;
mod finished;
mod import;
mod order;
mod paths;
pub(crate) mod plan;
mod refs;
mod run;
pub(crate) mod schedule;
pub(crate) mod schema;
mod settings;
mod tools;
pub(crate) mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use acgs_core::catalog::ModelSpec;
use acgs_core::config::CostManagement;

pub use crate::problems::{Problem, Problems};
pub use import::{Imported, import_chain};
pub use refs::{OutputKind, Piece, Ref};
pub use run::PIPELINE_COPY;
pub(crate) use run::run;
pub use schema::{InputSpec, InputType, MAX_FILE_BYTES, OnError};
pub use validate::check;

/// Input values from the YAML (or JSON) text of an `--input-file`: a map of names to single
/// values (text, numbers, true/false), read with the same limits as a pipeline file.
pub fn parse_inputs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let map: BTreeMap<String, schema::Scalar> = schema::parse(text)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Where a step's media field gets its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// A file under the pipeline's own folder.
    Path(PathBuf),
    /// An input or an earlier step's output.
    Ref(Ref),
    /// One item of a list gathered into a list field: left out when the list turns out
    /// shorter than its bound.
    Item(Ref),
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
    /// For one copy of a step that runs once per item (`clips.2`): the item. When the list
    /// turns out shorter, the copy is skipped and its reservation released.
    pub item: Option<Ref>,
    /// `each`, until the file's check makes the step its copies.
    pub(crate) each: Option<Ref>,
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
