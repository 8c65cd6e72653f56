//! Streaming downloads into any writer, with a size cap, an idle timeout and sha256 on the fly.

use acgs_core::provider::{Charge, FailureClass, ProviderError};
use acgs_core::redact::Redactor;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use url::Url;

use crate::client::{Credential, HttpClient, HttpRequest, target_of};
use crate::error::HttpError;
use crate::retry::Classifier;

/// What a download wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Bytes written.
    pub bytes: u64,
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// The Content-Type the server claimed (never trusted for the stored type).
    pub claimed_type: Option<String>,
}

impl HttpClient {
    /// A provider's result: `url` as the provider returned it, streamed into `sink` with the
    /// provider's `credential` (sent only to its own origin). A URL that does not parse is a bad
    /// response; HTTP failures are classified by `classify` as [`crate::provider_error`] does.
    pub async fn download_result(
        &self,
        provider: &str,
        url: &str,
        credential: &Credential,
        sink: &mut (dyn AsyncWrite + Unpin + Send),
        cap: u64,
        classify: Classifier<'_>,
    ) -> Result<u64, ProviderError> {
        let url = Url::parse(url).map_err(|_| {
            ProviderError::new(
                FailureClass::Other,
                "provider.bad_response",
                format!("{provider} returned a result URL that is not a URL"),
                Charge::Estimate,
            )
        })?;
        let download = self
            .download_to(&url, Some(credential), sink, cap)
            .await
            .map_err(|e| crate::provider_error(provider, e, classify))?;
        Ok(download.bytes)
    }

    /// Stream `url` into `writer`. Credentials go only to the credential's own origin, so result
    /// media on other hosts is fetched without them. Fails on more than `cap` bytes, on a
    /// truncated body, and after `read_idle_timeout` without a byte. No decompression happens.
    pub async fn download_to<W>(
        &self,
        url: &Url,
        credential: Option<&Credential>,
        writer: &mut W,
        cap: u64,
    ) -> Result<Download, HttpError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut request = HttpRequest::get(url.clone()).cap(cap);
        if let Some(credential) = credential {
            request = request.credential(credential);
        }
        let response = self.open_response(&request).await?;
        let final_url = response.url().clone();
        let target = target_of(&final_url);
        let expected = response.content_length();
        if expected.is_some_and(|len| len > cap) {
            return Err(HttpError::TooLarge { target, cap });
        }
        let claimed_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let idle = self.policy().read_idle_timeout;
        let mut hasher = Sha256::new();
        let mut total: u64 = 0;
        let mut stream = response.bytes_stream();
        loop {
            let next = tokio::time::timeout(idle, stream.next())
                .await
                .map_err(|_| HttpError::Timeout {
                    target: target.clone(),
                    phase: "idle read",
                    seconds: idle.as_secs(),
                })?;
            let Some(chunk) = next else { break };
            let chunk =
                chunk.map_err(|e| transfer_error(self.redactor(), &target, e, total, expected))?;
            total = total.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            if total > cap {
                return Err(HttpError::TooLarge { target, cap });
            }
            hasher.update(&chunk);
            writer
                .write_all(&chunk)
                .await
                .map_err(|e| HttpError::Write(e.kind().to_string()))?;
        }
        if let Some(expected) = expected.filter(|len| *len != total) {
            return Err(HttpError::Truncated {
                target,
                got: total,
                expected,
            });
        }
        writer
            .flush()
            .await
            .map_err(|e| HttpError::Write(e.kind().to_string()))?;
        Ok(Download {
            bytes: total,
            sha256: hex_lower(&hasher.finalize()),
            claimed_type,
        })
    }
}

fn transfer_error(
    redactor: &Redactor,
    target: &str,
    error: reqwest::Error,
    got: u64,
    expected: Option<u64>,
) -> HttpError {
    match expected {
        Some(expected) if got < expected => HttpError::Truncated {
            target: target.to_owned(),
            got,
            expected,
        },
        _ => HttpError::Transfer {
            target: target.to_owned(),
            detail: redactor
                .redact(&error.without_url().to_string())
                .into_owned(),
        },
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
