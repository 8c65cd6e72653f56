//! The listed price as a catalogue price: a unit acgs can estimate, a quantity that comes from a
//! bounded field or from the one input it is counted on, and the unverified margin whenever a
//! priced field may change a rate fal lists only once.

use std::collections::BTreeMap;

use acgs_core::catalog::{CountMode, FieldKind, ParamSpec, ParamType};
use acgs_core::pricing::{PriceUnit, Pricing};
use acgs_core::{MediaKind, TaskKind, Usd};

use super::{Draft, clip};
use crate::pricing_api::unit_of;

/// Names of fields that change the size of an output image beyond its input.
const GROWS_OUTPUT: [&str; 5] = ["factor", "scale", "upscale", "resolution", "size"];

/// The entry's price, or why it cannot be priced safely.
pub(super) fn price(
    draft: &Draft<'_>,
    task: TaskKind,
    params: &BTreeMap<String, ParamSpec>,
    count: &CountMode,
) -> Result<Pricing, String> {
    let listed = draft
        .price
        .ok_or("fal's pricing API lists no price for it; acgs does not add unpriced models")?;
    if listed.unit_price <= Usd::ZERO {
        return Err("its listed price is zero or less".into());
    }
    let unit = unit_of(&listed.unit).ok_or_else(|| {
        format!(
            "fal prices it per `{}`, a unit acgs cannot estimate",
            clip(&listed.unit)
        )
    })?;
    let quantity_param = quantity(unit, task, params)?;
    let counted = match count {
        CountMode::Param(name) => Some(name.as_str()),
        _ => None,
    };
    // fal lists one rate; a priced field that is neither the quantity nor the count may change
    // it in ways acgs does not know, so the estimate keeps the unverified margin.
    let unknown: Vec<&str> = params
        .iter()
        .filter(|(name, p)| {
            p.kind == FieldKind::Priced
                && Some(name.as_str()) != quantity_param.as_deref()
                && Some(name.as_str()) != counted
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let mut source = format!(
        "fal pricing API ({}) for {}",
        draft.origin, draft.listing.endpoint_id
    );
    if !unknown.is_empty() {
        source.push_str(&format!(
            "; one rate listed, so how {} change it is unknown and the unverified margin applies",
            unknown.join(", ")
        ));
    }
    Ok(Pricing {
        unit,
        rate: listed.unit_price,
        input_rate: None,
        tiers: Vec::new(),
        quantity_param,
        extra_output_params: Vec::new(),
        priced_on: draft.today,
        source,
        verified: unknown.is_empty(),
    })
}

/// Where the quantity priced comes from: a bounded field, or the one input it is counted on.
fn quantity(
    unit: PriceUnit,
    task: TaskKind,
    params: &BTreeMap<String, ParamSpec>,
) -> Result<Option<String>, String> {
    let priced = |name: &str| params.get(name).filter(|p| p.kind == FieldKind::Priced);
    let timed_inputs = params
        .values()
        .filter(|p| {
            p.kind == FieldKind::Media
                && matches!(p.media, Some(MediaKind::Video | MediaKind::Audio))
        })
        .count();
    let one_timed_input = timed_inputs == 1
        && params.values().any(|p| {
            p.kind == FieldKind::Media
                && p.required
                && matches!(p.media, Some(MediaKind::Video | MediaKind::Audio))
        });
    match unit {
        PriceUnit::Megapixel => match priced("image_size") {
            Some(p) if p.ty == ParamType::ImageSize => Ok(Some("image_size".to_owned())),
            _ if task == TaskKind::ImageToImage && !grows_output(params) => Ok(None),
            _ => Err("priced per megapixel of output, which acgs cannot bound from its fields or inputs".into()),
        },
        PriceUnit::Second => match priced("duration") {
            Some(_) => Ok(Some("duration".to_owned())),
            None if one_timed_input
                && matches!(
                    task,
                    TaskKind::VideoToVideo | TaskKind::AddSound | TaskKind::SpeechToText
                ) =>
            {
                Ok(None)
            }
            None => Err("priced per second, but it has no bounded duration or single timed input to count them".into()),
        },
        PriceUnit::Minute if !(one_timed_input && task == TaskKind::SpeechToText) => {
            Err("priced per minute, which acgs counts only on the one recording a transcription takes".into())
        }
        _ => Ok(None),
    }
}

/// Whether a field may make the output image larger than the input.
fn grows_output(params: &BTreeMap<String, ParamSpec>) -> bool {
    params.iter().any(|(name, p)| {
        p.kind != FieldKind::Media && GROWS_OUTPUT.iter().any(|w| name.contains(w))
    })
}
