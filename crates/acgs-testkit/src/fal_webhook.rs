//! fal's side of a webhook: Ed25519 keys published as a JWKS, and deliveries signed the way fal
//! signs them (`request_id \n user_id \n timestamp \n hex(sha256(body))`, hex signature).

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One of fal's signing keys.
#[derive(Debug)]
pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    /// A fresh key.
    ///
    /// # Panics
    /// When the system has no randomness.
    #[must_use]
    pub fn generate() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the key just made");
        Self { pair }
    }

    /// Its JWK, as fal publishes it.
    #[must_use]
    pub fn jwk(&self) -> Value {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.pair.public_key());
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": &x[..8]})
    }

    /// The headers of a delivery of `body` about `request_id`, sent at `timestamp`.
    #[must_use]
    pub fn headers(&self, request_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
        let user = "fal-user-1";
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        let message = format!(
            "{request_id}\n{user}\n{timestamp}\n{}",
            hex::encode(digest.as_ref())
        );
        let signature = self.pair.sign(message.as_bytes());
        vec![
            ("x-fal-webhook-request-id".into(), request_id.into()),
            ("x-fal-webhook-user-id".into(), user.into()),
            ("x-fal-webhook-timestamp".into(), timestamp.to_string()),
            (
                "x-fal-webhook-signature".into(),
                hex::encode(signature.as_ref()),
            ),
        ]
    }
}

/// Serve `signers`' keys at `/.well-known/jwks.json`; the key set's URL.
pub async fn serve_jwks(server: &MockServer, signers: &[&Signer]) -> String {
    let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": keys})))
        .mount(server)
        .await;
    format!("{}/.well-known/jwks.json", server.uri())
}
