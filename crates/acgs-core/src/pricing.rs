//! Prices with provenance, worst-case estimates and actual costs.
//!
//! A price is an integer number of micro-dollars per quantum (image, megapixel, second, minute,
//! 1,000 characters, 1M tokens, request), optionally varying by parameter values (tiers: audio on,
//! 1080p, …). Estimates round up and assume the worst case; actual costs round half-up once per
//! request (DESIGN.md §4.1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money::Usd;
use crate::params::{FieldKind, ParamSpec, ParamType, Params};
use crate::task::MediaKind;

/// The quantum a price is quoted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceUnit {
    /// Per output image.
    Image,
    /// Per megapixel (10⁶ pixels) of each output image, rounded up per image.
    Megapixel,
    /// Per second of output (duration parameter).
    Second,
    /// Per started minute of input media.
    Minute,
    /// Per 1,000 characters of input text.
    KiloCharacters,
    /// Per million tokens (input at `input_rate`, output at `rate`).
    MillionTokens,
    /// Per request.
    Request,
}

impl PriceUnit {
    /// Whether a provider's count of billed units is in this unit (images, megapixels, seconds,
    /// requests: fal's per-unit prices); characters and tokens have usage counts of their own.
    #[must_use]
    pub const fn billed_in_units(self) -> bool {
        matches!(
            self,
            Self::Image | Self::Megapixel | Self::Second | Self::Request
        )
    }

    /// Short name for tables: "MP", "s", "1k chars" …
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Megapixel => "megapixel",
            Self::Second => "second",
            Self::Minute => "minute",
            Self::KiloCharacters => "1k characters",
            Self::MillionTokens => "1M tokens",
            Self::Request => "request",
        }
    }
}

/// A rate that applies when every listed parameter has the given value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// Parameter values that select this tier.
    pub when: BTreeMap<String, Value>,
    /// Rate per quantum in this tier.
    pub rate: Usd,
    /// Input-token rate in this tier (token pricing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_rate: Option<Usd>,
}

/// A model's price and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// The quantum.
    pub unit: PriceUnit,
    /// Rate per quantum (output tokens for token pricing).
    pub rate: Usd,
    /// Input-token rate (token pricing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_rate: Option<Usd>,
    /// Tier rates; the first tier whose `when` matches wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<PriceTier>,
    /// The parameter that gives the quantity: duration for seconds, image size for megapixels,
    /// maximum output tokens for token pricing. Without it, seconds and megapixels are those of
    /// the input media (avatars priced per second of input audio, edits per input megapixel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity_param: Option<String>,
    /// Further output-token parameters counted in the worst case (e.g. a thinking budget).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_output_params: Vec<String>,
    /// The day the price was read.
    pub priced_on: jiff::civil::Date,
    /// Where it was read (URL or "fal pricing API").
    pub source: String,
    /// Whether the price was checked against the provider's own page or API.
    pub verified: bool,
}

/// Facts about a request that prices depend on, beyond its parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceInputs {
    /// Characters of user text sent (after sanitizing and templating).
    pub text_chars: u64,
    /// Bytes of text sent (an upper bound on input tokens).
    pub text_bytes: u64,
    /// Duration of input media in seconds, when known.
    pub media_seconds: Option<u64>,
    /// Input tokens for attached media (images, audio), when known.
    pub media_tokens: u64,
    /// Width and height of the (first) input image, when known.
    pub media_pixels: Option<(u64, u64)>,
}

/// A worst-case estimate for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// Worst case, margin included.
    pub amount: Usd,
    /// Worst case before the margin for unverified prices.
    pub base: Usd,
    /// The rate that applied (tier included).
    pub rate: Usd,
    /// The quantum.
    pub unit: PriceUnit,
    /// How many quanta were counted.
    pub quantity: u64,
    /// Margin applied, in thousandths (2000 = ×2.0), when the price is unverified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_permille: Option<u32>,
}

/// Usage reported by a provider, from which the actual cost is computed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Width and height of each produced image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<(u64, u64)>>,
    /// Seconds of media produced or processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// Characters billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub characters: Option<u64>,
    /// Input tokens billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens billed (thinking included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// What the provider said it billed, in the price's unit (fal's `x-fal-billable-units`):
    /// when present, the actual cost of a per-unit price is these units at its rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<crate::money::Units>,
}

