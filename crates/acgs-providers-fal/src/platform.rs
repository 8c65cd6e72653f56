//! fal's platform API (`{api_url}/v1/…`, see "fal platform API" in the provider reference): one
//! client for its read-only endpoints — model search, prices, billing events — with the fal key
//! bound to the API's origin, repeated query parameters and the platform's own error body.

use acgs_core::config::ProviderUrls;
use acgs_core::provider::ProviderResult;
use acgs_http::{Credential, HttpClient, HttpError, HttpRequest, RetryPolicy};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use url::Url;

/// A client of fal's platform API. The key is optional: model search answers without one.
#[derive(Debug, Clone)]
pub struct Platform {
    http: HttpClient,
    api: Url,
    credential: Option<Credential>,
}

impl Platform {
    /// A client of the platform API at `urls.api_url`, sending `key` (when given) to that origin
    /// only.
    pub fn new(
        http: HttpClient,
        urls: &ProviderUrls,
        key: Option<&SecretString>,
    ) -> Result<Self, HttpError> {
        let api = crate::base_url(urls, "api_url")?;
        http.check_url(&api)?;
        let credential = key
            .map(|key| Credential::new(&api, "authorization", "Key ", key))
            .transpose()?;
        Ok(Self {
            http,
            api,
            credential,
        })
    }

    /// The API's origin, for the `source` of what it said.
    #[must_use]
    pub fn origin(&self) -> String {
        self.api.origin().ascii_serialization()
    }

    /// `GET /v1/{path}?{query}` (each pair sent as given, so a list repeats its name), parsed
    /// as `T`; the answer is read up to `cap` bytes.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        cap: u64,
    ) -> ProviderResult<T> {
        let mut url = self.api.clone();
        url.set_path(&format!(
            "{}/v1/{path}",
            self.api.path().trim_end_matches('/')
        ));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = HttpRequest::get(url).cap(cap);
        if let Some(credential) = &self.credential {
            request = request.credential(credential);
        }
        let classify = &crate::protocol::classify;
        self.http
            .execute_retrying(&request, &RetryPolicy::default(), classify)
            .await
            .and_then(|response| response.json::<T>())
            .map_err(|e| acgs_http::provider_error("fal", e, classify))
    }
}
