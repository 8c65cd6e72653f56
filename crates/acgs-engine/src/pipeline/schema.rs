//! The version-1 pipeline file (DESIGN.md §3.7), read with serde-saphyr: includes and unknown
//! tags refused, alias, depth and size budgets on, unknown keys rejected, duplicate keys an error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::problems::Problem;

/// The largest pipeline file acgs reads.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// A pipeline file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineFile {
    /// Always 1.
    pub version: Spanned<u32>,
    /// A name for people.
    #[serde(default)]
    pub name: Option<String>,
    /// Declared inputs, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Run settings (may tighten the configured limits, never loosen them).
    #[serde(default)]
    pub settings: Settings,
    /// The steps, in any order.
    pub steps: Vec<StepSpec>,
}

/// What an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// Text.
    Text,
    /// A path to an image.
    Image,
    /// A path to a video.
    Video,
    /// A path to an audio file.
    Audio,
}

/// A declared input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: InputType,
    /// Used when the run gives none.
    #[serde(default)]
    pub default: Option<String>,
    /// For people.
    #[serde(default)]
    pub description: Option<String>,
}

/// What a failed step does to the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Start nothing new; the run fails.
    #[default]
    Stop,
    /// Run every step that does not depend on the failed one; the run still fails.
    Continue,
}

/// `settings`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// Steps running at once (1–32; default 4).
    #[serde(default)]
    pub max_parallel: Option<Spanned<u32>>,
    /// After a failed step.
    #[serde(default)]
    pub on_error: OnError,
    /// Limits for this run: tighter than the configuration, or refused.
    #[serde(default)]
    pub cost_management: Option<Spanned<CostSettings>>,
}

/// `settings.cost_management`: decimal strings or numbers in dollars.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CostSettings {
    /// Worst case of the whole run.
    #[serde(default)]
    pub max_cost_per_run: Option<Scalar>,
    /// Spend per day.
    #[serde(default)]
    pub daily_limit: Option<Scalar>,
    /// Warn at or above this estimate.
    #[serde(default)]
    pub warn_threshold: Option<Scalar>,
    /// Ask before spending.
    #[serde(default)]
    pub require_confirmation: Option<bool>,
}

/// A scalar as written (`5`, `"5"`, `3.00`, `true`), kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub(crate) struct Scalar(pub String);

impl TryFrom<serde_json::Value> for Scalar {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        match value {
            serde_json::Value::String(s) => Ok(Self(s)),
            serde_json::Value::Number(n) => Ok(Self(n.to_string())),
            serde_json::Value::Bool(b) => Ok(Self(b.to_string())),
            _ => Err("expected a single value (text, number or true/false)".into()),
        }
    }
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepSpec {
    /// Unique id: `[a-z0-9_-]`, at most 64 characters.
    pub id: Spanned<String>,
    /// Catalogue key.
    pub model: Spanned<String>,
    /// Text fields by step key.
    #[serde(default)]
    pub prompt: Option<Spanned<String>>,
    /// What to avoid.
    #[serde(default)]
    pub negative_prompt: Option<Spanned<String>>,
    /// Text to speak or use.
    #[serde(default)]
    pub text: Option<Spanned<String>>,
    /// A system instruction (text models).
    #[serde(default)]
    pub system: Option<Spanned<String>>,
    /// A question (understanding models; the model's prompt).
    #[serde(default)]
    pub question: Option<Spanned<String>>,
    /// One image.
    #[serde(default)]
    pub image: Option<Spanned<String>>,
    /// The last frame, for models that move from `image` to it.
    #[serde(default)]
    pub end_image: Option<Spanned<String>>,
    /// Several images: a list, or one reference to a whole list.
    #[serde(default)]
    pub images: Option<Spanned<OneOrMany>>,
    /// Several videos: a list, or one reference to a whole list (`{{ steps.clips.videos }}`).
    #[serde(default)]
    pub videos: Option<Spanned<OneOrMany>>,
    /// Run the step once per item of a list: `{{ steps.ID.items }}`, `images` or `videos`.
    #[serde(default)]
    pub each: Option<Spanned<String>>,
    /// A text step writes a JSON list of at most this many strings (1–64), its `items`.
    #[serde(default)]
    pub max_items: Option<Spanned<u32>>,
    /// A video.
    #[serde(default)]
    pub video: Option<Spanned<String>>,
    /// An audio file.
    #[serde(default)]
    pub audio: Option<Spanned<String>>,
    /// Model parameters: literals, or `{{ inputs.name }}`.
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<Scalar>>,
    /// Outputs per request or requests (what `-n` means for the model).
    #[serde(default)]
    pub n: Option<u32>,
    /// Extra ordering: steps that must finish first.
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
}

