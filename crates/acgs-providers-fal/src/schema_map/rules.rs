//! The rules by name: which fields are safety switches and where they lock, which count
//! outputs, which the price depends on, and which names are safe to keep at all.

use std::collections::BTreeMap;

use acgs_core::catalog::{CountMode, FieldKind, ParamSpec, ParamType};
use serde_json::Value;

/// Fields that say how many outputs one request makes.
const COUNT: [&str; 8] = [
    "num_images",
    "num_outputs",
    "num_videos",
    "n",
    "batch_size",
    "max_images",
    "num_samples",
    "number_of_images",
];

/// Fields the price depends on (beside the count fields).
const PRICED: [&str; 13] = [
    "duration",
    "image_size",
    "resolution",
    "num_frames",
    "aspect_ratio",
    "quality",
    "generate_audio",
    "seconds",
    "video_length",
    "upscale_factor",
    "scale",
    "video_size",
    "fps",
];

/// Words that make a field a safety switch.
const SAFETY: [&str; 6] = [
    "safety",
    "nsfw",
    "safe_mode",
    "moderation",
    "content_filter",
    "censor",
];

/// Words that make a boolean safety switch unsafe when on (`allow_nsfw`, `skip_safety_checker`).
const UNSAFE_WHEN_ON: [&str; 6] = ["nsfw", "allow", "disable", "skip", "bypass", "uncensor"];

/// Whether `name` is one acgs keeps, prints and writes: ASCII letters, digits and `_`, at most
/// 64 characters (a field name is printed and becomes a configuration key).
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether the field says how many outputs a request makes.
pub(super) fn is_count(lower: &str) -> bool {
    COUNT.contains(&lower)
}

/// The kind the name says, before the type is known; strings that are none of these become
/// text, other types plain.
pub(super) fn kind_by_name(lower: &str) -> FieldKind {
    if SAFETY.iter().any(|w| lower.contains(w)) {
        FieldKind::Safety
    } else if lower.ends_with("_url") || lower.ends_with("_urls") {
        FieldKind::Media
    } else if PRICED.contains(&lower) || is_count(lower) {
        FieldKind::Priced
    } else {
        FieldKind::Text
    }
}

/// Lock a safety switch at its safe value. A boolean is safe off when its name says on is
/// unsafe (`allow_nsfw`, `disable_safety_checker`) and safe on when it names a check
/// (`enable_safety_checker`, `safety_checker`); a tolerance is safest at its lowest. Any other
/// switch is refused unless the user marked it, which locks it at the schema's default.
pub(super) fn lock_safety(spec: &mut ParamSpec, lower: &str, marked: bool) -> Result<(), String> {
    let locked = match spec.ty {
        ParamType::Boolean if UNSAFE_WHEN_ON.iter().any(|w| lower.contains(w)) => {
            Value::Bool(false)
        }
        ParamType::Boolean
            if lower.starts_with("enable")
                || ["checker", "check", "filter", "moderation", "safe_mode"]
                    .iter()
                    .any(|w| lower.contains(w)) =>
        {
            Value::Bool(true)
        }
        _ if lower.contains("tolerance") => {
            lowest(spec).ok_or("a safety tolerance without values or a minimum to lock it at")?
        }
        _ if marked => spec
            .default
            .clone()
            .ok_or("a safety setting without a default to lock it at")?,
        _ => {
            return Err(
                "a safety setting whose safe value acgs cannot tell; mark it `safety` to lock it at its default"
                    .into(),
            );
        }
    };
    spec.ty = ParamType::Enum;
    spec.values = vec![locked.clone()];
    spec.default = Some(locked);
    spec.min = None;
    spec.max = None;
    Ok(())
}

/// The lowest of an enum's values (numbers, or strings holding numbers) or the minimum.
fn lowest(spec: &ParamSpec) -> Option<Value> {
    let number = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()))
    };
    if !spec.values.is_empty() {
        return spec
            .values
            .iter()
            .filter_map(|v| Some((number(v)?, v)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| v.clone());
    }
    let min = spec.min?;
    Some(match spec.ty {
        ParamType::Integer => Value::from(min as i64),
        _ => serde_json::Number::from_f64(min).map(Value::Number)?,
    })
}

/// A priced field must bound the worst case.
pub(super) fn check_bounded(spec: &ParamSpec) -> Result<(), String> {
    match spec.ty {
        ParamType::Enum | ParamType::ImageSize | ParamType::Boolean => Ok(()),
        ParamType::Integer | ParamType::Number if spec.max.is_some() => Ok(()),
        _ => Err(
            "the price depends on it, but it has no enum or maximum to bound the worst case".into(),
        ),
    }
}

/// How `-n` is honoured: the one field that counts outputs, made a bounded integer sent with
/// every request (its default, else its minimum, else 1), or one output per request.
pub(super) fn count_mode(params: &mut BTreeMap<String, ParamSpec>) -> Result<CountMode, String> {
    let counting: Vec<String> = params
        .keys()
        .filter(|n| is_count(&n.to_ascii_lowercase()))
        .cloned()
        .collect();
    let name = match counting.as_slice() {
        [] => return Ok(CountMode::Requests),
        [one] => one.clone(),
        many => {
            return Err(format!(
                "several fields count outputs ({}); acgs can bound only one",
                many.join(", ")
            ));
        }
    };
    let spec = params
        .get_mut(&name)
        .ok_or("the count field went missing")?;
    let whole = |v: &Value| v.as_i64().filter(|n| *n >= 1);
    if spec.ty == ParamType::Enum {
        let values: Option<Vec<i64>> = spec.values.iter().map(whole).collect();
        let values = values.filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("`{name}` counts outputs, but its values are not whole numbers")
        })?;
        spec.min = values.iter().min().map(|n| *n as f64);
        spec.max = values.iter().max().map(|n| *n as f64);
        spec.values.clear();
        spec.ty = ParamType::Integer;
    }
    if spec.ty != ParamType::Integer || spec.max.is_none() {
        return Err(format!(
            "`{name}` counts outputs, but it is not a whole number with a maximum"
        ));
    }
    spec.kind = FieldKind::Priced;
    let floor = spec.min.map_or(1, |m| (m as i64).max(1));
    spec.default = Some(Value::from(
        spec.default.as_ref().and_then(whole).unwrap_or(floor),
    ));
    Ok(CountMode::Param(name))
}
