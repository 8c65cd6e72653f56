//! Stage 2: validate parameters against the model's schema.
//!
//! Every field has a kind (text, media, priced, safety, plain). `--param` may not set a field
//! that has its own flag (`prompt`, `image`, …) or a media field; unknown fields are refused
//! unless `allow_unknown_params`; safety fields keep their defaults unless
//! `allow_safety_overrides`, and a change is recorded as an override for the audit log.

mod inputs;

use std::collections::BTreeMap;
use std::sync::Arc;

use acgs_core::catalog::{CountMode, FieldKind, ModelSpec, ParamSpec, ParamType, Params};
use acgs_core::config::Config;
use serde_json::{Number, Value};

pub(crate) use inputs::open_input;
pub(crate) use inputs::open_inputs;

use crate::error::EngineError;

/// A text field to inspect: the wire parameter, the flag that set it, and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextField {
    /// Wire parameter name.
    pub param: String,
    /// Flag or step key (`prompt`, `negative_prompt`, `system`, …).
    pub flag: String,
    /// The text (raw until inspected).
    pub text: String,
}

/// A validated request, before inspection.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    /// The model.
    pub model: Arc<ModelSpec>,
    /// Non-text parameters, defaults filled in.
    pub params: Params,
    /// Text fields.
    pub texts: Vec<TextField>,
    /// A system instruction (text models only).
    pub system: Option<TextField>,
    /// Requests to send (`-n` for models without a count parameter).
    pub requests: u32,
    /// Overrides in effect (audited).
    pub overrides: Vec<String>,
}

fn invalid(name: &str, reason: impl Into<String>) -> EngineError {
    EngineError::InvalidParam {
        name: name.chars().take(64).collect(),
        reason: reason.into(),
    }
}

/// Parse `raw` as a value of `spec`'s type, within its bounds.
pub(crate) fn parse_value(name: &str, spec: &ParamSpec, raw: &str) -> Result<Value, EngineError> {
    let raw = raw.trim();
    match spec.ty {
        ParamType::String => Ok(Value::String(raw.to_owned())),
        ParamType::Boolean => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(invalid(name, "expected true or false")),
        },
        ParamType::Integer => {
            let n: i64 = raw
                .parse()
                .map_err(|_| invalid(name, "expected a whole number"))?;
            check_bounds(name, spec, &Number::from(n))?;
            Ok(Value::Number(n.into()))
        }
        ParamType::Number => {
            let n: f64 = raw
                .parse()
                .map_err(|_| invalid(name, "expected a number"))?;
            let n = Number::from_f64(n).ok_or_else(|| invalid(name, "expected a finite number"))?;
            check_bounds(name, spec, &n)?;
            Ok(Value::Number(n))
        }
        ParamType::Enum => spec
            .values
            .iter()
            .find(|v| match v {
                Value::String(s) => s == raw,
                // `Value == str` is true only for strings, so numbers compare by their text.
                Value::Number(n) => n.to_string() == raw,
                _ => false,
            })
            .cloned()
            .ok_or_else(|| invalid(name, format!("expected one of {}", list(&spec.values)))),
        ParamType::ImageSize => parse_image_size(name, spec, raw),
        ParamType::Media | ParamType::MediaList => Err(invalid(
            name,
            "media fields are set from inputs, not --param",
        )),
    }
}

fn list(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_bounds(name: &str, spec: &ParamSpec, n: &Number) -> Result<(), EngineError> {
    let Some(value) = n.as_f64() else {
        return Err(invalid(name, "expected a number"));
    };
    if spec.min.is_some_and(|min| value < min) || spec.max.is_some_and(|max| value > max) {
        let bound = |b: Option<f64>| b.map_or_else(|| "…".to_owned(), |v| v.to_string());
        return Err(invalid(
            name,
            format!(
                "must be between {} and {}",
                bound(spec.min),
                bound(spec.max)
            ),
        ));
    }
    Ok(())
}

/// A preset name or `WIDTHxHEIGHT` (sent as `{width, height}`), within `max_pixels`.
fn parse_image_size(name: &str, spec: &ParamSpec, raw: &str) -> Result<Value, EngineError> {
    if let Some(preset) = spec.values.iter().find(|v| v.as_str() == Some(raw)) {
        return Ok(preset.clone());
    }
    let (w, h) = raw
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u64>().ok()?, h.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| {
            invalid(
                name,
                format!("expected one of {} or WIDTHxHEIGHT", list(&spec.values)),
            )
        })?;
    let pixels = w.saturating_mul(h);
    if w == 0 || h == 0 || spec.max_pixels.is_some_and(|max| pixels > max) {
        return Err(invalid(
            name,
            format!("{w}x{h} is outside the allowed size"),
        ));
    }
    Ok(serde_json::json!({ "width": w, "height": h }))
}

