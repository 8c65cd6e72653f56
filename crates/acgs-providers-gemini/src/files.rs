//! The Files API (shared/reference/providers.md §C.5): a resumable upload — start, 8 MiB chunks,
//! finalize — then polling until the file is `ACTIVE`; the file is deleted once the request that
//! used it is answered.

use std::time::Duration;

use acgs_core::provider::{Charge, FailureClass, ProviderError, ProviderResult};
use acgs_core::request::{LocalInput, is_plain_token};
use acgs_http::{Credential, HttpClient, HttpRequest, Method, RetryPolicy, provider_error};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use crate::protocol::classify;

/// Bytes per upload chunk.
pub const CHUNK: u64 = 8 * 1024 * 1024;
/// How long a file may stay `PROCESSING`.
const ACTIVE_WITHIN: Duration = Duration::from_secs(600);

/// A file resource (the fields acgs reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileResource {
    /// `files/<id>`.
    pub name: String,
    /// The URI to reference in requests.
    #[serde(default)]
    pub uri: String,
    /// The file's type.
    #[serde(default)]
    pub mime_type: String,
    /// `PROCESSING`, `ACTIVE` or `FAILED`.
    #[serde(default)]
    pub state: String,
}

#[derive(Deserialize)]
struct Wrapped {
    file: FileResource,
}

fn failed(message: &str) -> ProviderError {
    ProviderError::new(
        FailureClass::Other,
        "provider.upload_failed",
        message,
        Charge::Release,
    )
}

/// Uploads through the Files API of one base URL.
#[derive(Debug)]
pub struct Files<'a> {
    /// The client.
    pub http: &'a HttpClient,
    /// The API base (`https://generativelanguage.googleapis.com`).
    pub base: &'a Url,
    /// The key, bound to the base's origin.
    pub credential: &'a Credential,
    /// Retries.
    pub retry: &'a RetryPolicy,
}

impl Files<'_> {
    fn url(&self, path: &str) -> ProviderResult<Url> {
        let base = self.base.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|_| failed("could not build a Gemini URL"))
    }

    async fn call(&self, request: &HttpRequest<'_>) -> ProviderResult<acgs_http::HttpResponse> {
        self.http
            .execute_retrying(request, self.retry, &classify)
            .await
            .map_err(|e| provider_error("Gemini", e, &classify))
    }

    /// Upload `input` and wait until it is usable.
    pub async fn upload(&self, input: &LocalInput) -> ProviderResult<FileResource> {
        let session = self.start(input).await?;
        let file = self.send_chunks(&session, input).await?;
        self.wait_active(file).await
    }

    /// Open an upload session; its URL must be on the API's origin.
    async fn start(&self, input: &LocalInput) -> ProviderResult<Url> {
        let request = HttpRequest::new(Method::Post, self.url("upload/v1beta/files")?)
            .credential(self.credential)
            .header("x-goog-upload-protocol", "resumable")
            .header("x-goog-upload-command", "start")
            .header(
                "x-goog-upload-header-content-length",
                &input.size.to_string(),
            )
            .header(
                "x-goog-upload-header-content-type",
                input.content_type.mime(),
            )
            .json(json!({ "file": { "displayName": input.file_name } }));
        let response = self.call(&request).await?;
        let location = response
            .header("x-goog-upload-url")
            .ok_or_else(|| failed("the Files API gave no upload URL"))?;
        let url = Url::parse(location).map_err(|_| failed("the upload URL is not a URL"))?;
        if url.origin() != self.base.origin() {
            return Err(failed("the upload URL is not on the API's own host"));
        }
        Ok(url)
    }

    /// Send the file in chunks; the last one finalizes and answers with the file resource.
    async fn send_chunks(&self, session: &Url, input: &LocalInput) -> ProviderResult<FileResource> {
        let mut offset = 0;
        loop {
            let len = (input.size - offset).min(CHUNK);
            let last = offset + len >= input.size;
            let data = read_chunk(input, offset, len).await?;
            let command = if last { "upload, finalize" } else { "upload" };
            let request = HttpRequest::new(Method::Post, session.clone())
                .credential(self.credential)
                .header("x-goog-upload-command", command)
                .header("x-goog-upload-offset", &offset.to_string())
                .bytes(data, "application/octet-stream");
            let response = self.call(&request).await?;
            let status = response.header("x-goog-upload-status").unwrap_or_default();
            offset += len;
            match (last, status) {
                (true, "final") => {
                    let wrapped: Wrapped = response
                        .json()
                        .map_err(|_| failed("the Files API answer is not a file"))?;
                    return Ok(wrapped.file);
                }
                (false, "active") => {}
                _ => return Err(failed("the Files API ended the upload early")),
            }
        }
    }

    /// `DELETE /v1beta/files/<id>`, once the file is no longer needed; a file already gone
    /// (404) counts as deleted.
    pub async fn delete(&self, name: &str) -> ProviderResult<()> {
        if !is_plain_token(name) || !name.starts_with("files/") {
            return Err(failed("not a Files API file name"));
        }
        let request = HttpRequest::new(Method::Delete, self.url(&format!("v1beta/{name}"))?)
            .credential(self.credential);
        match self
            .http
            .execute_retrying(&request, self.retry, &classify)
            .await
        {
            Ok(_) => Ok(()),
            Err(acgs_http::HttpError::Status { failure, .. }) if failure.status == 404 => Ok(()),
            Err(e) => Err(provider_error("Gemini", e, &classify)),
        }
    }

    /// Poll `GET /v1beta/files/<id>` until `ACTIVE`.
    async fn wait_active(&self, mut file: FileResource) -> ProviderResult<FileResource> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            if !is_plain_token(&file.name) || !file.name.starts_with("files/") {
                return Err(failed("the Files API named the file oddly"));
            }
            match file.state.as_str() {
                "ACTIVE" => return Ok(file),
                "FAILED" => return Err(failed("Gemini could not process the uploaded file")),
                _ if started.elapsed() > ACTIVE_WITHIN => {
                    return Err(failed(
                        "the uploaded file was still processing after 10 minutes",
                    ));
                }
                _ => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            let request = HttpRequest::get(self.url(&format!("v1beta/{}", file.name))?)
                .credential(self.credential);
            file = self
                .call(&request)
                .await?
                .json()
                .map_err(|_| failed("the Files API answer is not a file"))?;
        }
    }
}

async fn read_chunk(input: &LocalInput, offset: u64, len: u64) -> ProviderResult<Bytes> {
    let input = input.clone();
    let len = usize::try_from(len).map_err(|_| failed("chunk too large"))?;
    let data = tokio::task::spawn_blocking(move || input.read_at(offset, len))
        .await
        .map_err(|_| failed("reading the input failed"))?
        .map_err(|e| failed(&format!("reading the input failed: {}", e.kind())))?;
    if data.len() == len {
        Ok(Bytes::from(data))
    } else {
        Err(failed("the input file shrank while it was uploaded"))
    }
}
