//! Stage 5: price the request at its worst case. No price, or an unverified one, is handled by
//! configuration: unpriced models are refused unless allowed (an audited override), and
//! unverified prices carry `unverified_price_margin`.

use acgs_core::Usd;
use acgs_core::catalog::{ModelSpec, Params};
use acgs_core::config::Config;
use acgs_core::pricing::{PriceInputs, PriceUnit, Quote};
use acgs_guard::GuardError;

use crate::error::EngineError;
use crate::inputs::OpenedInputs;
use crate::stages::inspect::InspectedTexts;

/// The worst-case quote for `requests` identical requests, and any override it needed.
pub(crate) fn price(
    model: &ModelSpec,
    params: &Params,
    texts: &InspectedTexts,
    media: &OpenedInputs,
    requests: u32,
    config: &Config,
) -> Result<(Quote, Option<String>), EngineError> {
    let Some(pricing) = &model.pricing else {
        if config.cost_management.allow_unpriced_models {
            let quote = Quote {
                amount: Usd::ZERO,
                base: Usd::ZERO,
                rate: Usd::ZERO,
                unit: PriceUnit::Request,
                quantity: u64::from(requests),
                margin_permille: None,
            };
            return Ok((quote, Some(format!("unpriced_model:{}", model.key))));
        }
        return Err(GuardError::Unpriced {
            model: model.key.clone(),
        }
        .into());
    };
    let all_texts = texts.texts.iter().chain(texts.system.iter());
    let inputs = PriceInputs {
        text_chars: texts
            .texts
            .iter()
            .map(|t| t.text.chars().count() as u64)
            .sum(),
        text_bytes: all_texts.map(|t| t.text.len() as u64).sum(),
        media_seconds: media.seconds,
        media_pixels: media.pixels,
        media_tokens: media_tokens(model, pricing.unit, media)?,
    };
    let mut quote = pricing.estimate(&model.key, model.outputs(params), params, inputs)?;
    if !pricing.verified {
        quote = quote.with_margin(config.cost_management.unverified_price_margin.0);
    }
    Ok((quote.times(u64::from(requests)), None))
}

/// The media token bound, required only for token-priced models that were given files.
fn media_tokens(
    model: &ModelSpec,
    unit: PriceUnit,
    media: &OpenedInputs,
) -> Result<u64, EngineError> {
    match (unit, media.media_tokens) {
        (PriceUnit::MillionTokens, None) if !media.files.is_empty() => {
            Err(acgs_core::pricing::PriceError::Quantity {
                model: model.key.clone(),
                reason: "an input's size or duration is unknown, so its tokens cannot be bounded"
                    .into(),
            }
            .into())
        }
        (_, tokens) => Ok(tokens.unwrap_or(0)),
    }
}