/// Validate `--param` pairs, text fields and `-n` against `model`.
pub(crate) fn validate(
    model: &Arc<ModelSpec>,
    texts: &BTreeMap<String, String>,
    raw_params: &[(String, String)],
    count: Option<u32>,
    config: &Config,
) -> Result<Validated, EngineError> {
    let mut params = Params::new();
    let mut overrides = Vec::new();
    for (name, raw) in raw_params {
        if let Some(reason) = model.unsupported.get(name) {
            return Err(invalid(
                name,
                format!("`{}` does not take it: {reason}", model.key),
            ));
        }
        let Some(spec) = model.params.get(name) else {
            if config.allow_unknown_params {
                params.insert(name.clone(), Value::String(raw.clone()));
                overrides.push(format!("unknown_param:{name}"));
                continue;
            }
            let close =
                acgs_core::suggest::closest(name, model.params.keys().map(String::as_str), 2);
            return Err(invalid(
                name,
                format!(
                    "`{}` has no such parameter{}; `acgs models show {}` lists them",
                    model.key,
                    acgs_core::suggest::did_you_mean(&close),
                    model.key
                ),
            ));
        };
        if let Some(flag) = &spec.flag {
            return Err(invalid(
                name,
                format!("set it with the `{flag}` flag or step key, not --param"),
            ));
        }
        if spec.kind == FieldKind::Media {
            return Err(invalid(
                name,
                "media fields are set from inputs, not --param",
            ));
        }
        let value = parse_value(name, spec, raw)?;
        if spec.kind == FieldKind::Safety && spec.default.as_ref() != Some(&value) {
            if !config.allow_safety_overrides {
                return Err(EngineError::SafetyOverride { name: name.clone() });
            }
            overrides.push(format!("safety:{name}={value}"));
        }
        params.insert(name.clone(), value);
    }
    let requests = apply_count(model, &mut params, count)?;
    for (name, spec) in &model.params {
        if let (false, Some(default), true) = (
            params.contains_key(name),
            &spec.default,
            spec.flag.is_none(),
        ) {
            params.insert(name.clone(), default.clone());
        }
    }
    let (text_fields, system) = collect_texts(model, texts)?;
    for (name, spec) in &model.params {
        let present = params.contains_key(name) || text_fields.iter().any(|t| &t.param == name);
        if spec.required && !present && spec.kind != FieldKind::Media {
            let how = spec.flag.as_deref().unwrap_or(name);
            return Err(invalid(name, format!("is required (give `{how}`)")));
        }
    }
    Ok(Validated {
        model: Arc::clone(model),
        params,
        texts: text_fields,
        system,
        requests,
        overrides,
    })
}

/// Honour `-n`: set the model's count parameter, or send that many requests.
fn apply_count(
    model: &ModelSpec,
    params: &mut Params,
    count: Option<u32>,
) -> Result<u32, EngineError> {
    let Some(n) = count else { return Ok(1) };
    if n == 0 {
        return Err(invalid("-n", "must be at least 1"));
    }
    match &model.count {
        CountMode::Param(name) => {
            let spec = model
                .params
                .get(name)
                .ok_or_else(|| invalid(name, "missing count parameter"))?;
            let value = parse_value(name, spec, &n.to_string()).map_err(|_| {
                invalid(
                    "-n",
                    format!(
                        "`{}` makes between {} and {} outputs per request",
                        model.key,
                        spec.min.unwrap_or(1.0),
                        spec.max.unwrap_or(1.0)
                    ),
                )
            })?;
            params.insert(name.clone(), value);
            Ok(1)
        }
        CountMode::Requests | CountMode::Product(_) if n == 1 => Ok(1),
        CountMode::Requests | CountMode::Product(_) => Err(EngineError::CountUnsupported {
            model: model.key.clone(),
        }),
    }
}

/// Text flags → the model's text fields; `system` is kept apart for text models.
fn collect_texts(
    model: &ModelSpec,
    texts: &BTreeMap<String, String>,
) -> Result<(Vec<TextField>, Option<TextField>), EngineError> {
    let mut fields = Vec::new();
    let mut system = None;
    for (flag, text) in texts {
        match model.field_for_flag(flag) {
            Some((param, spec)) if spec.kind == FieldKind::Text => {
                let field = TextField {
                    param: param.to_owned(),
                    flag: flag.clone(),
                    text: text.clone(),
                };
                if flag == "system" {
                    system = Some(field);
                } else {
                    fields.push(field);
                }
            }
            _ => {
                return Err(invalid(
                    flag,
                    format!("`{}` does not take `{flag}`", model.key),
                ));
            }
        }
    }
    Ok((fields, system))
}

