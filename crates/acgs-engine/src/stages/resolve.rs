//! Stage 1: resolve the model key (an unknown key names the closest ones).

use std::sync::Arc;

use acgs_core::catalog::{Catalog, ModelSpec};
use acgs_core::task::TaskKind;

use crate::error::EngineError;

/// The model for `name` (`key` or `provider:key`), checked to do one of `tasks` when given.
pub(crate) fn resolve(
    catalog: &Catalog,
    name: &str,
    tasks: &[TaskKind],
) -> Result<Arc<ModelSpec>, EngineError> {
    let model = catalog.resolve(name)?;
    if !tasks.is_empty() && !tasks.contains(&model.task) {
        return Err(EngineError::WrongTask {
            model: model.key.clone(),
            actual: model.task.to_string(),
            expected: tasks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        });
    }
    Ok(model)
}
