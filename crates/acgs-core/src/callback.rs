//! Provider callbacks (webhooks): a provider may announce that a job ended by calling the
//! service back. A callback is only ever a wake-up: whoever waits for the job still fetches
//! and checks its result, so a forged or replayed callback can at most make a waiter look
//! early. [`CallbackVerifier`] is how an entrance checks one (the provider's crate knows the
//! signature scheme); [`JobWakeups`] is how a verified one reaches the waiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Why a provider callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct CallbackRefusal {
    /// A stable code (`webhook.unsigned`, `webhook.bad_signature`, `webhook.stale`,
    /// `webhook.keys_unavailable`).
    pub code: &'static str,
    /// What was wrong, for the log.
    pub reason: String,
}

/// Checks a provider's callbacks.
#[async_trait::async_trait]
pub trait CallbackVerifier: Send + Sync + std::fmt::Debug {
    /// The provider job a callback with these `headers` (names in lowercase) and these exact
    /// `body` bytes is about, once its signature and freshness check out.
    async fn verify(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<String, CallbackRefusal>;
}

/// Waiters for provider jobs, by the provider's job id; clones share one set.
#[derive(Debug, Clone, Default)]
pub struct JobWakeups(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl JobWakeups {
    /// The wake-up of job `id`, registered until [`JobWakeups::forget`].
    #[must_use]
    pub fn waiter(&self, id: &str) -> Arc<Notify> {
        let Ok(mut map) = self.0.lock() else {
            return Arc::new(Notify::new());
        };
        Arc::clone(map.entry(id.to_owned()).or_default())
    }

    /// Stop waiting for job `id`.
    pub fn forget(&self, id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(id);
        }
    }

    /// Wake whoever waits for job `id`; whether anyone in this process does.
    pub fn wake(&self, id: &str) -> bool {
        let waiter = self.0.lock().ok().and_then(|map| map.get(id).cloned());
        waiter.is_some_and(|w| {
            w.notify_one();
            true
        })
    }
}