/// Why a request could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PriceError {
    /// The quantity parameter is missing or malformed.
    #[error("cannot price `{model}`: {reason}")]
    Quantity {
        /// Model key.
        model: String,
        /// What is missing.
        reason: String,
    },
    /// The estimate does not fit in the money type.
    #[error("the estimate for `{model}` overflows")]
    Overflow {
        /// Model key.
        model: String,
    },
}

/// Pixels in a megapixel (SI): the conservative reading, which never underestimates.
const PIXELS_PER_MEGAPIXEL: u64 = 1_000_000;

/// Dimensions of the size presets used by fal image models.
#[must_use]
pub fn image_size_preset(name: &str) -> Option<(u64, u64)> {
    Some(match name {
        "square_hd" => (1024, 1024),
        "square" => (512, 512),
        "portrait_4_3" => (768, 1024),
        "portrait_16_9" => (576, 1024),
        "landscape_4_3" => (1024, 768),
        "landscape_16_9" => (1024, 576),
        _ => return None,
    })
}

/// Width and height of an `image_size` value: a preset name or `{width, height}`.
#[must_use]
pub fn image_dimensions(value: &Value) -> Option<(u64, u64)> {
    match value {
        Value::String(name) => image_size_preset(name),
        Value::Object(map) => Some((map.get("width")?.as_u64()?, map.get("height")?.as_u64()?)),
        _ => None,
    }
}

/// Megapixels of one image, rounded up; at least one.
#[must_use]
pub fn megapixels_ceil(width: u64, height: u64) -> u64 {
    width
        .saturating_mul(height)
        .div_ceil(PIXELS_PER_MEGAPIXEL)
        .max(1)
}

/// Seconds in a duration value: `5`, `"5"`, `"8s"`, `5.5` (rounded up).
#[must_use]
pub fn duration_seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f.is_finite() && f >= 0.0).then(|| format!("{:.0}", f.ceil()).parse().ok())?
        }),
        Value::String(s) => s.trim().trim_end_matches('s').trim().parse().ok(),
        _ => None,
    }
}

/// Gemini's tile edge for images: each started 768×768 tile counts [`TOKENS_PER_TILE`] tokens.
const TILE_EDGE: u64 = 768;
/// Tokens per image tile.
const TOKENS_PER_TILE: u64 = 258;
/// Tokens per second of video (263 for frames, 32 for its sound, rounded up).
const TOKENS_PER_VIDEO_SECOND: u64 = 300;
/// Tokens per second of audio.
const TOKENS_PER_AUDIO_SECOND: u64 = 32;

/// An upper bound on the input tokens a token-priced model (Gemini) counts for one attached
/// media file, from its size or duration; `None` when the fact it needs is unknown.
#[must_use]
pub fn media_token_bound(
    kind: MediaKind,
    dimensions: Option<(u64, u64)>,
    seconds: Option<u64>,
) -> Option<u64> {
    match kind {
        MediaKind::Image => {
            let (w, h) = dimensions?;
            let tiles = w.div_ceil(TILE_EDGE).max(1) * h.div_ceil(TILE_EDGE).max(1);
            Some(tiles.saturating_mul(TOKENS_PER_TILE))
        }
        MediaKind::Video => Some(seconds?.max(1).saturating_mul(TOKENS_PER_VIDEO_SECOND)),
        MediaKind::Audio => Some(seconds?.max(1).saturating_mul(TOKENS_PER_AUDIO_SECOND)),
        MediaKind::Text => Some(0),
    }
}

impl Pricing {
    /// The tier matching `params`, as `(rate, input_rate)`.
    fn rates(&self, params: &Params) -> (Usd, Option<Usd>) {
        self.tiers
            .iter()
            .find(|tier| tier.when.iter().all(|(k, v)| params.get(k) == Some(v)))
            .map_or((self.rate, self.input_rate), |t| {
                (t.rate, t.input_rate.or(self.input_rate))
            })
    }