/// A list field's value: one entry (a reference to a whole list), or a list of entries. (Its
/// entries carry the field's line: serde cannot keep spans through an untagged enum.)
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    /// `images: "{{ steps.grid.images }}"`.
    One(String),
    /// `images: [a.png, "{{ steps.still.image }}"]`.
    Many(Vec<String>),
}

/// The entries of a list field, each with the field's place in the file.
fn entries(field: &Spanned<OneOrMany>) -> Vec<Spanned<String>> {
    let values = match &field.value {
        OneOrMany::One(one) => vec![one.clone()],
        OneOrMany::Many(many) => many.clone(),
    };
    values
        .into_iter()
        .map(|value| Spanned {
            value,
            referenced: field.referenced,
            defined: field.defined,
        })
        .collect()
}

/// The text step keys, in the order they are read.
pub(crate) const TEXT_KEYS: [&str; 5] = ["prompt", "negative_prompt", "text", "system", "question"];
/// The single-file media step keys.
pub(crate) const MEDIA_KEYS: [&str; 4] = ["image", "end_image", "video", "audio"];

impl StepSpec {
    /// The text fields that are set, by step key.
    #[must_use]
    pub(crate) fn texts(&self) -> Vec<(&'static str, &Spanned<String>)> {
        let fields = [
            &self.prompt,
            &self.negative_prompt,
            &self.text,
            &self.system,
            &self.question,
        ];
        TEXT_KEYS
            .into_iter()
            .zip(fields)
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .collect()
    }

    /// The media fields that are set, by step key (`images` and `videos` once per entry).
    #[must_use]
    pub(crate) fn media(&self) -> Vec<(&'static str, Spanned<String>)> {
        let mut out: Vec<(&'static str, Spanned<String>)> = MEDIA_KEYS
            .into_iter()
            .zip([&self.image, &self.end_image, &self.video, &self.audio])
            .filter_map(|(k, v)| Some((k, v.clone()?)))
            .collect();
        for (key, list) in [("images", &self.images), ("videos", &self.videos)] {
            for entry in list.iter().flat_map(entries) {
                out.push((key, entry));
            }
        }
        out
    }
}

/// Parse `source` with the hardened options; the error is one line with its line and column.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(source: &str) -> Result<T, String> {
    if source.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the file is larger than {} KiB",
            MAX_FILE_BYTES / 1024
        ));
    }
    serde_saphyr::from_str_with_options(source, options()).map_err(|e| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("unreadable YAML")
            .trim_start_matches("error: ")
            .to_owned()
    })
}

/// The most schema problems gathered from one file.
const MAX_SCHEMA_PROBLEMS: usize = 50;

/// A problem the schema found: its line (0 when unknown) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaProblem {
    /// 1-based line, or 0.
    pub line: u32,
    /// What is wrong.
    pub message: String,
    /// The key written on that line, if there is one.
    pub key: Option<String>,
}

impl SchemaProblem {
    /// A problem the schema found: an unknown key (with the closest known ones), or a value of
    /// the wrong shape.
    pub(crate) fn into_problem(self, file: &str) -> Problem {
        let problem = self;
        let unknown = problem
            .message
            .strip_prefix("unknown field `")
            .and_then(|rest| {
                let (name, rest) = rest.split_once('`')?;
                let known: Vec<&str> = rest
                    .strip_prefix(", expected one of ")
                    .map(|list| list.split(", ").map(|k| k.trim_matches('`')).collect())
                    .unwrap_or_default();
                Some((name, known))
            });
        let (code, message, hint) = match unknown {
            Some((name, known)) => {
                let close = acgs_core::suggest::closest(name, known.iter().copied(), 2);
                (
                    "pipeline.unknown_key",
                    format!(
                        "unknown key `{name}`{}",
                        acgs_core::suggest::did_you_mean(&close)
                    ),
                    Some(format!("the keys here are {}", known.join(", "))),
                )
            }
            None => (
                "pipeline.schema",
                match problem.key {
                    Some(key) => format!("`{key}`: {}", problem.message),
                    None => problem.message,
                },
                None,
            ),
        };
        Problem {
            file: file.to_owned(),
            line: (problem.line > 0).then_some(problem.line),
            step: None,
            code,
            message,
            hint,
        }
    }
}

/// Parse a pipeline file, gathering every schema problem rather than the first: after each one
/// that sits on an entry of its own (an unknown key, a value of the wrong type), that entry is
/// blanked — its line and the more-indented lines under it, so that line numbers stay true —
/// and the rest is read again. The file as repaired, when it could be read, comes back too, so
/// that the checks after the schema find their problems in the same pass.
pub(crate) fn parse_file(source: &str) -> (Option<PipelineFile>, Vec<SchemaProblem>) {
    let mut text = source.to_owned();
    let mut found: Vec<SchemaProblem> = Vec::new();
    while found.len() < MAX_SCHEMA_PROBLEMS {
        let message = match parse::<PipelineFile>(&text) {
            Ok(file) => return (Some(file), found),
            Err(message) => message,
        };
        let mut problem = located(&message);
        problem.key = key_on_line(&text, problem.line);
        // Only a misplaced entry can be cut out and the rest read again; a broken structure,
        // a limit or a missing key ends the search.
        let entry = ["unknown field", "invalid type", "invalid value", "invalid "]
            .iter()
            .any(|start| problem.message.starts_with(start));
        let seen = found.iter().any(|p| p.line == problem.line);
        let line = problem.line;
        found.push(problem);
        if !entry
            || line == 0
            || seen
            || source.len() > MAX_FILE_BYTES
            || !blank_entry(&mut text, line)
        {
            break;
        }
    }
    (None, found)
}

