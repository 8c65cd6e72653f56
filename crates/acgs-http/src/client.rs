//! The HTTP client with acgs' network policy built in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use acgs_core::config::NetworkConfig;
use acgs_core::provider::HttpFailure;
use acgs_core::redact::Redactor;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use url::{Host, Origin, Url};

use crate::address::is_allowed;
use crate::error::HttpError;

/// Redirects followed at most (GET only).
pub const MAX_REDIRECTS: usize = 5;

/// Bytes of an error body kept (redacted) for `-v`.
const FAILURE_BODY_CAP: usize = 16 * 1024;

/// Default cap for JSON bodies.
pub const JSON_BODY_CAP: u64 = 16 * 1024 * 1024;

/// The network policy (DESIGN.md §5).
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    /// Allow loopback addresses (and plain http to loopback IP literals).
    pub allow_loopback: bool,
    /// Extra PEM roots added to the OS roots.
    pub ca_bundle: Option<PathBuf>,
    /// Explicit proxy; system proxy variables are never read.
    pub proxy: Option<String>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout for JSON calls.
    pub request_timeout: Duration,
    /// Longest time without a byte on streams and downloads.
    pub read_idle_timeout: Duration,
}

impl NetworkPolicy {
    /// The policy described by a `[network]` configuration table.
    #[must_use]
    pub fn from_config(config: &NetworkConfig) -> Self {
        Self {
            allow_loopback: config.allow_http_loopback,
            ca_bundle: (!config.ca_bundle.as_os_str().is_empty()).then(|| config.ca_bundle.clone()),
            proxy: (!config.proxy.is_empty()).then(|| config.proxy.clone()),
            connect_timeout: Duration::from_secs(config.connect_timeout_secs),
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            read_idle_timeout: Duration::from_secs(config.read_idle_timeout_secs),
        }
    }
}

/// A provider key bound to the provider's base origin: it is attached only to requests whose
/// scheme, host and port equal that origin, never to redirect targets or URLs from responses.
#[derive(Clone)]
pub struct Credential {
    origin: Origin,
    header: HeaderName,
    value: HeaderValue,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential({} for {})",
            self.header,
            self.origin.ascii_serialization()
        )
    }
}

impl Credential {
    /// Bind `secret` (sent as `prefix + secret` in `header`) to the origin of `base_url`.
    pub fn new(
        base_url: &Url,
        header: &'static str,
        prefix: &str,
        secret: &SecretString,
    ) -> Result<Self, HttpError> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret()))
            .map_err(|_| {
                HttpError::Setup(format!(
                    "the key for {header} contains characters a header cannot carry"
                ))
            })?;
        value.set_sensitive(true);
        Ok(Self {
            origin: base_url.origin(),
            header: HeaderName::from_static(header),
            value,
        })
    }

    /// Whether this credential may be sent to `url`.
    #[must_use]
    pub fn applies_to(&self, url: &Url) -> bool {
        url.origin() == self.origin
    }
}

/// A request body.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// No body.
    #[default]
    Empty,
    /// JSON.
    Json(serde_json::Value),
    /// Raw bytes with a content type.
    Bytes {
        /// The bytes.
        data: Bytes,
        /// Its content type.
        content_type: String,
    },
    /// An opened local file streamed between a prefix and a suffix (see
    /// [`multipart_form`](crate::multipart_form)); re-read from the start on every attempt.
    File {
        /// Sent before the file.
        prefix: Bytes,
        /// The file.
        input: acgs_core::request::LocalInput,
        /// Sent after the file.
        suffix: Bytes,
        /// The body's content type.
        content_type: String,
    },
}

/// The methods acgs sends (only GET requests follow redirects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A response body read as it arrives (a status stream): each item one chunk, or the failure
/// that ended the transfer.
pub struct ByteStream(std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, HttpError>> + Send>>);

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteStream(..)")
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes, HttpError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

