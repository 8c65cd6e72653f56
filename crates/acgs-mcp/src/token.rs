//! The bearer token of `acgs mcp --http`: 32 random bytes, shown once as `acgs_mcp_<64 hex>`.
//! Only its SHA-256 is kept (0600, in the state folder), so the file lets nobody in; creating a
//! new token replaces the old one, which stops working.

use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use crate::error::McpError;

/// What every token starts with, so that scanners and people recognise one.
pub const PREFIX: &str = "acgs_mcp_";

/// The stored digest of the current token.
#[derive(Clone)]
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

impl TokenDigest {
    /// Whether `presented` is the token (compared in time independent of where it differs).
    #[must_use]
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Hand-written rather than a crate: 32 fixed bytes, one fold, no early exit.
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Create a token, keep its digest at `path` (replacing any earlier one) and return it: the only
/// time it exists in full.
pub fn create(path: &Path) -> Result<SecretString, McpError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(McpError::io("drawing a random token"))?;
    let token = SecretString::from(format!("{PREFIX}{}", hex::encode(bytes)));
    let digest = hex::encode(Sha256::digest(token.expose_secret().as_bytes()));
    if let Some(dir) = path.parent() {
        acgs_storage::ensure_private_dir(dir).map_err(McpError::io("creating the state folder"))?;
    }
    acgs_storage::replace_private(path, format!("{digest}\n").as_bytes())
        .map_err(McpError::io("storing the token digest"))?;
    Ok(token)
}

/// The digest kept at `path`; [`McpError::NoToken`] when none was created.
pub fn load(path: &Path) -> Result<TokenDigest, McpError> {
    let text = acgs_core::files::read_regular_text(path, 1024).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            McpError::NoToken
        } else {
            McpError::io("reading the token digest")(e)
        }
    })?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut digest).map_err(|_| McpError::Io {
        what: "reading the token digest",
        reason: format!("{} is not a digest acgs wrote", path.display()),
    })?;
    Ok(TokenDigest(digest))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    #[test]
    fn only_the_created_token_is_accepted_and_only_its_digest_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state").join("mcp-token.sha256");
        let token = super::create(&path).expect("created");
        let token = token.expose_secret();
        assert!(token.starts_with(super::PREFIX) && token.len() == 9 + 64);
        let kept = fs_err::read_to_string(&path).expect("kept");
        assert!(
            !kept.contains(&token[9..]),
            "the token itself is not stored"
        );
        let digest = super::load(&path).expect("loaded");
        assert!(digest.accepts(token));
        assert!(!digest.accepts(&token[..token.len() - 1]));
        assert!(!digest.accepts(""));
        let newer = super::create(&path).expect("replaced");
        let digest = super::load(&path).expect("loaded");
        assert!(digest.accepts(newer.expose_secret()));
        assert!(!digest.accepts(token), "the old token stops working");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs_err::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn no_token_is_its_own_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = super::load(&dir.path().join("none")).expect_err("missing");
        assert_eq!(acgs_core::UserFacing::code(&err), "mcp.no_token");
    }
}
