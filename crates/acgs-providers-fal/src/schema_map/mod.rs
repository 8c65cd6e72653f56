//! From a fal endpoint's OpenAPI input schema to a catalogue entry, by written rules (the
//! catalogue guide, "Adding a fal model", states them for users):
//!
//! 1. A field the user marked (`--mark NAME=KIND`) takes that kind; `omit` leaves it out.
//! 2. A field named like a safety switch (`safety`, `nsfw`) is a `safety` field locked at its
//!    safe value: `true` for `enable_*`, `false` for `disable_*`, else the schema's default.
//! 3. `*_url` strings are media, `*_urls` string lists are media lists; the media kind comes
//!    from the name (image, frame, mask, video, audio, …). A URL field whose kind the name does
//!    not tell, or whose description calls it a prompt or text, is refused.
//! 4. The fields a price depends on (`duration`, `num_images`, `image_size`, `resolution`, …)
//!    are `priced` and must be bounded (an enum, or a maximum).
//! 5. Other free strings are `text`: sanitized, scanned and moderated like a prompt.
//! 6. Numbers, booleans and enums are `plain`, with their ranges and defaults kept.
//! 7. Anything else (objects, lists of objects, unions) is refused unless marked.
//!
//! The document is bounded before it is read: at most [`MAX_NODES`] JSON values, nesting at
//! most [`MAX_DEPTH`] deep, [`MAX_FIELDS`] input fields and [`MAX_VALUES`] enum values each.

mod price;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use acgs_core::catalog::{FieldKind, ModelSpec, ParamSpec, ParamType};
use acgs_core::{MediaKind, ProviderId, TaskKind};
use serde_json::{Map, Value};

use crate::models_api::Listing;
use crate::pricing_api::ListedPrice;

/// Most JSON values in one endpoint's OpenAPI document.
pub const MAX_NODES: usize = 20_000;
/// Deepest nesting of that document.
pub const MAX_DEPTH: usize = 24;
/// Most input fields of one endpoint.
pub const MAX_FIELDS: usize = 64;
/// Most values of one enum.
pub const MAX_VALUES: usize = 64;
/// Largest custom image size (pixels) when the schema bounds neither side.
const DEFAULT_MAX_PIXELS: u64 = 4096 * 4096;
/// Most files of a media list when the schema sets no `maxItems`.
const DEFAULT_MAX_ITEMS: u32 = 8;

/// What the user says a field is, overriding the rules (`--mark NAME=KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Inspected text.
    Text,
    /// A plain value.
    Plain,
    /// A value the price depends on.
    Priced,
    /// A safety switch, locked at its default.
    Safety,
    /// Left out: never sent.
    Omit,
}

impl Mark {
    /// Parse `text`, `plain`, `priced`, `safety` or `omit`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "text" => Self::Text,
            "plain" => Self::Plain,
            "priced" => Self::Priced,
            "safety" => Self::Safety,
            "omit" => Self::Omit,
            _ => return None,
        })
    }
}

/// Everything [`map_entry`] reads.
#[derive(Debug)]
pub struct Draft<'a> {
    /// The catalogue key the entry gets.
    pub key: &'a str,
    /// fal's listing, with its OpenAPI document.
    pub listing: &'a Listing,
    /// The endpoint's listed price, if any.
    pub price: Option<&'a ListedPrice>,
    /// The user's marks, by field name.
    pub marks: &'a BTreeMap<String, Mark>,
    /// Today, for the price's date.
    pub today: jiff::civil::Date,
    /// The pricing API's origin, for the price's source.
    pub origin: &'a str,
}

