//! [`JobHandle`]: a provider job as the manifest and the ledger keep it, so that a run can wait
//! for it again from another process.

use serde::{Deserialize, Serialize};

use crate::task::ProviderId;

/// Current schema version of [`JobHandle`].
pub const JOB_HANDLE_SCHEMA: u32 = 1;

/// How a job is found again at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobRef {
    /// A queue request (fal).
    Queue {
        /// The request id.
        request_id: String,
    },
    /// A long-running operation (Veo).
    Operation {
        /// The operation name.
        operation_name: String,
    },
}

/// A submitted job, persisted before waiting so that `acgs resume` can re-attach.
/// URLs are always rebuilt from the configured base and the id, never read from disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHandle {
    /// [`JOB_HANDLE_SCHEMA`] when written.
    pub schema_version: u32,
    /// The provider.
    pub provider: ProviderId,
    /// Catalogue key.
    pub model: String,
    /// Endpoint or model id.
    pub endpoint: String,
    /// The job reference.
    #[serde(flatten)]
    pub job: JobRef,
    /// When it was submitted.
    pub submitted_at: jiff::Timestamp,
}

impl JobHandle {
    /// The id used in URLs, checked to be a plain token (`[A-Za-z0-9._/-]`, no `..`).
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        let id = match &self.job {
            JobRef::Queue { request_id } => request_id.as_str(),
            JobRef::Operation { operation_name } => operation_name.as_str(),
        };
        is_plain_token(id).then_some(id)
    }
}

/// Whether `id` is safe to put into a URL path: 1–256 of `[A-Za-z0-9._/-]`, no `..`, no leading `/`.
#[must_use]
pub fn is_plain_token(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && !id.starts_with('/')
        && !id.contains("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_handles_round_trip_with_a_kind_tag() {
        let handle = JobHandle {
            schema_version: JOB_HANDLE_SCHEMA,
            provider: ProviderId::Fal,
            model: "flux_dev".into(),
            endpoint: "fal-ai/flux/dev".into(),
            job: JobRef::Queue {
                request_id: "80e732af-1".into(),
            },
            submitted_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&handle).expect("serializes");
        assert_eq!(json["kind"], "queue");
        assert_eq!(json["request_id"], "80e732af-1");
        let back: JobHandle = serde_json::from_value(json).expect("parses");
        assert_eq!(back, handle);
    }

    #[test]
    fn ids_from_disk_must_be_plain_tokens() {
        assert!(is_plain_token("80e732af-aaaa-bbbb"));
        assert!(is_plain_token("models/veo-3/operations/abc123"));
        for bad in ["", "../x", "/abs", "a?b=c", "a b", "http://evil", "a%2e%2e"] {
            assert!(!is_plain_token(bad), "{bad:?}");
        }
    }
}