    /// Worst-case estimate for one request of `model` making `count` outputs with these
    /// (validated, defaulted) parameters.
    pub fn estimate(
        &self,
        model: &str,
        count: u64,
        params: &Params,
        inputs: PriceInputs,
    ) -> Result<Quote, PriceError> {
        let quantity_error = |reason: String| PriceError::Quantity {
            model: model.to_owned(),
            reason,
        };
        let overflow = || PriceError::Overflow {
            model: model.to_owned(),
        };
        let (rate, input_rate) = self.rates(params);
        let param = |name: &Option<String>| {
            name.as_ref().and_then(|n| params.get(n)).ok_or_else(|| {
                quantity_error(format!(
                    "parameter `{}` is missing",
                    name.as_deref().unwrap_or("?")
                ))
            })
        };
        let (quantity, base) = match self.unit {
            PriceUnit::Image => (
                count,
                rate.checked_mul(to_i64(count)?).ok_or_else(overflow)?,
            ),
            PriceUnit::Request => (1, rate),
            PriceUnit::Megapixel => {
                let (w, h) = match &self.quantity_param {
                    Some(_) => image_dimensions(param(&self.quantity_param)?)
                        .ok_or_else(|| quantity_error("unknown image size".into()))?,
                    None => inputs.media_pixels.ok_or_else(|| {
                        quantity_error("the input image's size is unknown".into())
                    })?,
                };
                let mp = megapixels_ceil(w, h).saturating_mul(count);
                (mp, rate.checked_mul(to_i64(mp)?).ok_or_else(overflow)?)
            }
            PriceUnit::Second => {
                let secs = match &self.quantity_param {
                    Some(_) => duration_seconds(param(&self.quantity_param)?)
                        .ok_or_else(|| quantity_error("unreadable duration".into()))?,
                    None => inputs.media_seconds.ok_or_else(|| {
                        quantity_error("the input media's duration is unknown".into())
                    })?,
                };
                (secs, rate.checked_mul(to_i64(secs)?).ok_or_else(overflow)?)
            }
            PriceUnit::Minute => {
                let secs = inputs
                    .media_seconds
                    .ok_or_else(|| quantity_error("the input media duration is unknown".into()))?;
                let minutes = secs.div_ceil(60).max(1);
                (
                    minutes,
                    rate.checked_mul(to_i64(minutes)?).ok_or_else(overflow)?,
                )
            }
            PriceUnit::KiloCharacters => {
                let chars = inputs.text_chars;
                (
                    chars,
                    rate.mul_div_ceil(to_i64(chars)?, 1000)
                        .ok_or_else(overflow)?,
                )
            }
            PriceUnit::MillionTokens => {
                let mut output_tokens = 0u64;
                for name in self.quantity_param.iter().chain(&self.extra_output_params) {
                    if let Some(v) = params.get(name) {
                        output_tokens = output_tokens.saturating_add(v.as_u64().unwrap_or(0));
                    }
                }
                if output_tokens == 0 {
                    return Err(quantity_error("no output-token bound is set".into()));
                }
                let input_tokens = inputs.text_bytes.saturating_add(inputs.media_tokens);
                let input_cost = input_rate
                    .unwrap_or(Usd::ZERO)
                    .mul_div_ceil(to_i64(input_tokens)?, 1_000_000)
                    .ok_or_else(overflow)?;
                let output_cost = rate
                    .mul_div_ceil(to_i64(output_tokens)?, 1_000_000)
                    .ok_or_else(overflow)?;
                (
                    input_tokens.saturating_add(output_tokens),
                    input_cost.checked_add(output_cost).ok_or_else(overflow)?,
                )
            }
        };
        Ok(Quote {
            amount: base,
            base,
            rate,
            unit: self.unit,
            quantity,
            margin_permille: None,
        })
    }

    /// The quantity the provider reported billing, in this price's unit: its own count of
    /// billed units when it gives one, else what its usage counts (images, megapixels, seconds,
    /// characters, tokens in and out); `None` when it reported nothing this price counts.
    #[must_use]
    pub fn billed(&self, usage: &Usage) -> Option<crate::money::Units> {
        use crate::money::Units;
        if let Some(units) = usage.billed_units.filter(|_| self.unit.billed_in_units()) {
            return Some(units);
        }
        let whole = match self.unit {
            PriceUnit::Image => u64::try_from(usage.images.as_ref()?.len()).ok()?,
            PriceUnit::Megapixel => usage
                .images
                .as_ref()?
                .iter()
                .map(|(w, h)| megapixels_ceil(*w, *h))
                .sum(),
            PriceUnit::Second => usage.seconds?,
            PriceUnit::Minute => usage.seconds?.div_ceil(60).max(1),
            PriceUnit::KiloCharacters => usage.characters?,
            PriceUnit::MillionTokens => usage.input_tokens?.saturating_add(usage.output_tokens?),
            PriceUnit::Request => return None,
        };
        Some(Units::whole(whole))
    }

