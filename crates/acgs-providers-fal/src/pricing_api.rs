//! fal's pricing API (`GET {api_url}/v1/models/pricing?endpoint_id=…`, see "fal platform API"
//! in the provider reference): the current price of a catalogue entry, checked against the
//! entry's own price kind before it may replace it.

use acgs_core::ModelSpec;
use acgs_core::Usd;
use acgs_core::config::ProviderUrls;
use acgs_core::pricing::{PriceUnit, Pricing};
use acgs_core::provider::ProviderResult;
use acgs_http::{HttpClient, HttpError};
use secrecy::SecretString;
use serde::Deserialize;

use crate::platform::Platform;

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

/// The price fal's pricing API lists for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPrice {
    /// fal's unit, free text (`image`, `megapixels`, `second`, …).
    pub unit: String,
    /// Dollars per unit, signed as listed.
    pub unit_price: Usd,
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
    platform: Platform,
}

/// Most bytes read of a pricing answer.
const PRICES_CAP: u64 = 256 * 1024;

impl Platform {
    /// The price fal lists for `endpoint`, if it lists one in dollars.
    pub async fn price_of(&self, endpoint: &str) -> ProviderResult<Option<ListedPrice>> {
        let prices: Prices = self
            .get("models/pricing", &[("endpoint_id", endpoint)], PRICES_CAP)
            .await?;
        // Several rows for one endpoint (prices by unit or account) count at the highest.
        Ok(prices
            .prices
            .into_iter()
            .filter(|p| p.endpoint_id == endpoint)
            .filter(|p| {
                p.currency
                    .as_deref()
                    .is_none_or(|c| c.eq_ignore_ascii_case("USD"))
            })
            .filter_map(|p| {
                // Signed as listed: a negative price is refused by its reader, not made positive.
                let unit_price = Usd::parse(&p.unit_price.to_string()).ok()?;
                Some(ListedPrice {
                    unit: p.unit,
                    unit_price,
                })
            })
            .max_by_key(|p| p.unit_price))
    }
}

impl PricingApi {
    /// A client of the pricing API at `urls.api_url`.
    pub fn new(
        http: HttpClient,
        urls: &ProviderUrls,
        key: &SecretString,
    ) -> Result<Self, HttpError> {
        Ok(Self {
            platform: Platform::new(http, urls, Some(key))?,
        })
    }

    /// One cheap authenticated call (the price of `fal-ai/flux/dev`): whether the key is
    /// accepted, without spending anything.
    pub async fn check_key(&self) -> ProviderResult<()> {
        self.platform.price_of("fal-ai/flux/dev").await.map(|_| ())
    }

    /// The current price of `model` (a fal entry), dated `today`.
    pub async fn refresh(&self, model: &ModelSpec, today: jiff::civil::Date) -> PriceRefresh {
        let skip = |note: &str| PriceRefresh {
            key: model.key.clone(),
            old: model.pricing.as_ref().map(|p| p.rate),
            new: None,
            note: note.to_owned(),
            far: false,
        };
        match self.platform.price_of(&model.endpoint).await {
            Ok(Some(price)) => self.judge(model, &price, today),
            Ok(None) => skip("no price listed in USD"),
            Err(e) => skip(e.code),
        }
    }

    /// The entry's new price, if the API's is in dollars, positive and of the same kind.
    fn judge(
        &self,
        model: &ModelSpec,
        price: &ListedPrice,
        today: jiff::civil::Date,
    ) -> PriceRefresh {
        let old = model.pricing.as_ref().map(|p| p.rate);
        let skip = |note: &str| PriceRefresh {
            key: model.key.clone(),
            old,
            new: None,
            note: note.to_owned(),
            far: false,
        };
        let rate = price.unit_price;
        if rate <= Usd::ZERO {
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
        // The API lists one rate: it verifies an entry only when nothing else moves its price.
        let one_rate = current.tiers.is_empty() && other_priced(model).is_empty();
        let updated = Pricing {
            rate,
            priced_on: today,
            source: format!("fal pricing API ({})", self.platform.origin()),
            verified: one_rate,
            ..current.clone()
        };
        let note = if one_rate {
            "updated".to_owned()
        } else if current.tiers.is_empty() {
            format!(
                "updated; kept unverified, as {} may change the rate",
                other_priced(model).join(", ")
            )
        } else {
            "updated; tiers kept unverified".to_owned()
        };
        let far = old.is_some_and(|old| {
            old.mul_div_ceil(4, 1).is_some_and(|most| rate > most)
                || rate.mul_div_ceil(4, 1).is_some_and(|most| old > most)
        });
        PriceRefresh {
            key: model.key.clone(),
            old,
            new: Some(updated),
            note,
            far,
        }
    }
}

/// The priced fields of `model` other than its quantity and its count: fields that may change a
/// rate fal lists only once.
pub(crate) fn other_priced(model: &ModelSpec) -> Vec<&str> {
    let quantity = model
        .pricing
        .as_ref()
        .and_then(|p| p.quantity_param.as_deref());
    let counted: Vec<&str> = match &model.count {
        acgs_core::catalog::CountMode::Param(name) => vec![name.as_str()],
        acgs_core::catalog::CountMode::Product(names) => names.iter().map(String::as_str).collect(),
        acgs_core::catalog::CountMode::Requests => Vec::new(),
    };
    model
        .params
        .iter()
        .filter(|(name, p)| {
            p.kind == acgs_core::catalog::FieldKind::Priced
                && Some(name.as_str()) != quantity
                && !counted.contains(&name.as_str())
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// fal's unit names to the catalogue's, by whole name (singular or plural): a unit such as
/// `gpu_seconds` is not seconds of output, and is left unpriced rather than guessed.
pub(crate) fn unit_of(text: &str) -> Option<PriceUnit> {
    let lower = text.trim().to_ascii_lowercase();
    let unit = lower.strip_suffix('s').unwrap_or(&lower);
    Some(match unit {
        "megapixel" | "mp" => PriceUnit::Megapixel,
        "image" => PriceUnit::Image,
        "second" | "video second" | "second of video" => PriceUnit::Second,
        "minute" | "audio minute" => PriceUnit::Minute,
        "1000 character" | "1k character" | "thousand character" => PriceUnit::KiloCharacters,
        "request" | "call" | "video" | "generation" => PriceUnit::Request,
        _ => return None,
    })
}