#[cfg(test)]
mod tests {
    use super::*;
    use acgs_core::catalog::Catalog;
    use acgs_core::task::ProviderId;

    const CATALOG: &str = r#"
[m]
name = "m"
endpoint = "o/a/b"
task = "text_to_image"
count = { param = "num_images" }
params.prompt = { kind = "text", type = "string", required = true, flag = "prompt" }
params.num_images = { kind = "priced", type = "integer", min = 1, max = 4, default = 1 }
params.image_size = { kind = "priced", type = "image_size", values = ["square", "landscape_4_3"], default = "square", max_pixels = 4194304 }
params.guidance = { kind = "plain", type = "number", min = 1, max = 20, default = 3.5 }
params.format = { kind = "plain", type = "enum", values = ["jpeg", "png"], default = "jpeg" }
params.enable_safety_checker = { kind = "safety", type = "boolean", default = true }
params.image_url = { kind = "media", type = "media", media = "image" }
"#;

    fn model() -> Arc<ModelSpec> {
        Catalog::from_toml(ProviderId::Fal, "t", CATALOG)
            .expect("catalogue")
            .resolve("m")
            .expect("m")
    }

    fn texts() -> BTreeMap<String, String> {
        BTreeMap::from([("prompt".to_owned(), "a fox".to_owned())])
    }

    fn run(params: &[(&str, &str)], config: &Config) -> Result<Validated, EngineError> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        validate(&model(), &texts(), &params, None, config)
    }

    #[test]
    fn defaults_fill_in_and_values_parse_by_type() {
        let v = run(
            &[
                ("guidance", "7.5"),
                ("image_size", "800x600"),
                ("format", "png"),
            ],
            &Config::default(),
        )
        .expect("valid");
        assert_eq!(v.params["guidance"], serde_json::json!(7.5));
        assert_eq!(
            v.params["image_size"],
            serde_json::json!({"width": 800, "height": 600})
        );
        assert_eq!(
            v.params["enable_safety_checker"],
            Value::Bool(true),
            "safety defaults are sent explicitly"
        );
        assert_eq!(v.params["num_images"], serde_json::json!(1));
        assert_eq!(v.texts[0].text, "a fox");
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_named() {
        for (k, v) in [
            ("guidance", "99"),
            ("format", "gif"),
            ("num_images", "two"),
            ("image_size", "99999x99999"),
        ] {
            let err = run(&[(k, v)], &Config::default()).expect_err(k);
            assert!(err.to_string().contains(k), "{err}");
        }
    }

    #[test]
    fn flagged_media_and_unknown_fields_are_refused() {
        for k in ["prompt", "image_url", "surprise"] {
            assert!(run(&[(k, "x")], &Config::default()).is_err(), "{k}");
        }
        let config = Config {
            allow_unknown_params: true,
            ..Config::default()
        };
        let v = run(&[("surprise", "x")], &config).expect("allowed by config");
        assert_eq!(v.overrides, vec!["unknown_param:surprise".to_owned()]);
    }

    #[test]
    fn safety_switches_need_the_config_switch_and_are_recorded() {
        let err =
            run(&[("enable_safety_checker", "false")], &Config::default()).expect_err("refused");
        assert_eq!(acgs_core::UserFacing::kind(&err).exit_code(), 3);
        assert!(
            run(&[("enable_safety_checker", "true")], &Config::default()).is_ok(),
            "the default is fine"
        );
        let config = Config {
            allow_safety_overrides: true,
            ..Config::default()
        };
        let v = run(&[("enable_safety_checker", "false")], &config).expect("allowed");
        assert_eq!(
            v.overrides,
            vec!["safety:enable_safety_checker=false".to_owned()]
        );
    }

    #[test]
    fn count_sets_the_count_parameter_within_range() {
        let m = model();
        let v = validate(&m, &texts(), &[], Some(3), &Config::default()).expect("valid");
        assert_eq!(v.params["num_images"], serde_json::json!(3));
        assert!(validate(&m, &texts(), &[], Some(9), &Config::default()).is_err());
    }

    #[test]
    fn a_missing_prompt_is_refused() {
        assert!(validate(&model(), &BTreeMap::new(), &[], None, &Config::default()).is_err());
    }
}
