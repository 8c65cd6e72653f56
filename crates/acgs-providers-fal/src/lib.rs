//! # acgs-providers-fal
//!
//! The fal.ai provider for acgs: the queue protocol exactly as fal speaks it (submit; status `202`
//! while `IN_QUEUE` with a queue position or `IN_PROGRESS` with logs; `200 COMPLETED`, including
//! COMPLETED-with-error whose detail comes from the result; result; cancel), with status, result
//! and cancel on `owner/app` without the sub-path and every URL rebuilt from the configured base.
//! The key travels as `Authorization: Key …` to the queue's origin only.
//!
//! The catalogue ([`catalog`]) is data: `catalog.toml`, compiled in.

mod billing_api;
mod models_api;
mod platform;
mod pricing_api;
pub mod protocol;
mod provider;
pub mod schema_map;
pub mod upload;
mod webhook;

use acgs_core::catalog::Catalog;
use acgs_core::{Error, ProviderId};

pub use billing_api::BillingEvent;
pub use models_api::{Listing, Metadata};
pub use platform::Platform;
pub use pricing_api::{ListedPrice, PriceRefresh, PricingApi};
pub use provider::FalProvider;
pub use webhook::FalWebhooks;

/// fal's base URL `name` from `[providers.fal]`.
fn base_url(
    urls: &acgs_core::config::ProviderUrls,
    name: &str,
) -> Result<url::Url, acgs_http::HttpError> {
    urls.url(name)
        .and_then(|u| url::Url::parse(u.trim_end_matches('/')).ok())
        .ok_or_else(|| acgs_http::HttpError::Setup(format!("providers.fal.{name} is not a URL")))
}

/// The catalogue source shipped with this crate.
pub const CATALOG_TOML: &str = include_str!("../catalog.toml");

/// fal's built-in catalogue.
pub fn catalog() -> Result<Catalog, Error> {
    Catalog::from_toml(
        ProviderId::Fal,
        "acgs-providers-fal/catalog.toml",
        CATALOG_TOML,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_least_four_in_five_prices_are_checked_against_fal_itself() {
        let catalog = super::catalog().expect("valid catalogue");
        let priced: Vec<_> = catalog
            .models()
            .filter_map(|m| m.pricing.as_ref())
            .collect();
        let verified: Vec<_> = priced.iter().filter(|p| p.verified).collect();
        assert!(
            verified.len() * 5 >= priced.len() * 4,
            "{} of {}",
            verified.len(),
            priced.len()
        );
        for p in verified {
            assert!(
                p.source.contains("fal"),
                "a verified price names fal's text: {}",
                p.source
            );
        }
    }

    #[test]
    fn the_catalogue_parses_and_keeps_safety_checkers_on() {
        let catalog = super::catalog().expect("valid catalogue");
        for key in [
            "flux_dev",
            "flux_schnell",
            "imagen4",
            "nano_banana_pro",
            "seedream_v3",
            "gpt_image_1_5",
        ] {
            let model = catalog.resolve(key).expect(key);
            let pricing = model.pricing.as_ref().expect("every model is priced");
            assert!(!pricing.source.is_empty());
            if let Some(checker) = model.params.get("enable_safety_checker") {
                assert_eq!(
                    checker.default,
                    Some(serde_json::Value::Bool(true)),
                    "{key}"
                );
                assert_eq!(checker.kind, acgs_core::catalog::FieldKind::Safety, "{key}");
            }
        }
        let flux = catalog.resolve("flux_dev").expect("flux");
        assert_eq!(
            flux.pricing.as_ref().map(|p| p.rate.to_string()),
            Some("0.025".into())
        );
    }
}