    /// Actual cost of one request from reported usage, rounded half-up; `None` when the usage does
    /// not carry the quantity this price needs (the caller then settles at the estimate).
    #[must_use]
    pub fn actual(&self, params: &Params, usage: &Usage) -> Option<Usd> {
        let (rate, input_rate) = self.rates(params);
        if let Some(units) = usage.billed_units.filter(|_| self.unit.billed_in_units()) {
            return rate.mul_div_round(i64::try_from(units.millionths()).ok()?, 1_000_000);
        }
        match self.unit {
            PriceUnit::Image => rate.checked_mul(i64::try_from(usage.images.as_ref()?.len()).ok()?),
            PriceUnit::Megapixel => {
                let mp: u64 = usage
                    .images
                    .as_ref()?
                    .iter()
                    .map(|(w, h)| megapixels_ceil(*w, *h))
                    .sum();
                rate.checked_mul(i64::try_from(mp).ok()?)
            }
            PriceUnit::Second => {
                // Providers rarely report seconds; the duration asked for is what is billed.
                let requested = || {
                    let name = self.quantity_param.as_ref()?;
                    duration_seconds(params.get(name)?)
                };
                rate.checked_mul(i64::try_from(usage.seconds.or_else(requested)?).ok()?)
            }
            PriceUnit::Minute => {
                rate.checked_mul(i64::try_from(usage.seconds?.div_ceil(60).max(1)).ok()?)
            }
            PriceUnit::KiloCharacters => {
                rate.mul_div_round(i64::try_from(usage.characters?).ok()?, 1000)
            }
            PriceUnit::MillionTokens => {
                let input = input_rate
                    .unwrap_or(Usd::ZERO)
                    .mul_div_round(i64::try_from(usage.input_tokens?).ok()?, 1_000_000)?;
                let output =
                    rate.mul_div_round(i64::try_from(usage.output_tokens?).ok()?, 1_000_000)?;
                input.checked_add(output)
            }
            PriceUnit::Request => Some(rate),
        }
    }

    /// Whether the price is well formed for `params`; `free` allows a rate of zero (steps run
    /// on this machine), never a negative one.
    pub(crate) fn check(
        &self,
        params: &std::collections::BTreeMap<String, ParamSpec>,
        free: bool,
    ) -> Result<(), String> {
        let priced_param = |name: &str| {
            params
                .get(name)
                .is_some_and(|p| matches!(p.kind, FieldKind::Priced))
        };
        // A price of zero or less would let a run add headroom to the day instead of spending it.
        let rates = std::iter::once(self.rate).chain(self.input_rate).chain(
            self.tiers
                .iter()
                .flat_map(|t| std::iter::once(t.rate).chain(t.input_rate)),
        );
        if rates
            .into_iter()
            .any(|rate| rate < Usd::ZERO || (rate == Usd::ZERO && !free))
        {
            return Err("prices must be more than zero".into());
        }
        let needs_quantity = self.unit == PriceUnit::MillionTokens;
        match (&self.quantity_param, needs_quantity) {
            (Some(name), _) if !priced_param(name) => {
                return Err(format!(
                    "pricing quantity `{name}` must be a `priced` parameter"
                ));
            }
            (None, true) => {
                return Err(format!(
                    "pricing per {} needs `quantity_param`",
                    self.unit.label()
                ));
            }
            _ => {}
        }
        if self.unit == PriceUnit::Megapixel && self.quantity_param.is_some() {
            let is_size = self
                .quantity_param
                .as_ref()
                .and_then(|n| params.get(n))
                .is_some_and(|p| p.ty == ParamType::ImageSize);
            if !is_size {
                return Err("megapixel pricing needs an `image_size` quantity parameter".into());
            }
        }
        for tier in &self.tiers {
            if let Some(name) = tier.when.keys().find(|k| !priced_param(k)) {
                return Err(format!(
                    "price tier parameter `{name}` must be a `priced` parameter"
                ));
            }
        }
        Ok(())
    }
}