/// The catalogue entry for `draft`, or every reason it cannot be mapped safely.
pub fn map_entry(draft: &Draft<'_>) -> Result<ModelSpec, Vec<String>> {
    let listing = draft.listing;
    let document = listing
        .openapi
        .as_ref()
        .ok_or_else(|| vec!["fal sent no OpenAPI document for it".to_owned()])?;
    if let Some(error) = document.get("error") {
        let why = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(vec![format!(
            "fal could not give its schema: {}",
            clip(why)
        )]);
    }
    check_size(document).map_err(|e| vec![e])?;
    let input = input_schema(document, &listing.endpoint_id).map_err(|e| vec![e])?;
    let category = listing
        .metadata
        .as_ref()
        .map_or("", |m| m.category.as_str());
    let task = task_of(category).ok_or_else(|| {
        vec![format!(
            "its category `{}` is not a task acgs runs",
            clip(category)
        )]
    })?;
    let mut params = map_fields(document, input, draft.marks)?;
    let count = rules::count_mode(&mut params).map_err(|e| vec![e])?;
    let pricing = price::price(draft, task, &params, &count).map_err(|e| vec![e])?;
    let metadata = listing.metadata.clone().unwrap_or_default();
    Ok(ModelSpec {
        key: draft.key.to_owned(),
        provider: ProviderId::Fal,
        name: if metadata.display_name.is_empty() {
            listing.endpoint_id.clone()
        } else {
            clip(&metadata.display_name)
        },
        endpoint: listing.endpoint_id.clone(),
        task,
        count,
        max_text_chars: None,
        deadline_secs: if task.output() == MediaKind::Video {
            1800
        } else {
            900
        },
        pricing: Some(pricing),
        params,
        unsupported: BTreeMap::new(),
        default_for: Vec::new(),
        added: Some(format!(
            "acgs models add on {} from fal's model API ({}); fields marked: {}",
            draft.today,
            draft.origin,
            marks_text(draft.marks)
        )),
    })
}

fn marks_text(marks: &BTreeMap<String, Mark>) -> String {
    if marks.is_empty() {
        return "none".into();
    }
    marks
        .iter()
        .map(|(name, mark)| format!("{name}={mark:?}").to_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// fal text shown to the user: one line, at most 120 characters, no control characters.
fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(120).collect()
}

/// A document too large or too deep is refused before any of it is read.
fn check_size(document: &Value) -> Result<(), String> {
    let mut nodes = 0usize;
    let mut stack = vec![(document, 1usize)];
    while let Some((value, depth)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(format!(
                "its schema is too large (more than {MAX_NODES} values)"
            ));
        }
        if depth > MAX_DEPTH {
            return Err(format!(
                "its schema is nested more than {MAX_DEPTH} levels deep"
            ));
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// The input schema the submit path's request body names (`$ref` into `components.schemas`).
fn input_schema<'a>(document: &'a Value, endpoint: &str) -> Result<&'a Map<String, Value>, String> {
    let body = document
        .get("paths")
        .and_then(|p| p.get(format!("/{endpoint}")))
        .and_then(|p| p.get("post"))
        .and_then(|p| p.pointer("/requestBody/content/application~1json/schema"))
        .ok_or_else(|| format!("its schema has no request body for /{endpoint}"))?;
    let schema = resolve(document, body, 0)?;
    let object = schema
        .as_object()
        .filter(|o| o.get("type").and_then(Value::as_str) == Some("object"))
        .ok_or_else(|| "its input is not an object".to_owned())?;
    Ok(object)
}

/// Follow a `$ref` into `#/components/schemas/…`, a few hops at most.
fn resolve<'a>(document: &'a Value, schema: &'a Value, hops: u8) -> Result<&'a Value, String> {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return Ok(schema);
    };
    if hops >= 4 {
        return Err("its schema's references go more than four deep".into());
    }
    let name = reference
        .strip_prefix("#/components/schemas/")
        .filter(|n| !n.contains('/'))
        .ok_or_else(|| format!("it refers outside its own schemas ({})", clip(reference)))?;
    let target = document
        .pointer("/components/schemas")
        .and_then(|s| s.get(name))
        .ok_or_else(|| format!("it refers to a schema it lacks ({})", clip(name)))?;
    resolve(document, target, hops + 1)
}

