//! fal's model search (`GET /v1/models`): search by text, and one endpoint with its OpenAPI
//! document (`expand=openapi-3.0`), whose error variant is kept as a reason.

use acgs_core::provider::ProviderResult;
use serde::Deserialize;
use serde_json::Value;

use crate::platform::Platform;

/// Most bytes read of a model listing: a schema document larger than this is refused by the
/// client before it is parsed.
const LISTING_CAP: u64 = 4 * 1024 * 1024;
/// Most bytes read of a page of search results (no schemas).
const SEARCH_CAP: u64 = 2 * 1024 * 1024;

/// One endpoint as fal lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Listing {
    /// The endpoint id, e.g. `fal-ai/flux/dev`.
    pub endpoint_id: String,
    /// What fal says of it; missing for endpoints without a registry entry.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// The OpenAPI document, or `{"error": {…}}` when fal could not expand it.
    #[serde(default)]
    pub openapi: Option<Value>,
}

/// The parts of fal's metadata acgs reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    /// Human name.
    #[serde(default)]
    pub display_name: String,
    /// `text-to-image`, `image-to-video`, `video-to-video`, ….
    #[serde(default)]
    pub category: String,
    /// One paragraph.
    #[serde(default)]
    pub description: String,
    /// `active` or `deprecated`.
    #[serde(default)]
    pub status: String,
}

#[derive(Deserialize)]
struct Page {
    models: Vec<Listing>,
    #[serde(default)]
    next_cursor: Option<String>,
    #[serde(default)]
    has_more: bool,
}

impl Platform {
    /// Endpoints matching `text`, up to `limit` of them, following fal's cursor from page to page.
    pub async fn search_models(&self, text: &str, limit: usize) -> ProviderResult<Vec<Listing>> {
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        let page_size = limit.clamp(1, 50).to_string();
        // A bounded number of pages: a server that always says `has_more` cannot keep us here.
        for _ in 0..20 {
            let mut query = vec![("q", text), ("limit", page_size.as_str())];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor));
            }
            let page: Page = self.get("models", &query, SEARCH_CAP).await?;
            found.extend(page.models);
            match page.next_cursor.filter(|_| page.has_more) {
                Some(next) if found.len() < limit => cursor = Some(next),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// One endpoint with its OpenAPI document; `None` when fal does not list it.
    pub async fn find_model(&self, endpoint_id: &str) -> ProviderResult<Option<Listing>> {
        let query = [("endpoint_id", endpoint_id), ("expand", "openapi-3.0")];
        let page: Page = self.get("models", &query, LISTING_CAP).await?;
        Ok(page
            .models
            .into_iter()
            .find(|m| m.endpoint_id == endpoint_id))
    }
}
