//! Client callbacks: a job may name a URL of its owner's, and when it ends acgs posts its final
//! state there, signed in the Standard Webhooks format (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`) with the owner's own
//! secret (`GET /v1/callback-secret`, `whsec_…`).
//!
//! Callbacks go through acgs's own HTTP client and its address policy: https only, and never
//! to private, loopback, link-local or other special ranges — checked on the URL at the door
//! and again on every address a name resolves to when it is sent (so a name cannot be rebound
//! to an inside address later). `acgs serve --allow-private-callbacks` allows loopback (plain
//! http to a loopback address included). A delivery is tried up to 5 times, 1 s to 8 s apart,
//! each attempt within 15 s; at most 256 are in flight per process; a callback never changes
//! the job. Deliveries still retrying when the process stops are lost (logged).

use std::time::Duration;

use acgs_http::{HttpClient, HttpRequest};
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::error::ServerError;
use crate::store::random_hex;

/// How many times a callback is sent before it is given up (logged).
const ATTEMPTS: u32 = 5;
/// How long one attempt may take.
const ATTEMPT_TIME: Duration = Duration::from_secs(15);
/// The first wait between attempts; each later one doubles.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest callback URL accepted.
const MAX_URL: usize = 2048;

/// The records' name of `user`'s callback secret.
pub(crate) fn secret_name(user: &str) -> String {
    format!("callback_secret:{user}")
}

/// A fresh secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64.
pub(crate) fn fresh_secret() -> Result<String, ServerError> {
    let bytes = hex::decode(random_hex(32)?)
        .map_err(|e| ServerError::Store(format!("no randomness: {e}")))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Check a callback URL at the door against `client`'s policy.
pub(crate) fn check(client: &HttpClient, url: &str) -> Result<url::Url, ServerError> {
    let refused = |why: String| ServerError::BadRequest(format!("callback_url: {why}"));
    if url.len() > MAX_URL {
        return Err(refused(format!("longer than {MAX_URL} characters")));
    }
    let parsed = url::Url::parse(url).map_err(|e| refused(e.to_string()))?;
    client
        .check_url(&parsed)
        .map_err(|e| refused(format!("{e}; private, loopback and link-local addresses are refused unless the operator allows them")))?;
    Ok(parsed)
}

/// The `webhook-signature` of `body` sent as message `id` at `timestamp` with `secret`.
pub(crate) fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let tag = mac.finalize().into_bytes();
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ))
}

/// Post `body` (the job's final state) to `url` as message `id`, signed with `secret`,
/// retrying with backoff; gives up after 5 attempts, logged.
pub(crate) async fn deliver(
    client: HttpClient,
    url: url::Url,
    secret: String,
    id: String,
    body: String,
) {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let timestamp = jiff::Timestamp::now().as_second();
        let Some(signature) = sign(&secret, &id, timestamp, &body) else {
            tracing::error!(message = %id, "the callback secret is malformed");
            return;
        };
        let request = HttpRequest::new(acgs_http::Method::Post, url.clone())
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp.to_string())
            .header("webhook-signature", &signature)
            .bytes(body.clone().into(), "application/json")
            .cap(64 * 1024);
        match tokio::time::timeout(ATTEMPT_TIME, client.execute(&request)).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => tracing::warn!(message = %id, attempt, error = %e, "a callback failed"),
            Err(_) => tracing::warn!(message = %id, attempt, "a callback took longer than 15 s"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    tracing::error!(message = %id, "a callback was given up after {ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign("no-prefix", "m", 1, "{}"), None);
    }
}
