//! The mapping rules one by one, on schemas shaped like fal's (built by the test kit's
//! `openapi`): safety switches lock at their safe value, the one count field bounds `-n`,
//! flags never collide, unsafe names and marks are refused, and prices keep their margin when
//! a priced field may change them.

use std::collections::BTreeMap;

use acgs_core::catalog::{CountMode, FieldKind};
use acgs_core::{ModelSpec, Usd};
use acgs_testkit::fal_platform::{openapi, video_output_schema};
use serde_json::{Value, json};

use super::{Draft, Mark, map_entry};
use crate::models_api::{Listing, Metadata};
use crate::pricing_api::ListedPrice;

const ID: &str = "fal-ai/test/model";

fn mapped(
    category: &str,
    properties: Value,
    unit: &str,
    marks: &[(&str, Mark)],
) -> Result<ModelSpec, Vec<String>> {
    let input = json!({"type": "object", "required": ["prompt"], "properties": properties});
    let listing = Listing {
        endpoint_id: ID.into(),
        metadata: Some(Metadata {
            display_name: "Test".into(),
            category: category.into(),
            ..Metadata::default()
        }),
        openapi: Some(openapi(ID, category, input, video_output_schema())),
    };
    let price = ListedPrice {
        unit: unit.into(),
        unit_price: Usd::parse("0.05").expect("usd"),
    };
    let marks: BTreeMap<String, Mark> = marks.iter().map(|(n, m)| ((*n).to_owned(), *m)).collect();
    map_entry(&Draft {
        key: "test",
        listing: &listing,
        price: Some(&price),
        marks: &marks,
        today: jiff::civil::date(2026, 12, 6),
        origin: "http://fake",
    })
}

fn prompt_and(extra: Value) -> Value {
    let mut properties = json!({"prompt": {"type": "string"}});
    if let (Some(all), Some(more)) = (properties.as_object_mut(), extra.as_object()) {
        all.extend(more.clone());
    }
    properties
}

#[test]
fn safety_switches_lock_at_their_safe_value_whatever_the_default() {
    let spec = mapped(
        "text-to-image",
        prompt_and(json!({
            "enable_safety_checker": {"type": "boolean", "default": false},
            "allow_nsfw": {"type": "boolean", "default": true},
            "disable_safety_checker": {"type": "boolean", "default": true},
            "safety_tolerance": {"type": "string", "enum": ["1", "2", "3", "4", "5", "6"], "default": "6"},
        })),
        "image",
        &[],
    )
    .expect("maps");
    let locked = |name: &str| spec.params[name].values.clone();
    assert_eq!(locked("enable_safety_checker"), [json!(true)]);
    assert_eq!(locked("allow_nsfw"), [json!(false)]);
    assert_eq!(locked("disable_safety_checker"), [json!(false)]);
    assert_eq!(
        locked("safety_tolerance"),
        [json!("1")],
        "the strictest, not the default"
    );
    assert!(
        spec.params
            .values()
            .filter(|p| p.kind == FieldKind::Safety)
            .count()
            == 4
    );
    let unclear = mapped(
        "text-to-image",
        prompt_and(
            json!({"moderation": {"type": "string", "enum": ["auto", "low"], "default": "low"}}),
        ),
        "image",
        &[],
    );
    assert!(
        unclear.is_err(),
        "a switch whose safe value is unclear is refused"
    );
}

#[test]
fn the_one_count_field_bounds_outputs_and_is_always_sent() {
    let spec = mapped(
        "text-to-image",
        prompt_and(json!({"num_outputs": {"type": "integer", "enum": [1, 2, 4]}})),
        "image",
        &[],
    )
    .expect("maps");
    assert_eq!(spec.count, CountMode::Param("num_outputs".into()));
    let count = &spec.params["num_outputs"];
    assert_eq!(
        (count.max, count.default.clone()),
        (Some(4.0), Some(json!(1)))
    );
    assert!(spec.pricing.as_ref().is_some_and(|p| p.verified));
    for bad in [
        json!({"num_images": {"type": "integer"}}),
        json!({"num_images": {"type": "integer", "maximum": 4}, "n": {"type": "integer", "maximum": 2}}),
    ] {
        assert!(mapped("text-to-image", prompt_and(bad), "image", &[]).is_err());
    }
    let marked = mapped(
        "text-to-image",
        prompt_and(json!({"num_images": {"type": "integer", "maximum": 4}})),
        "image",
        &[("num_images", Mark::Plain)],
    );
    assert!(marked.is_err(), "a count field cannot be marked plain");
}

#[test]
fn fields_never_share_an_input_and_odd_names_are_refused() {
    let spec = mapped(
        "image-to-video",
        prompt_and(json!({
            "image": {"type": "string"},
            "image_url": {"type": "string", "description": "URL of the image"},
            "style": {"type": "string"},
        })),
        "video",
        &[],
    )
    .expect("maps");
    assert_eq!(spec.params["image_url"].flag.as_deref(), Some("image"));
    assert_eq!(spec.params["image"].flag.as_deref(), Some("field:image"));
    assert_eq!(spec.params["style"].kind, FieldKind::Text);
    let escaped = mapped(
        "text-to-image",
        prompt_and(json!({"x\u{1b}[2J": {"type": "integer"}})),
        "image",
        &[],
    );
    let reasons = escaped.expect_err("refused");
    assert!(reasons.iter().all(|r| !r.contains('\u{1b}')), "{reasons:?}");
    let plain_text = mapped(
        "text-to-image",
        prompt_and(json!({})),
        "image",
        &[("prompt", Mark::Plain)],
    );
    assert!(plain_text.is_err(), "a free string cannot be marked plain");
}

#[test]
fn prices_keep_their_margin_when_a_priced_field_may_change_them() {
    let spec = mapped(
        "text-to-video",
        prompt_and(json!({
            "duration": {"type": "integer", "enum": [5, 10]},
            "generate_audio": {"type": "boolean", "default": true},
        })),
        "second",
        &[],
    )
    .expect("maps");
    let pricing = spec.pricing.expect("priced");
    assert_eq!(pricing.quantity_param.as_deref(), Some("duration"));
    assert!(
        !pricing.verified && pricing.source.contains("generate_audio"),
        "{}",
        pricing.source
    );
    let grown = mapped(
        "image-to-image",
        prompt_and(json!({
            "image_url": {"type": "string"},
            "upscale_factor": {"type": "number", "maximum": 4},
        })),
        "megapixels",
        &[],
    );
    assert!(
        grown.is_err(),
        "per output megapixel with an upscale factor cannot be bounded"
    );
    let minutes = mapped(
        "text-to-audio",
        prompt_and(json!({"reference_audio_url": {"type": "string"}})),
        "minute",
        &[],
    );
    assert!(
        minutes.is_err(),
        "per minute is counted only on a transcription's recording"
    );
}