impl Quote {
    /// A quote known only by the amount reserved for it: one request at `amount` (a plan
    /// rebuilt by `acgs resume` for a job sent before, priced when it was sent).
    #[must_use]
    pub fn reserved(amount: Usd) -> Self {
        Self {
            amount,
            base: amount,
            rate: amount,
            unit: PriceUnit::Request,
            quantity: 1,
            margin_permille: None,
        }
    }

    /// Apply the margin for an unverified price: `amount = ceil(base × permille / 1000)`.
    #[must_use]
    pub fn with_margin(mut self, permille: u32) -> Self {
        self.amount = self
            .base
            .mul_div_ceil(i64::from(permille), 1000)
            .unwrap_or(Usd::MAX);
        self.margin_permille = Some(permille);
        self
    }

    /// This quote for `n` identical requests.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.amount = self.amount.checked_mul(n).unwrap_or(Usd::MAX);
        self.base = self.base.checked_mul(n).unwrap_or(Usd::MAX);
        self.quantity = self.quantity.saturating_mul(u64::try_from(n).unwrap_or(0));
        self
    }
}

impl crate::error::UserFacing for PriceError {
    fn code(&self) -> &'static str {
        match self {
            Self::Quantity { .. } => "price.unknown_quantity",
            Self::Overflow { .. } => "price.overflow",
        }
    }
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
    fn hint(&self) -> Option<String> {
        Some("give the parameter the price depends on (duration, size, output tokens)".into())
    }
}

