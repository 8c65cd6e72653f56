//! Local inputs onto fal's CDN (shared/reference/providers.md §A.7, flow 1): a small file becomes a
//! data URI; anything else is uploaded with a short-lived CDN token — in one request, or in 10 MiB
//! parts above 100 MiB — with an object lifetime of one day.
//!
//! The CDN token and the CDN base URL come from fal's REST API. The base URL is checked against
//! the network policy like any URL from a response; the token is bound to that URL's origin and
//! taught to the redactor. The fal key itself only ever goes to the configured REST origin.

use acgs_core::provider::{Charge, FailureClass, ProviderError, ProviderResult};
use acgs_core::request::{LocalInput, RemoteRef, is_plain_token};
use acgs_http::{
    Credential, HttpClient, HttpRequest, HttpResponse, Method, RetryPolicy, provider_error,
};
use base64::Engine as _;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;

use crate::protocol::classify;

/// Inputs up to this size are sent inline as data URIs.
pub const DATA_URI_MAX: u64 = 256 * 1024;
/// Above this size uploads go in parts.
pub const MULTIPART_THRESHOLD: u64 = 100 * 1024 * 1024;
/// Size of one part.
pub const PART_SIZE: u64 = 10 * 1024 * 1024;
/// Uploaded inputs expire after a day.
pub const LIFECYCLE: &str = r#"{"expiration_duration_seconds":86400}"#;

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
    token_type: String,
    base_url: String,
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Clone)]
struct CdnToken {
    credential: Credential,
    base: Url,
    expires_at: Option<jiff::Timestamp>,
}

#[derive(Deserialize)]
struct UploadResponse {
    access_url: String,
}

#[derive(Deserialize)]
struct MultipartStart {
    access_url: String,
    #[serde(rename = "uploadId")]
    upload_id: String,
}

/// Uploads inputs for one fal provider.
pub(crate) struct Uploader {
    http: HttpClient,
    rest: Url,
    rest_credential: Credential,
    retry: RetryPolicy,
    token: Mutex<Option<CdnToken>>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uploader({})", self.rest)
    }
}

fn bad(message: &str) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.bad_response",
        message,
        Charge::Release,
    )
}

fn io_error(input: &LocalInput, e: &std::io::Error) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "input.unreadable",
        format!("could not read {} ({})", input.file_name, e.kind()),
        Charge::Release,
    )
}

impl Uploader {
    pub(crate) fn new(
        http: HttpClient,
        rest: Url,
        key: &SecretString,
        retry: RetryPolicy,
    ) -> Result<Self, acgs_http::HttpError> {
        let rest_credential = Credential::new(&rest, "authorization", "Key ", key)?;
        Ok(Self {
            http,
            rest,
            rest_credential,
            retry,
            token: Mutex::new(None),
        })
    }

    /// Upload `input`; the URL fal should read it from.
    pub(crate) async fn upload(&self, input: &LocalInput) -> ProviderResult<RemoteRef> {
        if input.size <= DATA_URI_MAX {
            let bytes = input
                .read_at(0, usize::try_from(input.size).unwrap_or(0))
                .map_err(|e| io_error(input, &e))?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            return Ok(RemoteRef {
                url: format!("data:{};base64,{encoded}", input.content_type.mime()),
                delete_after_run: None,
            });
        }
        let token = self.token().await?;
        let url = if input.size > MULTIPART_THRESHOLD {
            self.multipart(&token, input).await?
        } else {
            self.single(&token, input).await?
        };
        Ok(RemoteRef {
            url,
            delete_after_run: None,
        })
    }

    async fn call(&self, request: HttpRequest<'_>) -> ProviderResult<HttpResponse> {
        self.http
            .execute_retrying(&request, &self.retry, &classify)
            .await
            .map_err(|e| provider_error("fal", e, &classify))
    }