/// fal's category to the task acgs runs it as.
fn task_of(category: &str) -> Option<TaskKind> {
    Some(match category {
        "text-to-image" => TaskKind::TextToImage,
        "image-to-image" => TaskKind::ImageToImage,
        "text-to-video" => TaskKind::TextToVideo,
        "image-to-video" => TaskKind::ImageToVideo,
        "video-to-video" => TaskKind::VideoToVideo,
        "text-to-speech" => TaskKind::TextToSpeech,
        "text-to-audio" => TaskKind::TextToAudio,
        "video-to-audio" => TaskKind::AddSound,
        "speech-to-text" => TaskKind::SpeechToText,
        _ => return None,
    })
}

/// Every field mapped by the rules, or every field that could not be.
fn map_fields(
    document: &Value,
    input: &Map<String, Value>,
    marks: &BTreeMap<String, Mark>,
) -> Result<BTreeMap<String, ParamSpec>, Vec<String>> {
    let empty = Map::new();
    let properties = input
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if properties.len() > MAX_FIELDS {
        return Err(vec![format!(
            "it has {} input fields; acgs maps at most {MAX_FIELDS}",
            properties.len()
        )]);
    }
    let required: Vec<&str> = input
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(unknown) = marks.keys().find(|m| !properties.contains_key(*m)) {
        return Err(vec![format!("`--mark {unknown}=…` names no field of it")]);
    }
    let mut params = BTreeMap::new();
    let mut problems = Vec::new();
    let mut flags = Flags::default();
    for (name, schema) in properties {
        if !rules::is_plain_name(name) {
            problems.push(format!(
                "a field named `{}`: acgs keeps only names of letters, digits and `_`",
                clip(&name.escape_debug().to_string())
            ));
            continue;
        }
        let is_required = required.contains(&name.as_str());
        match field(
            document,
            name,
            schema,
            marks.get(name).copied(),
            is_required,
            &mut flags,
        ) {
            Ok(Some(spec)) => {
                params.insert(name.clone(), spec);
            }
            Ok(None) => {}
            Err(reason) => problems.push(format!("field `{}`: {reason}", clip(name))),
        }
    }
    if problems.is_empty() {
        Ok(params)
    } else {
        Err(problems)
    }
}

/// The flags already given, so that two fields never share one.
#[derive(Default)]
struct Flags(Vec<String>);

impl Flags {
    /// `wanted` if free, else `fallback`; two fields never share a flag.
    fn take(&mut self, wanted: &str, fallback: &str) -> Result<String, String> {
        let flag = [wanted, fallback]
            .into_iter()
            .find(|f| !self.0.iter().any(|taken| taken == f))
            .ok_or_else(|| format!("it would share the input `{fallback}` with another field"))?;
        self.0.push(flag.to_owned());
        Ok(flag.to_owned())
    }
}

