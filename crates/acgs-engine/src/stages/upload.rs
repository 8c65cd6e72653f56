//! Stage 8: upload local inputs and point their fields at the uploaded copies (one URL for a
//! media field, a list for a media-list field).

use acgs_core::Provider;
use acgs_core::catalog::{ModelSpec, ParamType, Params};
use acgs_core::provider::ProviderError;
use acgs_core::request::{LocalInput, RemoteRef};
use serde_json::Value;

/// Upload every input through `provider`, setting its field in `params`. Returns the remote
/// references (some must be deleted after the run).
pub(crate) async fn upload(
    provider: &dyn Provider,
    model: &ModelSpec,
    inputs: Vec<LocalInput>,
    params: &mut Params,
) -> Result<Vec<RemoteRef>, ProviderError> {
    let mut refs = Vec::with_capacity(inputs.len());
    for input in inputs {
        let field = input.field.clone();
        let remote = provider.upload(input).await?;
        let url = Value::String(remote.url.clone());
        let is_list = model
            .params
            .get(&field)
            .is_some_and(|p| p.ty == ParamType::MediaList);
        if is_list {
            match params
                .entry(field)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(url),
                other => *other = Value::Array(vec![url]),
            }
        } else {
            params.insert(field, url);
        }
        refs.push(remote);
    }
    Ok(refs)
}
