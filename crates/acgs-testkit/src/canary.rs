//! Recognisable fake keys and every form in which a leak of them would show.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// A fake fal key in the real `uuid:hex32` shape.
pub const FAL_KEY: &str = "c4a1a7c0-ca4a-4ca1-8ca1-ca1ca1ca1ca1:ca1ca1ca1ca1deadbeefca1ca1ca1ca1"; // acgs:allow-credential
/// A fake Gemini key.
pub const GEMINI_KEY: &str = "AIzaSyCANARYcanary-0123456789abcdefghij"; // acgs:allow-credential
/// A fake ElevenLabs key.
pub const ELEVENLABS_KEY: &str = "sk_ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1ca1"; // acgs:allow-credential

/// Strings whose presence anywhere means `key` leaked: the key, each half of an `id:secret`
/// pair, and their base64 forms (standard and URL-safe).
#[must_use]
pub fn leak_forms(key: &str) -> Vec<String> {
    let mut parts = vec![key.to_owned()];
    if let Some((id, secret)) = key.split_once(':') {
        parts.push(id.to_owned());
        parts.push(secret.to_owned());
    }
    let mut forms = Vec::new();
    for part in parts {
        forms.push(STANDARD.encode(&part).trim_end_matches('=').to_owned());
        forms.push(URL_SAFE_NO_PAD.encode(&part));
        forms.push(part);
    }
    forms
}

/// The forms of `key` found in `haystack`, for assertion messages.
#[must_use]
pub fn leaks_in(haystack: &[u8], key: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(haystack);
    leak_forms(key)
        .into_iter()
        .filter(|form| text.contains(form.as_str()))
        .collect()
}