/// One field by the rules; `None` when it is left out.
fn field(
    document: &Value,
    name: &str,
    raw: &Value,
    mark: Option<Mark>,
    required: bool,
    flags: &mut Flags,
) -> Result<Option<ParamSpec>, String> {
    if mark == Some(Mark::Omit) {
        return if required {
            Err("it is required, so it cannot be left out".into())
        } else {
            Ok(None)
        };
    }
    let (schema, image_size) = unwrap_union(document, raw)?;
    let mut spec = ParamSpec {
        kind: FieldKind::Plain,
        ty: ParamType::String,
        values: Vec::new(),
        min: schema.get("minimum").and_then(Value::as_f64),
        max: schema.get("maximum").and_then(Value::as_f64),
        max_pixels: None,
        default: raw
            .get("default")
            .or_else(|| schema.get("default"))
            .cloned()
            .filter(|d| !d.is_null()),
        required,
        flag: None,
        media: None,
        max_seconds: None,
        max_items: None,
        description: schema
            .get("description")
            .and_then(Value::as_str)
            .map(|d| clip(d.lines().next().unwrap_or_default())),
    };
    let lower = name.to_ascii_lowercase();
    let kind = match mark {
        Some(Mark::Text) => FieldKind::Text,
        Some(Mark::Plain) => FieldKind::Plain,
        Some(Mark::Priced) => FieldKind::Priced,
        Some(Mark::Safety) => FieldKind::Safety,
        Some(Mark::Omit) | None => rules::kind_by_name(&lower),
    };
    if rules::is_count(&lower) && matches!(mark, Some(Mark::Plain | Mark::Text | Mark::Safety)) {
        return Err(
            "it counts outputs, so the price depends on it; it cannot be marked otherwise".into(),
        );
    }
    if kind == FieldKind::Media
        || (mark.is_none() && (lower.ends_with("_url") || lower.ends_with("_urls")))
    {
        media_field(&mut spec, &lower, &schema, flags)?;
        return Ok(Some(spec));
    }
    set_type(&mut spec, &schema, image_size)?;
    if mark == Some(Mark::Plain) && spec.ty == ParamType::String {
        return Err("a free string is text and is inspected; mark it `text` or `omit`".into());
    }
    // By the rules only free strings are text; numbers, booleans and enums are plain.
    spec.kind = if mark.is_none() && kind == FieldKind::Text && spec.ty != ParamType::String {
        FieldKind::Plain
    } else {
        kind
    };
    let kind = spec.kind;
    match kind {
        FieldKind::Safety => rules::lock_safety(&mut spec, &lower, mark.is_some())?,
        FieldKind::Priced => rules::check_bounded(&spec)?,
        FieldKind::Text => {
            if spec.ty != ParamType::String {
                return Err("a text field must be a free string".into());
            }
            // Other text fields get a flag no command or step key names: they keep their
            // default, and `--param` cannot set them past the guard.
            let unreachable = format!("field:{name}");
            let wanted = if matches!(lower.as_str(), "prompt" | "negative_prompt" | "text") {
                lower.clone()
            } else if required {
                return Err("a required text field acgs can only give as `prompt`, `negative_prompt` or `text`".into());
            } else {
                unreachable.clone()
            };
            spec.flag = Some(flags.take(&wanted, &unreachable)?);
        }
        FieldKind::Plain | FieldKind::Media => {}
    }
    Ok(Some(spec))
}

/// `anyOf` / `oneOf`: a nullable value becomes the value; a preset enum beside a
/// `{width, height}` object is an image size. Anything else is refused.
fn unwrap_union<'a>(document: &'a Value, raw: &'a Value) -> Result<(Value, Option<u64>), String> {
    let raw = resolve(document, raw, 0)?;
    let Some(options) = raw
        .get("anyOf")
        .or_else(|| raw.get("oneOf"))
        .and_then(Value::as_array)
    else {
        return Ok((raw.clone(), None));
    };
    let options: Vec<&Value> = options
        .iter()
        .map(|o| resolve(document, o, 0))
        .collect::<Result<_, _>>()?;
    let real: Vec<&&Value> = options
        .iter()
        .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
        .collect();
    match real.as_slice() {
        [one] => Ok(((**one).clone(), None)),
        [a, b] => {
            let (presets, sized) = if a.get("enum").is_some() {
                (a, b)
            } else {
                (b, a)
            };
            let side = |n: &str| {
                sized
                    .pointer(&format!("/properties/{n}/maximum"))
                    .and_then(Value::as_u64)
            };
            if presets.get("enum").is_some()
                && sized.pointer("/properties/width").is_some()
                && sized.pointer("/properties/height").is_some()
            {
                let pixels = match (side("width"), side("height")) {
                    (Some(w), Some(h)) => w.saturating_mul(h).min(DEFAULT_MAX_PIXELS),
                    _ => DEFAULT_MAX_PIXELS,
                };
                Ok(((**presets).clone(), Some(pixels)))
            } else {
                Err("a union of two types acgs cannot classify".into())
            }
        }
        _ => Err("a union acgs cannot classify".into()),
    }
}

