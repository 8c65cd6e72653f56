//! Model catalogue: what each model is, which parameters it takes (with field kinds), and its price.
//!
//! Catalogues are data: every provider crate ships a `catalog.toml` read with
//! [`Catalog::from_toml`], and users add or override entries in their configuration
//! (`[default.models.<key>]`), merged table by table with [`Catalog::apply_overrides`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::params::{CountMode, FieldKind, ParamSpec, ParamType, Params};

use crate::error::{Error, Result};
use crate::pricing::Pricing;
use crate::task::{ProviderId, TaskKind};

/// A model in the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Catalogue key, e.g. `flux_dev`.
    pub key: String,
    /// The provider that serves it.
    pub provider: ProviderId,
    /// Human name.
    pub name: String,
    /// Provider endpoint or model id, e.g. `fal-ai/flux/dev`.
    pub endpoint: String,
    /// What the model does.
    pub task: TaskKind,
    /// How `-n` is honoured.
    #[serde(default = "default_count")]
    pub count: CountMode,
    /// Character limit for the main text field, when the model has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_text_chars: Option<u32>,
    /// How long a job may take before acgs stops waiting (the run stays resumable).
    #[serde(default = "default_deadline")]
    pub deadline_secs: u64,
    /// Price; `None` means unpriced, refused unless `allow_unpriced_models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// Parameters by wire name.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Parameters users ask for that this API refuses, with the reason shown (e.g. Veo's
    /// Vertex-only `seed`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unsupported: BTreeMap<String, String>,
    /// The uses this model is the default model of, when a command is given no `--model`: a
    /// task (`text_to_image`), or a task and a variant (`avatar:audio`, `image_to_image:multi`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_for: Vec<String>,
    /// For an entry `acgs models add` wrote: when, from where, and which fields the user
    /// marked by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<String>,
}

fn default_count() -> CountMode {
    CountMode::Requests
}

const fn default_deadline() -> u64 {
    900
}

impl ModelSpec {
    /// The field set by a flag or step key (`prompt`, `image`, `text`, …), if the model has one.
    #[must_use]
    pub fn field_for_flag(&self, flag: &str) -> Option<(&str, &ParamSpec)> {
        self.params
            .iter()
            .find(|(_, spec)| spec.flag.as_deref() == Some(flag))
            .map(|(name, spec)| (name.as_str(), spec))
    }

    /// `provider:key`, unique across the whole catalogue.
    #[must_use]
    pub fn qualified_key(&self) -> String {
        format!("{}:{}", self.provider, self.key)
    }

    /// Outputs one request makes with these parameters (its count parameter, else one).
    #[must_use]
    pub fn outputs(&self, params: &Params) -> u64 {
        match &self.count {
            CountMode::Param(name) => params.get(name).and_then(Value::as_u64).unwrap_or(1).max(1),
            CountMode::Requests => 1,
            CountMode::Product(names) => names
                .iter()
                .map(|n| params.get(n).and_then(Value::as_u64).unwrap_or(1).max(1))
                .fold(1u64, u64::saturating_mul),
        }
    }

    fn check(&self, origin: &str) -> Result<()> {
        let invalid = |reason: String| Error::InvalidCatalog {
            origin: origin.to_owned(),
            reason: format!("model `{}`: {reason}", self.key),
        };
        if !is_valid_key(&self.key) {
            return Err(invalid(
                "keys are [a-z0-9_] and at most 64 characters".into(),
            ));
        }
        let counted: &[String] = match &self.count {
            CountMode::Param(name) => std::slice::from_ref(name),
            CountMode::Product(names) => names,
            CountMode::Requests => &[],
        };
        for name in counted {
            let ok = self
                .params
                .get(name)
                .is_some_and(|p| p.ty == ParamType::Integer);
            if !ok {
                return Err(invalid(format!(
                    "count parameter `{name}` must be an integer parameter"
                )));
            }
        }
        for (name, spec) in &self.params {
            let needs_values = matches!(spec.ty, ParamType::Enum | ParamType::ImageSize);
            if needs_values && spec.values.is_empty() {
                return Err(invalid(format!("parameter `{name}` needs `values`")));
            }
            let is_media_type = matches!(spec.ty, ParamType::Media | ParamType::MediaList);
            if is_media_type != (spec.kind == FieldKind::Media)
                || (is_media_type && spec.media.is_none())
            {
                return Err(invalid(format!(
                    "parameter `{name}`: media fields have kind `media`, a media type and `media`"
                )));
            }
        }
        if let Some(pricing) = &self.pricing {
            // Only steps run on this machine cost nothing; a provider's model at $0 would be
            // spending the budget never sees.
            let free = self.provider == ProviderId::Local;
            pricing.check(&self.params, free).map_err(invalid)?;
        }
        Ok(())
    }
}

fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The set of models acgs knows, keyed by `provider:key` (cheap to clone: entries are shared).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Each model's table as read, which user entries are merged into.
    raw: BTreeMap<String, Arc<toml::Table>>,
    models: BTreeMap<String, Arc<ModelSpec>>,
}

impl Catalog {
    /// Read a provider's `catalog.toml`: one table per model key.
    pub fn from_toml(provider: ProviderId, origin: &str, text: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidCatalog {
            origin: origin.to_owned(),
            reason,
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        let mut catalog = Self::default();
        for (key, value) in table {
            let toml::Value::Table(entry) = value else {
                return Err(invalid(format!("`{key}` is not a table")));
            };
            catalog.insert(provider, &key, entry, origin)?;
        }
        Ok(catalog)
    }

    fn insert(
        &mut self,
        provider: ProviderId,
        key: &str,
        mut entry: toml::Table,
        origin: &str,
    ) -> Result<()> {
        entry.insert("key".into(), toml::Value::String(key.to_owned()));
        entry.insert(
            "provider".into(),
            toml::Value::String(provider.as_str().to_owned()),
        );
        let spec: ModelSpec =
            entry
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| Error::InvalidCatalog {
                    origin: origin.to_owned(),
                    reason: format!("model `{key}`: {}", e.message()),
                })?;
        spec.check(origin)?;
        let qualified = spec.qualified_key();
        self.raw.insert(qualified.clone(), Arc::new(entry));
        self.models.insert(qualified, Arc::new(spec));
        Ok(())
    }

    /// Add every model of `other`; later entries replace earlier ones with the same `provider:key`.
    pub fn extend(&mut self, other: Self) {
        self.raw.extend(other.raw);
        self.models.extend(other.models);
    }

    /// Apply user entries (`[models.<key>]` tables). An entry for a known key is merged field by
    /// field (a `pricing` table replaces the whole price); a new key needs `provider`, `name`,
    /// `endpoint` and `task`.
    pub fn apply_overrides(
        &mut self,
        overrides: &BTreeMap<String, toml::Table>,
        origin: &str,
    ) -> Result<()> {
        for (key, table) in overrides {
            let provider = match table.get("provider") {
                Some(toml::Value::String(name)) => ProviderId::from_name(name).ok_or_else(|| Error::InvalidCatalog {
                    origin: origin.to_owned(),
                    reason: format!("model `{key}`: unknown provider `{name}`"),
                })?,
                Some(_) => {
                    return Err(Error::InvalidCatalog {
                        origin: origin.to_owned(),
                        reason: format!("model `{key}`: `provider` must be a string"),
                    });
                }
                None => self.unique_provider_of(key).ok_or_else(|| Error::InvalidCatalog {
                    origin: origin.to_owned(),
                    reason: format!("model `{key}` is new: it needs `provider`, `name`, `endpoint` and `task`"),
                })?,
            };
            let qualified = format!("{provider}:{key}");
            let mut merged = self
                .raw
                .get(&qualified)
                .map(|table| toml::Table::clone(table))
                .unwrap_or_default();
            for (field, value) in table {
                merged.insert(field.clone(), value.clone());
            }
            self.insert(provider, key, merged, origin)?;
        }
        Ok(())
    }

