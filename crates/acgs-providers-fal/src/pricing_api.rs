//! fal's pricing API (`GET {api_url}/v1/models/pricing?endpoint_id=…`, see "fal platform API"
//! in the provider reference): the current price of a catalogue entry, checked against the
//! entry's own price kind before it may replace it.

use acgs_core::ModelSpec;
use acgs_core::config::ProviderUrls;
use acgs_core::pricing::{PriceUnit, Pricing};
use acgs_core::{Usd, UserFacing as _};
use acgs_http::{Credential, HttpClient, HttpError, HttpRequest, RetryPolicy};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

#[derive(Deserialize)]
struct Prices {
    prices: Vec<Price>,
}

#[derive(Deserialize)]
struct Price {
    endpoint_id: String,
    unit_price: serde_json::Number,
    unit: String,
    #[serde(default)]
    currency: Option<String>,
}

/// What the pricing API says of one catalogue entry.
#[derive(Debug, Clone)]
pub struct PriceRefresh {
    /// The entry's key.
    pub key: String,
    /// Its rate before.
    pub old: Option<Usd>,
    /// Its new price, when the API's fits the entry's price kind; `None` leaves it as it was.
    pub new: Option<Pricing>,
    /// What happened, in a few words (`updated`, `no price listed`, an error code …).
    pub note: String,
    /// The new rate is more than 4× the old one or less than a quarter of it: ask before it
    /// is written.
    pub far: bool,
}

/// A client of fal's pricing API, with the fal key bound to the API's origin.
#[derive(Debug)]
pub struct PricingApi {
    http: HttpClient,
    api: Url,
    credential: Credential,
}

impl PricingApi {
    /// A client of the pricing API at `urls.api_url`.
    pub fn new(
        http: HttpClient,
        urls: &ProviderUrls,
        key: &SecretString,
    ) -> Result<Self, HttpError> {
        let api = crate::base_url(urls, "api_url")?;
        http.check_url(&api)?;
        let credential = Credential::new(&api, "authorization", "Key ", key)?;
        Ok(Self {
            http,
            api,
            credential,
        })
    }

    /// One cheap authenticated call (the price of `fal-ai/flux/dev`): whether the key is
    /// accepted, without spending anything.
    pub async fn check_key(&self) -> acgs_core::provider::ProviderResult<()> {
        let mut url = self.api.clone();
        url.set_path(&format!(
            "{}/v1/models/pricing",
            self.api.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .append_pair("endpoint_id", "fal-ai/flux/dev");
        self.http
            .execute_retrying(
                &HttpRequest::get(url).credential(&self.credential),
                &RetryPolicy::default(),
                &crate::protocol::classify,
            )
            .await
            .map(|_| ())
            .map_err(|e| acgs_http::provider_error("fal", e, &crate::protocol::classify))
    }

    /// The current price of `model` (a fal entry), dated `today`.
    pub async fn refresh(&self, model: &ModelSpec, today: jiff::civil::Date) -> PriceRefresh {
        let mut url = self.api.clone();
        url.set_path(&format!(
            "{}/v1/models/pricing",
            self.api.path().trim_end_matches('/')
        ));
        url.query_pairs_mut()
            .append_pair("endpoint_id", &model.endpoint);
        let response = self
            .http
            .execute_retrying(
                &HttpRequest::get(url).credential(&self.credential),
                &RetryPolicy::default(),
                &crate::protocol::classify,
            )
            .await;
        let skip = |note: &str| PriceRefresh {
            key: model.key.clone(),
            old: model.pricing.as_ref().map(|p| p.rate),
            new: None,
            note: note.to_owned(),
            far: false,
        };
        match response.map(|r| r.json::<Prices>()) {
            Ok(Ok(prices)) => self.judge(model, prices, today),
            Ok(Err(_)) => skip("unexpected answer"),
            Err(e) => skip(e.code()),
        }
    }

    /// The entry's new price, if the API's is in dollars, positive and of the same kind.
    fn judge(&self, model: &ModelSpec, prices: Prices, today: jiff::civil::Date) -> PriceRefresh {
        let old = model.pricing.as_ref().map(|p| p.rate);
        let skip = |note: &str| PriceRefresh {
            key: model.key.clone(),
            old,
            new: None,
            note: note.to_owned(),
            far: false,
        };
        let Some(price) = prices
            .prices
            .into_iter()
            .find(|p| p.endpoint_id == model.endpoint)
        else {
            return skip("no price listed");
        };
        if price
            .currency
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case("USD"))
        {
            return skip("not priced in USD");
        }
        let text = price.unit_price.to_string();
        let Ok(rate) = Usd::parse(&text) else {
            return skip("unreadable price");
        };
        if text.starts_with(['-', '+']) || rate <= Usd::ZERO {
            return skip("a price of zero or less is refused");
        }
        let Some(current) = &model.pricing else {
            return skip("the catalogue has no price kind for it; add one in your config");
        };
        if unit_of(&price.unit) != Some(current.unit) {
            return skip(&format!(
                "fal prices it per {}, the catalogue per {}",
                price.unit,
                current.unit.label()
            ));
        }
        let updated = Pricing {
            rate,
            priced_on: today,
            source: format!(
                "fal pricing API ({})",
                self.api.origin().ascii_serialization()
            ),
            verified: current.tiers.is_empty(),
            ..current.clone()
        };
        let note = if current.tiers.is_empty() {
            "updated"
        } else {
            "updated; tiers kept unverified"
        };
        let far = old.is_some_and(|old| {
            old.mul_div_ceil(4, 1).is_some_and(|most| rate > most)
                || rate.mul_div_ceil(4, 1).is_some_and(|most| old > most)
        });
        PriceRefresh {
            key: model.key.clone(),
            old,
            new: Some(updated),
            note: note.into(),
            far,
        }
    }
}

/// fal's unit names to the catalogue's.
fn unit_of(text: &str) -> Option<PriceUnit> {
    let t = text.to_ascii_lowercase();
    Some(if t.contains("megapixel") {
        PriceUnit::Megapixel
    } else if t.contains("image") {
        PriceUnit::Image
    } else if t.contains("second") {
        PriceUnit::Second
    } else if t.contains("minute") {
        PriceUnit::Minute
    } else if t.contains("character") {
        PriceUnit::KiloCharacters
    } else if t.contains("request") || t.contains("video") || t.contains("call") {
        PriceUnit::Request
    } else {
        return None;
    })
}