/// The value type, with enum values kept.
fn set_type(spec: &mut ParamSpec, schema: &Value, image_size: Option<u64>) -> Result<(), String> {
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        if values.is_empty() || values.len() > MAX_VALUES {
            return Err(format!(
                "an enum of {} values (1 to {MAX_VALUES})",
                values.len()
            ));
        }
        if values
            .iter()
            .any(|v| !(v.is_string() || v.is_number() || v.is_boolean()))
        {
            return Err("an enum of values that are not strings, numbers or booleans".into());
        }
        spec.values = values
            .iter()
            .map(|v| {
                v.as_str()
                    .map_or_else(|| v.clone(), |s| Value::String(clip(s)))
            })
            .collect();
        spec.ty = if image_size.is_some() {
            ParamType::ImageSize
        } else {
            ParamType::Enum
        };
        spec.max_pixels = image_size;
        return Ok(());
    }
    spec.ty = match schema.get("type").and_then(Value::as_str) {
        Some("string") => ParamType::String,
        Some("integer") => ParamType::Integer,
        Some("number") => ParamType::Number,
        Some("boolean") => ParamType::Boolean,
        Some("array") => return Err("a list acgs cannot classify".into()),
        Some("object") => return Err("an object acgs cannot classify".into()),
        _ => return Err("a value without a type".into()),
    };
    Ok(())
}

/// A media field: the kind from its name, a string (or list of strings), never described as text.
fn media_field(
    spec: &mut ParamSpec,
    lower: &str,
    schema: &Value,
    flags: &mut Flags,
) -> Result<(), String> {
    let list = lower.ends_with("_urls");
    let ty = schema.get("type").and_then(Value::as_str);
    let items_ty = schema.pointer("/items/type").and_then(Value::as_str);
    let shaped = if list {
        ty == Some("array") && items_ty == Some("string")
    } else {
        ty == Some("string")
    };
    if !shaped {
        return Err("named like a file URL but it is not a URL string".into());
    }
    let about = format!(
        "{} {}",
        schema
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        schema
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
    .to_ascii_lowercase();
    let says_file = ["url", "file", "link"].iter().any(|w| about.contains(w));
    if (about.contains("prompt") || about.contains("text")) && !says_file {
        return Err(
            "named like a file URL but described as a prompt or text; mark it if it is text".into(),
        );
    }
    let stem = lower.trim_end_matches("_urls").trim_end_matches("_url");
    let media = media_of(stem).ok_or_else(|| {
        "named like a file URL, but its name does not say which media (image, video, audio)"
            .to_owned()
    })?;
    spec.kind = FieldKind::Media;
    spec.media = Some(media);
    spec.min = None;
    spec.max = None;
    spec.default = None;
    let last = ["end", "last", "tail"].iter().any(|w| stem.contains(w));
    let wanted = match (media, list) {
        (MediaKind::Image, true) => "images",
        (MediaKind::Video, true) => "videos",
        (MediaKind::Image, false) if last => "end_image",
        (MediaKind::Image, false) if !stem.contains("mask") => "image",
        (MediaKind::Video, false) => "video",
        (MediaKind::Audio, false) => "audio",
        _ => stem,
    };
    let flag = flags.take(wanted, &format!("field:{stem}"))?;
    let givable = ["image", "end_image", "images", "video", "videos", "audio"];
    if spec.required && !givable.contains(&flag.as_str()) {
        return Err(
            "a required file acgs cannot give (its inputs are image, end_image, images, video, videos, audio)"
                .into(),
        );
    }
    spec.flag = Some(flag);
    if list {
        spec.ty = ParamType::MediaList;
        let most = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_MAX_ITEMS, |n| u32::try_from(n).unwrap_or(u32::MAX));
        spec.max_items = Some(most.min(DEFAULT_MAX_ITEMS * 2));
    } else {
        spec.ty = ParamType::Media;
    }
    Ok(())
}

/// The media kind a URL field's name says.
fn media_of(stem: &str) -> Option<MediaKind> {
    const IMAGE: [&str; 8] = [
        "image",
        "frame",
        "mask",
        "photo",
        "face",
        "style",
        "reference",
        "control",
    ];
    if stem.contains("video") {
        Some(MediaKind::Video)
    } else if ["audio", "voice", "speech", "music", "sound"]
        .iter()
        .any(|w| stem.contains(w))
    {
        Some(MediaKind::Audio)
    } else if IMAGE.iter().any(|w| stem.contains(w)) {
        Some(MediaKind::Image)
    } else {
        None
    }
}