/// One HTTP request.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    method: Method,
    url: Url,
    credential: Option<&'a Credential>,
    headers: HeaderMap,
    body: Body,
    cap: u64,
    submit: bool,
}

impl<'a> HttpRequest<'a> {
    /// A GET request.
    #[must_use]
    pub fn get(url: Url) -> Self {
        Self::new(Method::Get, url)
    }

    /// A request with any method.
    #[must_use]
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            method,
            url,
            credential: None,
            headers: HeaderMap::new(),
            body: Body::Empty,
            cap: JSON_BODY_CAP,
            submit: false,
        }
    }

    /// Attach a credential (sent only if the URL is on its origin).
    #[must_use]
    pub fn credential(mut self, credential: &'a Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    /// Send a JSON body.
    #[must_use]
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    /// Send raw bytes.
    #[must_use]
    pub fn bytes(mut self, data: Bytes, content_type: &str) -> Self {
        self.body = Body::Bytes {
            data,
            content_type: content_type.to_owned(),
        };
        self
    }

    /// Send any [`Body`] (e.g. a [`multipart_form`](crate::multipart_form)).
    #[must_use]
    pub fn with_body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Cap on the response body.
    #[must_use]
    pub fn cap(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    /// Mark as a submit: a non-idempotent request that is retried only when provably not accepted.
    #[must_use]
    pub fn submit(mut self) -> Self {
        self.submit = true;
        self
    }

    /// Whether this is a submit.
    #[must_use]
    pub fn is_submit(&self) -> bool {
        self.submit
    }

    /// The URL.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// A successful response with its body read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code (2xx).
    pub status: u16,
    /// Headers (read them with [`HttpResponse::header`]).
    headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// The final URL (after redirects).
    pub url: Url,
    /// Classes of the failed attempts the retry layer made before this answer (e.g. a provider
    /// that was saturated at first).
    pub retried: Vec<acgs_core::provider::FailureClass>,
}

impl HttpResponse {
    /// A header as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            target: target_of(&self.url),
            detail: format!("invalid JSON ({e})"),
        })
    }
}

/// The HTTP client. Build one per process; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    redactor: Redactor,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The resolver error for a name whose addresses are all disallowed.
#[derive(Debug, thiserror::Error)]
#[error("every address of {0} is in a disallowed range")]
struct BlockedAddress(String);

