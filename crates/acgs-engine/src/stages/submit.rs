//! Stage 9: submit. Before the request the step is written to the manifest as `submitting` and,
//! at the same time, the reservation moved to `submitted` (so that a request whose outcome is
//! unknown keeps counting: it never expires); nothing is sent until both are done, so a step the
//! manifest still has `pending` was never sent, whatever its reservation says (`acgs resume`
//! releases it). The job handle the provider returns is then recorded in the ledger and the
//! manifest before any waiting.

use acgs_core::Provider;
use acgs_core::catalog::Params;
use acgs_core::ledger::{Ledger, ReservationId};
use acgs_core::request::{Authorized, Request, Submitted};
use acgs_storage::manifest::StepStatus;

use crate::error::EngineError;
use crate::run_state::RunState;

/// Submit `request`, keeping the manifest and the ledger in step. An error before sending
/// (manifest or ledger not writable) means nothing was sent.
pub(crate) async fn submit(
    provider: &dyn Provider,
    request: &Authorized<Request>,
    ledger: &dyn Ledger,
    reservation: &ReservationId,
    run: &RunState,
    step: &str,
) -> Result<Submitted, EngineError> {
    let journaled = run.update_step(step, |s| {
        s.status = StepStatus::Submitting;
        s.params = recorded(&request.get().params);
    });
    let (journaled, marked) = tokio::join!(journaled, ledger.mark_submitted(reservation, None));
    if let Err(e) = journaled {
        if marked.is_ok() {
            // Nothing was sent: the reservation must not keep counting.
            let _ = ledger.release(reservation).await;
        }
        return Err(e.into());
    }
    marked?;
    let submitted = provider.submit(request).await?;
    if let Submitted::Pending(job) = &submitted {
        if let Err(e) = ledger.mark_submitted(reservation, Some(job)).await {
            tracing::error!(
                code = acgs_core::UserFacing::code(&e),
                "the job handle could not be recorded in the ledger (the manifest has it)"
            );
        }
        run.update_step(step, |s| {
            s.status = StepStatus::Submitted;
            s.job = Some(job.clone());
            s.timings.submitted_at = Some(job.submitted_at);
        })
        .await?;
    }
    Ok(submitted)
}

/// The parameters as the manifest keeps them: an input sent inline as a `data:` URI is recorded
/// by its type, digest and size (`data:audio/wav;sha256=…;bytes=96044`), never its bytes — the
/// file's path is in the request record, and a 3-second WAV no longer makes a 130 KB manifest.
fn recorded(params: &Params) -> Params {
    params
        .iter()
        .map(|(name, value)| (name.clone(), without_inline_data(value)))
        .collect()
}

fn without_inline_data(value: &serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    match value {
        serde_json::Value::String(uri) => {
            let Some((mime, data)) = uri
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
            else {
                return value.clone();
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default();
            let digest = hex::encode(sha2::Sha256::digest(&bytes));
            serde_json::Value::String(format!("data:{mime};sha256={digest};bytes={}", bytes.len()))
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(without_inline_data).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn inline_inputs_are_recorded_by_digest_and_size() {
        let params = [
            (
                "audio_url".to_owned(),
                json!("data:audio/wav;base64,aGVsbG8="),
            ),
            (
                "image_urls".to_owned(),
                json!(["https://cdn/x.png", "data:image/png;base64,AA=="]),
            ),
            ("duration".to_owned(), json!(5)),
        ]
        .into_iter()
        .collect();
        let kept = super::recorded(&params);
        assert_eq!(
            kept["audio_url"],
            "data:audio/wav;sha256=2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824;bytes=5"
        );
        assert_eq!(kept["image_urls"][0], "https://cdn/x.png");
        assert!(
            kept["image_urls"][1]
                .as_str()
                .is_some_and(|u| u.ends_with(";bytes=1"))
        );
        assert_eq!(kept["duration"], 5);
    }
}
