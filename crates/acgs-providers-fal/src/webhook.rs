//! fal's webhooks (see "Webhooks" in the provider reference, E.7): a job submitted with
//! `?fal_webhook=URL` is announced there when it ends, signed with Ed25519 by one of the keys
//! fal publishes as a JWKS. [`FalWebhooks`] checks a delivery: every header present, the
//! timestamp within 5 minutes of our clock, and the signature over
//! `request_id \n user_id \n timestamp \n hex(sha256(raw body))` verified by any published key.
//! The key set is cached for 24 hours and fetched again once when a signature fails against a
//! cached set. The body is never parsed here: a verified callback only names its request id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use acgs_core::callback::{CallbackRefusal, CallbackVerifier};
use acgs_http::{HttpClient, HttpRequest};
use base64::Engine as _;
use serde::Deserialize;
use url::Url;

/// How long a fetched key set is used.
const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// How far a delivery's timestamp may be from our clock.
const SKEW_SECS: i64 = 300;
/// A signature that fails against cached keys fetches them again only if they are older than
/// this: forged deliveries cannot make us fetch the key set on every request.
const REFETCH_AFTER: Duration = Duration::from_secs(300);
/// The largest key set read.
const JWKS_CAP: u64 = 64 * 1024;
/// Checks fal's webhook deliveries against its published keys.
#[derive(Debug)]
pub struct FalWebhooks {
    http: HttpClient,
    jwks: Url,
    keys: tokio::sync::Mutex<Cached>,
}

/// The keys last fetched, and when a fetch was last tried.
#[derive(Debug, Default)]
struct Cached {
    keys: Vec<[u8; 32]>,
    attempted: Option<Instant>,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
}

fn refusal(code: &'static str, reason: impl Into<String>) -> CallbackRefusal {
    CallbackRefusal {
        code,
        reason: reason.into(),
    }
}

impl FalWebhooks {
    /// A verifier reading fal's keys from `jwks` (`providers.fal.jwks_url`) with `http` (its
    /// address policy applies).
    pub fn new(http: HttpClient, jwks: Url) -> Result<Self, acgs_http::HttpError> {
        http.check_url(&jwks)?;
        Ok(Self {
            http,
            jwks,
            keys: tokio::sync::Mutex::new(Cached::default()),
        })
    }

    /// The keys, fetched again when the last attempt is older than `max_age`. One fetch at a
    /// time (deliveries arriving together wait for it); a failed fetch is timed like a good
    /// one, so forged deliveries cannot make the service fetch on every request, and the keys
    /// fetched before are kept.
    async fn keys(&self, max_age: Duration) -> Result<Vec<[u8; 32]>, CallbackRefusal> {
        let mut cached = self.keys.lock().await;
        let fresh = cached.attempted.is_some_and(|at| at.elapsed() < max_age);
        if !fresh {
            cached.attempted = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => cached.keys = keys,
                Err(e) if cached.keys.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(reason = %e, "fal's keys could not be fetched; keeping those fetched before")
                }
            }
        }
        if cached.keys.is_empty() {
            return Err(refusal(
                "webhook.keys_unavailable",
                "fal's keys could not be fetched",
            ));
        }
        Ok(cached.keys.clone())
    }

    /// The Ed25519 keys of the key set, fetched now.
    async fn fetch(&self) -> Result<Vec<[u8; 32]>, CallbackRefusal> {
        let unavailable = |e: String| refusal("webhook.keys_unavailable", e);
        let response = self
            .http
            .execute(&HttpRequest::get(self.jwks.clone()).cap(JWKS_CAP))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let set: KeySet = response.json().map_err(|e| unavailable(e.to_string()))?;
        let keys: Vec<[u8; 32]> = set
            .keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(k.x.trim_end_matches('='))
                    .ok()?;
                <[u8; 32]>::try_from(raw.as_slice()).ok()
            })
            .collect();
        if keys.is_empty() {
            return Err(unavailable("the key set holds no Ed25519 key".into()));
        }
        Ok(keys)
    }
}

/// The message fal signs, from the headers and the raw body.
fn signed_message(request_id: &str, user_id: &str, timestamp: &str, body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    format!(
        "{request_id}\n{user_id}\n{timestamp}\n{}",
        hex::encode(digest.as_ref())
    )
}

fn verified_by_any(keys: &[[u8; 32]], message: &[u8], signature: &[u8]) -> bool {
    keys.iter().any(|key| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(message, signature)
            .is_ok()
    })
}

#[async_trait::async_trait]
impl CallbackVerifier for FalWebhooks {
    async fn verify(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<String, CallbackRefusal> {
        let header = |name: &str| {
            headers
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| refusal("webhook.unsigned", format!("no {name} header")))
        };
        let request_id = header("x-fal-webhook-request-id")?;
        let user_id = header("x-fal-webhook-user-id")?;
        let timestamp = header("x-fal-webhook-timestamp")?;
        let signature = hex::decode(header("x-fal-webhook-signature")?)
            .map_err(|_| refusal("webhook.bad_signature", "the signature is not hex"))?;
        let sent: i64 = timestamp
            .parse()
            .map_err(|_| refusal("webhook.stale", "the timestamp is not a number"))?;
        if (jiff::Timestamp::now().as_second() - sent).abs() > SKEW_SECS {
            return Err(refusal(
                "webhook.stale",
                "the timestamp is more than 5 minutes from now",
            ));
        }
        if !acgs_core::request::is_plain_token(request_id) {
            return Err(refusal(
                "webhook.bad_signature",
                "the request id is not plain",
            ));
        }
        let message = signed_message(request_id, user_id, timestamp, body);
        if verified_by_any(&self.keys(KEYS_TTL).await?, message.as_bytes(), &signature)
            || verified_by_any(
                &self.keys(REFETCH_AFTER).await?,
                message.as_bytes(),
                &signature,
            )
        {
            return Ok(request_id.to_owned());
        }
        Err(refusal(
            "webhook.bad_signature",
            "no published fal key verifies the signature",
        ))
    }
}
