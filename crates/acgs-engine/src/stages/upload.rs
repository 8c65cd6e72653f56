//! Stage 8: upload local inputs and point their fields at the uploaded copies.

use acgs_core::Provider;
use acgs_core::catalog::Params;
use acgs_core::provider::ProviderError;
use acgs_core::request::{LocalInput, RemoteRef};
use serde_json::Value;

/// Upload every input through `provider`, setting its field in `params`. Returns the remote
/// references (some must be deleted after the run).
pub async fn upload(
    provider: &dyn Provider,
    inputs: Vec<LocalInput>,
    params: &mut Params,
) -> Result<Vec<RemoteRef>, ProviderError> {
    let mut refs = Vec::with_capacity(inputs.len());
    for input in inputs {
        let field = input.field.clone();
        let remote = provider.upload(input).await?;
        params.insert(field, Value::String(remote.url.clone()));
        refs.push(remote);
    }
    Ok(refs)
}