/// serde-saphyr's `message at line L, column C` (or `line L column C: message`).
fn located(message: &str) -> SchemaProblem {
    let trailing = message.rsplit_once(" at line ").and_then(|(text, at)| {
        let line = at
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some((line, text))
    });
    let leading = || {
        let rest = message.strip_prefix("line ")?;
        let (line, rest) = rest.split_once(' ')?;
        let text = rest.split_once(": ").map_or(rest, |(_, m)| m);
        Some((line.parse::<u32>().ok()?, text))
    };
    let (line, text) = trailing.or_else(leading).unwrap_or((0, message));
    SchemaProblem {
        line,
        message: text.to_owned(),
        key: None,
    }
}

/// The mapping key written on 1-based `line` (`n` in `    n: two`), if one is.
fn key_on_line(text: &str, line: u32) -> Option<String> {
    let at = usize::try_from(line).ok()?.checked_sub(1)?;
    let written = text.lines().nth(at)?.trim_start();
    let written = written.strip_prefix('-').unwrap_or(written).trim_start();
    let (key, _) = written.split_once(':')?;
    let key = key.trim();
    (!key.is_empty() && key.len() <= 64 && !key.contains(['{', '[', '"', '\'']))
        .then(|| key.to_owned())
}

/// Blank the mapping entry on 1-based `line` and the lines nested under it; false when the line
/// holds no entry that can go on its own (a flow collection, a bare list item).
fn blank_entry(text: &mut String, line: u32) -> bool {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let Some(at) = usize::try_from(line).ok().and_then(|l| l.checked_sub(1)) else {
        return false;
    };
    let Some(target) = lines.get(at).cloned() else {
        return false;
    };
    let indent = target.len() - target.trim_start().len();
    let (kept, entry) = match target.trim_start().strip_prefix('-') {
        // `- key: value`: the item stays (`-`), its first entry goes.
        Some(rest) => (
            target[..=indent].to_owned(),
            indent + 1 + (rest.len() - rest.trim_start().len()),
        ),
        None => (String::new(), indent),
    };
    let body = &target[entry..];
    if !body.contains(':') || body.starts_with(['{', '[']) {
        return false;
    }
    lines[at] = kept;
    for next in lines.iter_mut().skip(at + 1) {
        let trimmed = next.trim_start();
        if !trimmed.is_empty() && next.len() - trimmed.len() <= entry {
            break;
        }
        next.clear();
    }
    *text = lines.join("\n");
    true
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 64;
    budget.max_anchors = 64;
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = 2 * MAX_FILE_BYTES;
    let mut aliases = serde_saphyr::options::AliasLimits::default();
    aliases.max_total_replayed_events = 10_000;
    aliases.max_alias_expansions_per_anchor = 64;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits = aliases;
    options.reject_unsupported_tags = true;
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options
}

#[cfg(test)]
mod tests {
    use super::parse_file;

    #[test]
    fn every_unknown_key_and_wrong_value_is_found_with_its_line() {
        let source = "version: 1\nsteps:\n  - id: a\n    model: m\n    promt: x\n    n: two\n  - id: b\n    model: m\n    imagez:\n      - one\n  - id: c\n    model: m\n    videos: \"{{ steps.b.videos }}\"\n    images: [x.png, y.png]\n";
        let (parsed, found) = parse_file(source);
        let lines: Vec<u32> = found.iter().map(|p| p.line).collect();
        assert_eq!(lines, [5, 6, 9], "{found:#?}");
        assert!(
            found[0]
                .message
                .starts_with("unknown field `promt`, expected one of"),
            "{found:#?}"
        );
        assert_eq!(found[1].key.as_deref(), Some("n"), "{}", found[0].message);
        let parsed = parsed.expect("the rest reads");
        assert_eq!(parsed.steps.len(), 3);
        let media: Vec<(&str, u32)> = parsed.steps[2]
            .media()
            .into_iter()
            .map(|(k, v)| (k, u32::try_from(v.referenced.line()).unwrap_or(0)))
            .collect();
        assert_eq!(
            media,
            [("images", 14), ("images", 14), ("videos", 13)],
            "each entry has its field's line"
        );
    }
}