/// Resolves names and drops disallowed addresses.
struct PolicyResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| is_allowed(addr.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(
                    Box::new(BlockedAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl HttpClient {
    /// Build a client enforcing `policy`; error bodies are redacted with `redactor`.
    pub fn new(policy: NetworkPolicy, redactor: Redactor) -> Result<Self, HttpError> {
        let tls = crate::tls::client_config(&policy)?;
        #[allow(clippy::disallowed_methods)] // acgs-http is the one place clients are built
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("acgs/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver {
                allow_loopback: policy.allow_loopback,
            }));
        builder = match &policy.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy.as_str())
                    .map_err(|_| HttpError::Setup("the proxy URL is invalid".into()))?,
            ),
            None => builder.no_proxy(),
        };
        let inner = builder
            .build()
            .map_err(|e| HttpError::Setup(e.without_url().to_string()))?;
        Ok(Self {
            inner,
            policy: Arc::new(policy),
            redactor,
        })
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// The redactor used for error bodies.
    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Check a URL against the policy: https (http only to loopback IP literals when allowed), no
    /// user info, IP literals in allowed ranges. Names are checked when resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), HttpError> {
        let refuse = |reason: &str| HttpError::Refused {
            target: target_of(url),
            reason: reason.to_owned(),
        };
        let allow_loopback = self.policy.allow_loopback;
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
            None => return Err(refuse("the URL has no host")),
        };
        match url.scheme() {
            "https" => {}
            "http" => {
                let loopback_literal = literal.is_some_and(|ip| ip.is_loopback());
                if !(allow_loopback && loopback_literal) {
                    return Err(refuse(
                        "plain http is allowed only to loopback with network.allow_http_loopback",
                    ));
                }
            }
            _ => return Err(refuse("only https URLs are fetched")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("URLs with user names or passwords are not fetched"));
        }
        if let Some(ip) = literal
            && !is_allowed(ip, allow_loopback)
        {
            return Err(refuse("the address is in a disallowed range"));
        }
        Ok(())
    }

    /// Send `request` once, following redirects for GET, and read the whole body within its cap.
    /// A non-2xx answer is [`HttpError::Status`] with a redacted body.
    pub async fn execute(&self, request: &HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
        let response = self.send(request, true).await?;
        let url = response.url().clone();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_capped(response, request.cap, self.policy.read_idle_timeout, &url).await?;
        Ok(HttpResponse {
            status,
            headers,
            body,
            url,
            retried: Vec::new(),
        })
    }

    /// Send `request`, following redirects for GET; the caller reads the body as it arrives.
    /// A non-2xx answer is [`HttpError::Status`].
    pub async fn open(&self, request: &HttpRequest<'_>) -> Result<ByteStream, HttpError> {
        let response = self.send(request, false).await?;
        let target = target_of(response.url());
        let stream = response.bytes_stream().map(move |chunk| {
            chunk.map_err(|e| HttpError::Transfer {
                target: target.clone(),
                detail: e.without_url().to_string(),
            })
        });
        Ok(ByteStream(Box::pin(stream)))
    }

    /// Send `request` and hand back reqwest's response (the crate's own streaming readers).
    pub(crate) async fn open_response(
        &self,
        request: &HttpRequest<'_>,
    ) -> Result<reqwest::Response, HttpError> {
        self.send(request, false).await
    }

    async fn send(
        &self,
        request: &HttpRequest<'_>,
        whole_request_timeout: bool,
    ) -> Result<reqwest::Response, HttpError> {
        let mut url = request.url.clone();
        // Once a redirect has left the credential's origin, no later hop carries it, even one
        // that comes back: the path it comes back to was chosen by the foreign host.
        let mut credential = request.credential;
        for _ in 0..=MAX_REDIRECTS {
            self.check_url(&url)?;
            if credential.is_some_and(|c| !c.applies_to(&url)) {
                credential = None;
            }
            let mut builder = self
                .inner
                .request(request.method.to_reqwest(), url.clone())
                .headers(request.headers.clone());
            if let Some(credential) = credential {
                builder = builder.header(credential.header.clone(), credential.value.clone());
            }
            if whole_request_timeout {
                builder = builder.timeout(self.policy.request_timeout);
            }
            builder = match &request.body {
                Body::Empty => builder,
                Body::Json(value) => builder
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(value).unwrap_or_default()),
                Body::Bytes { data, content_type } => builder
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(data.clone()),
                Body::File {
                    prefix,
                    input,
                    suffix,
                    content_type,
                } => {
                    let length = prefix.len() as u64 + input.size + suffix.len() as u64;
                    builder
                        .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                        .header(reqwest::header::CONTENT_LENGTH, length)
                        .body(reqwest::Body::wrap_stream(crate::multipart::file_stream(
                            prefix.clone(),
                            input.clone(),
                            suffix.clone(),
                        )))
                }
            };
            let started = std::time::Instant::now();
            let sent = builder.send().await;
            log_request(request.method, &url, sent.as_ref().ok(), started.elapsed());
            let response = sent.map_err(|e| self.map_send_error(e, &url))?;
            let status = response.status();
            if status.is_redirection()
                && request.method == Method::Get
                && status != StatusCode::NOT_MODIFIED
            {
                url = next_hop(&url, response.headers())?;
                tracing::debug!(target = %target_of(&url), "following redirect");
                continue;
            }
            if !status.is_success() {
                return Err(self.failure(response, &url).await);
            }
            return Ok(response);
        }
        Err(HttpError::Redirect(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    async fn failure(&self, response: reqwest::Response, url: &Url) -> HttpError {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(self.policy.read_idle_timeout, stream.next()).await
        {
            let room = FAILURE_BODY_CAP.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= FAILURE_BODY_CAP {
                break;
            }
        }
        let text = String::from_utf8_lossy(&body);
        HttpError::Status {
            target: target_of(url),
            failure: HttpFailure {
                status,
                headers,
                body: self.redactor.redact(&text).into_owned(),
            },
        }
    }

    fn map_send_error(&self, error: reqwest::Error, url: &Url) -> HttpError {
        let target = target_of(url);
        if let Some(blocked) = find_source::<BlockedAddress>(&error) {
            return HttpError::Refused {
                target,
                reason: blocked.to_string(),
            };
        }
        let detail = self.redactor.redact(&error_chain(&error)).into_owned();
        if find_source::<rustls::Error>(&error).is_some() {
            return HttpError::Tls { target, detail };
        }
        if error.is_timeout() {
            return HttpError::Timeout {
                target,
                phase: "request",
                seconds: self.policy.request_timeout.as_secs(),
            };
        }
        if error.is_connect() {
            return HttpError::Connect { target, detail };
        }
        HttpError::Transfer { target, detail }
    }
}

/// Resolve a redirect's `Location` against the current URL.
fn next_hop(current: &Url, headers: &HeaderMap) -> Result<Url, HttpError> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| HttpError::Redirect("a redirect without a usable Location".into()))?;
    current
        .join(location)
        .map_err(|_| HttpError::Redirect("a redirect to an invalid URL".into()))
}