    fn unique_provider_of(&self, key: &str) -> Option<ProviderId> {
        let mut found = self
            .models
            .values()
            .filter(|m| m.key == key)
            .map(|m| m.provider);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Look a model up by `key` or `provider:key`; an unknown name is an error naming the closest keys.
    pub fn resolve(&self, name: &str) -> Result<Arc<ModelSpec>> {
        if let Some(model) = self.models.get(name) {
            return Ok(Arc::clone(model));
        }
        let matches: Vec<&Arc<ModelSpec>> =
            self.models.values().filter(|m| m.key == name).collect();
        match matches.as_slice() {
            [one] => Ok(Arc::clone(one)),
            [] => Err(Error::UnknownModel {
                key: name.chars().take(64).collect(),
                closest: self.closest_keys(name, 3),
            }),
            many => Err(Error::AmbiguousModel {
                key: name.to_owned(),
                candidates: many
                    .iter()
                    .map(|m| m.qualified_key())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The model a command uses for `purpose` (see [`ModelSpec::default_for`]) when it is given
    /// no `--model`: the first by `provider:key` of those that claim it (a user who wants
    /// another default sets `default_for = []` on the built-in entry and claims it on theirs).
    pub fn default_for(&self, purpose: &str) -> Result<Arc<ModelSpec>> {
        self.models
            .values()
            .find(|m| m.default_for.iter().any(|p| p == purpose))
            .map(Arc::clone)
            .ok_or_else(|| Error::UnknownModel {
                key: format!("(the default model for {purpose})"),
                closest: Vec::new(),
            })
    }

    /// Up to `limit` keys closest to `name` ([`crate::suggest::closest`]).
    #[must_use]
    pub fn closest_keys(&self, name: &str, limit: usize) -> Vec<String> {
        let name = name.rsplit(':').next().unwrap_or(name);
        let keys = self.models.values().map(|m| m.key.as_str());
        crate::suggest::closest(name, keys, limit)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Every model, ordered by `provider:key`.
    pub fn models(&self) -> impl Iterator<Item = &Arc<ModelSpec>> {
        self.models.values()
    }

    /// Number of models.
    #[must_use]
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the catalogue is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Levenshtein distance over characters.
#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[flux_dev]
name = "FLUX.1 dev"
endpoint = "fal-ai/flux/dev"
task = "text_to_image"
count = { param = "num_images" }
[flux_dev.pricing]
unit = "megapixel"
rate = "0.025"
quantity_param = "image_size"
priced_on = "2026-11-27"
source = "https://fal.ai/models/fal-ai/flux/dev"
verified = false
[flux_dev.params.prompt]
kind = "text"
type = "string"
required = true
flag = "prompt"
[flux_dev.params.num_images]
kind = "priced"
type = "integer"
min = 1
max = 4
default = 1
[flux_dev.params.image_size]
kind = "priced"
type = "image_size"
values = ["square_hd", "landscape_4_3"]
default = "landscape_4_3"

[flux_schnell]
name = "FLUX.1 schnell"
endpoint = "fal-ai/flux/schnell"
task = "text_to_image"
"#;

    fn catalog() -> Catalog {
        Catalog::from_toml(ProviderId::Fal, "test", SAMPLE).expect("valid catalogue")
    }

    #[test]
    fn resolves_plain_and_qualified_keys() {
        let c = catalog();
        assert_eq!(
            c.resolve("flux_dev").map(|m| m.endpoint.clone()).ok(),
            Some("fal-ai/flux/dev".into())
        );
        assert!(c.resolve("fal:flux_dev").is_ok());
        assert!(c.resolve("gemini:flux_dev").is_err());
    }

    #[test]
    fn unknown_key_names_the_closest() {
        let Err(Error::UnknownModel { closest, .. }) = catalog().resolve("flux_dve") else {
            panic!("expected an unknown-model error");
        };
        assert_eq!(closest.first().map(String::as_str), Some("flux_dev"));
    }

    #[test]
    fn overrides_merge_into_known_entries() {
        let mut c = catalog();
        let pricing: toml::Table = toml::from_str(
            "[flux_dev.pricing]\nunit = \"megapixel\"\nrate = \"0.03\"\nquantity_param = \"image_size\"\npriced_on = \"2026-12-01\"\nsource = \"api\"\nverified = true",
        )
        .expect("toml");
        let overrides: BTreeMap<String, toml::Table> = pricing
            .into_iter()
            .map(|(k, v)| (k, v.as_table().cloned().unwrap_or_default()))
            .collect();
        c.apply_overrides(&overrides, "user config")
            .expect("override applies");
        let m = c.resolve("flux_dev").expect("still there");
        assert_eq!(m.pricing.as_ref().map(|p| p.rate.micros()), Some(30_000));
        assert_eq!(m.params.len(), 3, "params kept from the built-in entry");
    }

    #[test]
    fn new_user_models_need_a_provider() {
        let mut c = catalog();
        let mut table = toml::Table::new();
        table.insert("name".into(), "x".into());
        let overrides = BTreeMap::from([("my_model".to_owned(), table)]);
        assert!(c.apply_overrides(&overrides, "user config").is_err());
    }

    #[test]
    fn malformed_entries_are_refused_with_origin() {
        let bad = "[x]\nname = \"x\"\nendpoint = \"e\"\ntask = \"text_to_image\"\nsurprise = 1\n";
        let err =
            Catalog::from_toml(ProviderId::Fal, "catalog.toml", bad).expect_err("unknown field");
        assert!(err.to_string().contains("catalog.toml"));
    }
}