fn to_i64(value: u64) -> Result<i64, PriceError> {
    i64::try_from(value).map_err(|_| PriceError::Overflow {
        model: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, ModelSpec};
    use crate::task::ProviderId;
    use serde_json::json;

    #[test]
    fn media_tokens_follow_tiles_and_seconds() {
        assert_eq!(
            media_token_bound(MediaKind::Image, Some((300, 200)), None),
            Some(258)
        );
        assert_eq!(
            media_token_bound(MediaKind::Image, Some((1024, 768)), None),
            Some(516)
        );
        assert_eq!(
            media_token_bound(MediaKind::Image, Some((1536, 1537)), None),
            Some(258 * 6)
        );
        assert_eq!(
            media_token_bound(MediaKind::Video, None, Some(10)),
            Some(3000)
        );
        assert_eq!(
            media_token_bound(MediaKind::Audio, None, Some(60)),
            Some(1920)
        );
        assert_eq!(media_token_bound(MediaKind::Image, None, None), None);
    }

    const CATALOG: &str = r#"
[flux_dev]
name = "FLUX.1 dev"
endpoint = "fal-ai/flux/dev"
task = "text_to_image"
count = { param = "num_images" }
pricing = { unit = "megapixel", rate = "0.025", quantity_param = "image_size", priced_on = 2026-11-27, source = "s", verified = true }
params.num_images = { kind = "priced", type = "integer", min = 1, max = 4, default = 1 }
params.image_size = { kind = "priced", type = "image_size", values = ["square_hd", "landscape_4_3"], default = "landscape_4_3" }

[kling]
name = "Kling"
endpoint = "fal-ai/kling"
task = "text_to_video"
pricing = { unit = "second", rate = "0.07", quantity_param = "duration", priced_on = 2026-11-27, source = "s", verified = false, tiers = [{ when = { generate_audio = true }, rate = "0.14" }] }
params.duration = { kind = "priced", type = "enum", values = ["5", "10"], default = "5" }
params.generate_audio = { kind = "priced", type = "boolean", default = true }

[gemini_flash]
name = "Gemini"
endpoint = "gemini-2.5-flash"
task = "text_generation"
pricing = { unit = "million_tokens", rate = "2.50", input_rate = "0.30", quantity_param = "maxOutputTokens", priced_on = 2026-11-27, source = "s", verified = false }
params.maxOutputTokens = { kind = "priced", type = "integer", default = 1024 }
"#;

    fn model(key: &str) -> std::sync::Arc<ModelSpec> {
        Catalog::from_toml(ProviderId::Fal, "test", CATALOG)
            .expect("catalogue")
            .resolve(key)
            .expect("model")
    }

    fn params(value: Value) -> Params {
        value.as_object().cloned().unwrap_or_default()
    }

    fn quote(key: &str, p: Value, inputs: PriceInputs) -> Quote {
        let (m, p) = (model(key), params(p));
        let pricing = m.pricing.as_ref().expect("priced");
        pricing
            .estimate(&m.key, m.outputs(&p), &p, inputs)
            .expect("estimate")
    }

    #[test]
    fn megapixels_round_up_per_image() {
        // 1024×768 = 0.79 MP → 1 MP; 1024×1024 = 1.05 MP → 2 MP.
        let q = quote(
            "flux_dev",
            json!({"image_size": "landscape_4_3", "num_images": 1}),
            PriceInputs::default(),
        );
        assert_eq!(q.amount, Usd::parse("0.025").expect("usd"));
        let q = quote(
            "flux_dev",
            json!({"image_size": "square_hd", "num_images": 3}),
            PriceInputs::default(),
        );
        assert_eq!(q.amount, Usd::parse("0.15").expect("usd"));
    }

    #[test]
    fn tiers_change_the_rate() {
        let with_audio = quote(
            "kling",
            json!({"duration": "10", "generate_audio": true}),
            PriceInputs::default(),
        );
        assert_eq!(with_audio.amount, Usd::parse("1.40").expect("usd"));
        let silent = quote(
            "kling",
            json!({"duration": "5", "generate_audio": false}),
            PriceInputs::default(),
        );
        assert_eq!(silent.amount, Usd::parse("0.35").expect("usd"));
        assert_eq!(
            silent.with_margin(2000).amount,
            Usd::parse("0.70").expect("usd")
        );
    }

    #[test]
    fn tokens_bound_input_by_bytes_and_output_by_max() {
        let inputs = PriceInputs {
            text_chars: 1000,
            text_bytes: 1000,
            ..PriceInputs::default()
        };
        let q = quote("gemini_flash", json!({"maxOutputTokens": 1024}), inputs);
        // 1000 × 0.30/1M = 0.0003 ; 1024 × 2.50/1M = 0.00256
        assert_eq!(q.amount, Usd::from_micros(300 + 2560));
    }

    #[test]
    fn actual_cost_from_usage() {
        let m = model("flux_dev");
        let p = params(json!({"image_size": "square_hd", "num_images": 1}));
        let usage = Usage {
            images: Some(vec![(1024, 768)]),
            ..Usage::default()
        };
        let pricing = m.pricing.as_ref().expect("priced");
        assert_eq!(
            pricing.actual(&p, &usage),
            Some(Usd::parse("0.025").expect("usd"))
        );
        assert_eq!(pricing.actual(&p, &Usage::default()), None);
        let kling = model("kling");
        let pricing = kling.pricing.as_ref().expect("priced");
        let p = params(json!({"duration": "10", "generate_audio": false}));
        assert_eq!(
            pricing.actual(&p, &Usage::default()),
            Some(Usd::parse("0.70").expect("usd")),
            "without reported seconds, the duration asked for is billed (no margin)"
        );
        let reported = Usage {
            seconds: Some(5),
            ..Usage::default()
        };
        assert_eq!(
            pricing.actual(&p, &reported),
            Some(Usd::parse("0.35").expect("usd"))
        );
        // What the provider billed wins over the quantity asked for, in either direction.
        for (billed, cost) in [("3.008", "0.21056"), ("12", "0.84")] {
            let usage = Usage {
                seconds: Some(10),
                billed_units: crate::money::Units::parse(billed),
                ..Usage::default()
            };
            assert_eq!(
                pricing.actual(&p, &usage),
                Usd::parse(cost).ok(),
                "{billed}"
            );
            assert_eq!(
                pricing.billed(&usage).map(|u| u.to_string()).as_deref(),
                Some(billed)
            );
        }
        assert_eq!(
            pricing.billed(&reported).map(|u| u.to_string()).as_deref(),
            Some("5"),
            "the seconds the provider reported"
        );
        assert_eq!(pricing.billed(&Usage::default()), None);
        let flux = m.pricing.as_ref().expect("priced");
        let two = Usage {
            images: Some(vec![(1024, 768), (2048, 2048)]),
            ..Usage::default()
        };
        assert_eq!(
            flux.billed(&two).map(|u| u.to_string()).as_deref(),
            Some("6")
        );
    }

    #[test]
    fn durations_parse_leniently() {
        assert_eq!(duration_seconds(&json!("8s")), Some(8));
        assert_eq!(duration_seconds(&json!(5)), Some(5));
        assert_eq!(duration_seconds(&json!(5.2)), Some(6));
        assert_eq!(duration_seconds(&json!("x")), None);
    }
}