/// Read a body up to `cap` bytes, with an idle timeout between chunks.
pub(crate) async fn read_capped(
    response: reqwest::Response,
    cap: u64,
    idle: Duration,
    url: &Url,
) -> Result<Bytes, HttpError> {
    let too_large = || HttpError::TooLarge {
        target: target_of(url),
        cap,
    };
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    loop {
        let next = tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| HttpError::Timeout {
                target: target_of(url),
                phase: "idle read",
                seconds: idle.as_secs(),
            })?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| HttpError::Transfer {
            target: target_of(url),
            detail: e.without_url().to_string(),
        })?;
        if u64::try_from(body.len() + chunk.len()).unwrap_or(u64::MAX) > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The longest path segment a request log shows; a longer one (a signed token, say) is elided.
const MAX_LOGGED_SEGMENT: usize = 40;

/// One line per request at `-v`: method, the URL without its query and with long path segments
/// elided, status and latency until the answer's headers. The line goes through the redactor
/// like every log line.
fn log_request(method: Method, url: &Url, answer: Option<&reqwest::Response>, took: Duration) {
    let path: Vec<&str> = url
        .path()
        .split('/')
        .map(|segment| {
            if segment.len() > MAX_LOGGED_SEGMENT {
                "…"
            } else {
                segment
            }
        })
        .collect();
    let shown = format!("{}{}", url.origin().ascii_serialization(), path.join("/"));
    let latency_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match answer {
        Some(response) => tracing::info!(
            target: "acgs::http",
            method = %method.to_reqwest(),
            url = %shown,
            status = response.status().as_u16(),
            latency_ms,
            "request"
        ),
        None => tracing::info!(
            target: "acgs::http",
            method = %method.to_reqwest(),
            url = %shown,
            latency_ms,
            "request failed before an answer"
        ),
    }
}

/// Scheme, host and port of a URL: what messages show (never paths or queries, which may carry
/// signed tokens).
#[must_use]
pub fn target_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn find_source<'e, T: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        // An `io::Error` wrapping an error (how TLS failures arrive, sometimes twice) names that
        // error's source as its own, skipping the error itself: look inside instead.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    None
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    if parts.is_empty() {
        "no further detail".into()
    } else {
        parts.join(": ")
    }
}