    /// A CDN token, reused until it expires.
    async fn token(&self) -> ProviderResult<CdnToken> {
        let mut cached = self.token.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|t| t.expires_at.is_none_or(|at| at > jiff::Timestamp::now()));
        if let (true, Some(token)) = (fresh, cached.as_ref()) {
            return Ok(token.clone());
        }
        let mut url = self.rest.clone();
        url.set_path(&format!(
            "{}/storage/auth/token",
            self.rest.path().trim_end_matches('/')
        ));
        url.set_query(Some("storage_type=fal-cdn-v3"));
        let response = self
            .call(
                HttpRequest::new(Method::Post, url)
                    .credential(&self.rest_credential)
                    .json(json!({})),
            )
            .await?;
        let body: TokenResponse = response
            .json()
            .map_err(|_| bad("fal's token answer is not the expected JSON"))?;
        self.http.redactor().add_literal(&body.token);
        let base = Url::parse(body.base_url.trim_end_matches('/'))
            .map_err(|_| bad("fal's CDN URL is not a URL"))?;
        self.http
            .check_url(&base)
            .map_err(|e| provider_error("fal", e, &classify))?;
        let scheme = if body.token_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            body.token_type
        } else {
            "Bearer".into()
        };
        let credential = Credential::new(
            &base,
            "authorization",
            &format!("{scheme} "),
            &SecretString::from(body.token),
        )
        .map_err(|e| provider_error("fal", e, &classify))?;
        let token = CdnToken {
            credential,
            base,
            expires_at: body.expires_at.and_then(|t| t.parse().ok()),
        };
        *cached = Some(token.clone());
        Ok(token)
    }

    fn cdn_url(base: &Url, path: &str) -> ProviderResult<Url> {
        Url::parse(&format!("{}/{path}", base.as_str().trim_end_matches('/')))
            .map_err(|_| bad("could not build a CDN URL"))
    }

    fn checked(&self, raw: &str) -> ProviderResult<Url> {
        let url = Url::parse(raw)
            .map_err(|_| bad("fal's CDN returned an access URL that is not a URL"))?;
        self.http
            .check_url(&url)
            .map_err(|e| provider_error("fal", e, &classify))?;
        Ok(url)
    }

    fn upload_request<'a>(
        &self,
        token: &'a CdnToken,
        url: Url,
        input: &LocalInput,
    ) -> HttpRequest<'a> {
        HttpRequest::new(Method::Post, url)
            .credential(&token.credential)
            .header("x-fal-file-name", &input.file_name)
            .header("x-fal-object-lifecycle", LIFECYCLE)
    }

    async fn single(&self, token: &CdnToken, input: &LocalInput) -> ProviderResult<String> {
        let bytes = input
            .read_at(0, usize::try_from(input.size).unwrap_or(0))
            .map_err(|e| io_error(input, &e))?;
        let url = Self::cdn_url(&token.base, "files/upload")?;
        let request = self
            .upload_request(token, url, input)
            .bytes(bytes.into(), input.content_type.mime());
        let body: UploadResponse = self
            .call(request)
            .await?
            .json()
            .map_err(|_| bad("fal's upload answer is not the expected JSON"))?;
        Ok(self.checked(&body.access_url)?.to_string())
    }

    async fn multipart(&self, token: &CdnToken, input: &LocalInput) -> ProviderResult<String> {
        let url = Self::cdn_url(&token.base, "files/upload/multipart")?;
        let request = self
            .upload_request(token, url, input)
            .bytes(bytes::Bytes::new(), input.content_type.mime());
        let start: MultipartStart = self
            .call(request)
            .await?
            .json()
            .map_err(|_| bad("fal's multipart answer is not the expected JSON"))?;
        if !is_plain_token(&start.upload_id) {
            return Err(bad("fal's multipart upload id is not a plain token"));
        }
        let access = self.checked(&start.access_url)?;
        let base = access.as_str().trim_end_matches('/').to_owned();
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1u64;
        while offset < input.size {
            let len = PART_SIZE.min(input.size - offset);
            let chunk = input
                .read_at(offset, usize::try_from(len).unwrap_or(0))
                .map_err(|e| io_error(input, &e))?;
            let url = Url::parse(&format!("{base}/multipart/{}/{number}", start.upload_id))
                .map_err(|_| bad("bad part URL"))?;
            let request = HttpRequest::new(Method::Put, url)
                .credential(&token.credential)
                .header("accept-encoding", "identity")
                .bytes(chunk.into(), "application/octet-stream");
            let response = self.call(request).await?;
            let etag = response
                .header("etag")
                .ok_or_else(|| bad("fal's CDN returned no ETag for a part"))?
                .to_owned();
            parts.push(json!({"partNumber": number, "etag": etag}));
            offset += len;
            number += 1;
        }
        let url = Url::parse(&format!("{base}/multipart/{}/complete", start.upload_id))
            .map_err(|_| bad("bad URL"))?;
        self.call(
            HttpRequest::new(Method::Post, url)
                .credential(&token.credential)
                .json(json!({ "parts": parts })),
        )
        .await?;
        Ok(access.to_string())
    }
}
