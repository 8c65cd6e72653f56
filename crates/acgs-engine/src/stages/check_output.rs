//! Stage 11: honour the provider's safety signals. A blocked output is a failure; flagged
//! artifacts (`has_nsfw_concepts`) are dropped and never written.

use acgs_core::provider::{Charge, FailureClass, ProviderError};
use acgs_core::request::Output;

use crate::error::EngineError;

/// More media than the request asked for (`asked`: outputs per request × requests) is a
/// provider failure: nothing is stored, and it is settled at the estimate, never beyond it.
/// Text renderings of one answer (a transcript's text, JSON and subtitles) are not counted.
pub(crate) fn check_count(output: &Output, asked: u64) -> Result<(), ProviderError> {
    let media = output
        .artifacts
        .iter()
        .filter(|a| !matches!(a, acgs_core::request::Artifact::Text { .. }))
        .count() as u64;
    if media > asked {
        return Err(ProviderError::new(
            FailureClass::Other,
            "provider.too_many_outputs",
            format!(
                "the provider returned {media} outputs where {asked} were asked for; none was stored"
            ),
            Charge::Estimate,
        ));
    }
    Ok(())
}

/// The output without flagged artifacts, and a warning per dropped one.
pub(crate) fn check(mut output: Output) -> Result<(Output, Vec<String>), EngineError> {
    if let Some(reason) = output.safety.blocked.take() {
        return Err(EngineError::OutputBlocked {
            reason: reason
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect(),
        });
    }
    let flagged = std::mem::take(&mut output.safety.flagged);
    let total = output.artifacts.len();
    let mut index = 0;
    output.artifacts.retain(|_| {
        let keep = !flagged.contains(&index);
        index += 1;
        keep
    });
    if output.artifacts.is_empty() {
        if total > 0 && !flagged.is_empty() {
            return Err(EngineError::OutputFlagged {
                flagged: flagged.len(),
            });
        }
        return Err(ProviderError::new(
            FailureClass::Other,
            "provider.empty_output",
            "the provider returned no output",
            Charge::Estimate,
        )
        .into());
    }
    let warnings = (0..flagged.len().min(total))
        .map(|_| "an output flagged by the provider's safety checker was not written".to_owned())
        .collect();
    Ok((output, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::request::{Artifact, SafetyReport};

    fn output(n: usize, flagged: Vec<usize>) -> Output {
        Output {
            artifacts: (0..n)
                .map(|i| Artifact::Url {
                    url: format!("https://x/{i}.png"),
                    claimed_type: None,
                })
                .collect(),
            safety: SafetyReport {
                flagged,
                blocked: None,
            },
            ..Output::default()
        }
    }

    #[test]
    fn flagged_artifacts_are_dropped() {
        let (out, warnings) = check(output(3, vec![1])).expect("two left");
        assert_eq!(out.artifacts.len(), 2);
        assert_eq!(warnings.len(), 1);
        assert!(
            !out.artifacts
                .iter()
                .any(|a| matches!(a, Artifact::Url { url, .. } if url.ends_with("/1.png")))
        );
    }

    #[test]
    fn more_media_than_asked_is_a_provider_failure_settled_at_the_estimate() {
        let err = check_count(&output(300, vec![]), 1).expect_err("300 for 1");
        assert_eq!(err.code, "provider.too_many_outputs");
        assert_eq!(err.charge, Charge::Estimate);
        assert!(check_count(&output(4, vec![]), 4).is_ok());
        let mut transcript = output(0, vec![]);
        transcript.artifacts = (0..3)
            .map(|_| Artifact::Text {
                text: "hi".into(),
                content_type: acgs_core::ContentType::Text,
            })
            .collect();
        assert!(
            check_count(&transcript, 1).is_ok(),
            "renderings of one answer"
        );
    }

    #[test]
    fn all_flagged_or_blocked_is_an_error() {
        assert!(matches!(
            check(output(1, vec![0])),
            Err(EngineError::OutputFlagged { flagged: 1 })
        ));
        let mut blocked = output(1, vec![]);
        blocked.safety.blocked = Some("SAFETY".into());
        assert!(matches!(
            check(blocked),
            Err(EngineError::OutputBlocked { .. })
        ));
    }
}
