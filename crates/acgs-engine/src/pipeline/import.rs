//! `acgs import`: a chain file of the Python suite acgs continues (`steps` of `type`
//! `text_to_image`, `image_to_video`, `split_image`, `concat_videos`, `parallel_group`, …, with
//! `{{input}}` for the main input) converted into a version-1 pipeline. Each chain step reads
//! what the step before it made; here that becomes an explicit reference, a split becomes a list
//! and the step after it runs once per item. Model names are mapped to catalogue keys. What
//! cannot be converted — a step type, a model, a parameter — is listed with its line, and the
//! rest is still written. Nothing is ever run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use acgs_core::catalog::{Catalog, FieldKind, ModelSpec};
use acgs_core::task::{MediaKind, TaskKind};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::Problem;
use super::chain::{Chain, ChainStep, MODEL_NAMES, default_model, task_of};

/// What the import made: the new file's text, and what it could not convert.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The version-1 pipeline.
    pub yaml: String,
    /// Every step or field left out, with its line.
    pub problems: Vec<Problem>,
}

/// What the chain has made so far: a reference per kind, and whether it is a whole list.
#[derive(Debug, Clone, Default)]
struct Current {
    made: BTreeMap<&'static str, (String, bool)>,
}

impl Current {
    fn set(&mut self, kind: &'static str, reference: String, list: bool) {
        self.made.insert(kind, (reference, list));
    }

    fn get(&self, kind: &str) -> Option<&(String, bool)> {
        self.made.get(kind)
    }
}

struct Importer<'a> {
    catalog: &'a Catalog,
    file: &'a str,
    problems: Vec<Problem>,
    steps: Vec<String>,
    ids: Vec<String>,
    main_input: bool,
}

/// Convert the chain `source` (the text of `file`).
pub fn import_chain(file: &str, source: &str, catalog: &Catalog) -> Result<Imported, Problem> {
    let chain: Chain = super::schema::parse(source).map_err(|message| Problem {
        file: file.to_owned(),
        line: None,
        step: None,
        code: "import.unreadable",
        message,
        hint: Some("a chain file is YAML with `steps`, each with a `type`".into()),
    })?;
    let mut importer = Importer {
        catalog,
        file,
        problems: Vec::new(),
        steps: Vec::new(),
        ids: Vec::new(),
        main_input: chain.prompt.is_some(),
    };
    let mut current = Current::default();
    let mut inputs = String::new();
    if let Some(prompt) = &chain.prompt {
        let _ = writeln!(
            inputs,
            "  input: {{ type: text, default: {} }}",
            quoted(prompt)
        );
    }
    for (key, kind, value) in [
        ("image", "image", &chain.input_image),
        ("video", "video", &chain.input_video),
        ("audio", "audio", &chain.input_audio),
    ] {
        if let Some(path) = value {
            let _ = writeln!(
                inputs,
                "  {key}: {{ type: {kind}, default: {} }}",
                quoted(path)
            );
            current.set(kind_name(kind), format!("{{{{ inputs.{key} }}}}"), false);
        }
    }
    if inputs.is_empty() {
        importer.main_input = true;
        inputs.push_str(
            "  input: { type: text, description: \"The chain's main input ({{input}})\" }\n",
        );
    }
    for step in &chain.steps {
        current = importer.step(step, &current);
    }
    let mut yaml = String::new();
    let _ = writeln!(
        yaml,
        "# Converted by `acgs import` from {file}; check it with `acgs validate`."
    );
    for p in &importer.problems {
        let at = p.line.map(|l| format!("line {l}: ")).unwrap_or_default();
        let _ = writeln!(yaml, "# NOT CONVERTED {at}{}", comment(&p.message));
    }
    yaml.push_str("version: 1\n");
    if let Some(name) = &chain.name {
        let _ = writeln!(yaml, "name: {}", quoted(name));
    }
    if let Some(description) = &chain.description {
        let _ = writeln!(yaml, "# {}", comment(description));
    }
    let _ = write!(yaml, "inputs:\n{inputs}steps:\n");
    for step in &importer.steps {
        yaml.push_str(step);
    }
    Ok(Imported {
        yaml,
        problems: importer.problems,
    })
}

fn kind_name(kind: &str) -> &'static str {
    match kind {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "text",
    }
}

/// A YAML double-quoted scalar: JSON's string syntax, which YAML shares, with DEL and the C1
/// controls escaped too (JSON leaves them raw; YAML refuses them).
fn quoted(text: &str) -> String {
    serde_json::to_string(text)
        .unwrap_or_else(|_| "\"\"".into())
        .chars()
        .map(|c| match c {
            '\u{7f}'..='\u{9f}' => format!("\\u{:04x}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

/// Text for a `#` comment: one line, no control characters (a lone CR would end the comment).
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `{{input}}` (any spacing) as the pipeline's main input.
fn templated(text: &str) -> String {
    let mut out = text.to_owned();
    for form in ["{{input}}", "{{ input }}", "{{input }}", "{{ input}}"] {
        out = out.replace(form, "{{ inputs.input }}");
    }
    out
}

impl Importer<'_> {
    fn problem(&mut self, line: u32, step: &str, code: &'static str, message: String) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: (line > 0).then_some(line),
            step: Some(step.to_owned()),
            code,
            message,
            hint: None,
        });
    }

    fn id_for(&mut self, name: Option<&str>, kind: &str) -> String {
        let base: String = name
            .unwrap_or(kind)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        let base = if base.is_empty() {
            "step".to_owned()
        } else {
            base
        };
        let mut id = base.clone();
        let mut n = 2;
        while self.ids.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.ids.push(id.clone());
        id
    }

    /// One chain step; what the chain has made after it.
    fn step(&mut self, spanned: &Spanned<ChainStep>, current: &Current) -> Current {
        let line = u32::try_from(spanned.referenced.line()).unwrap_or(0);
        let step = &spanned.value;
        let label = step.name.clone().unwrap_or_else(|| step.kind.clone());
        for key in step.other.keys() {
            let message = format!("key `{key}` of step `{label}` was not converted");
            self.problem(line, &label, "import.field", message);
        }
        if !step.enabled {
            let message = format!("step `{label}` is disabled (`enabled: false`) and was left out");
            self.problem(line, &label, "import.step_type", message);
            return current.clone();
        }
        if step.kind == "parallel_group" {
            return self.group(step, current, line, &label);
        }
        let Some(task) = task_of(&step.kind) else {
            let message = format!("step type `{}` has no counterpart in acgs", step.kind);
            self.problem(line, &label, "import.step_type", message);
            return current.clone();
        };
        let Some(model) = self.model(step, task, line, &label) else {
            return current.clone();
        };
        let id = self.id_for(step.name.as_deref(), &step.kind);
        let mut fields = Vec::new();
        let mut params = Vec::new();
        let mut each = None;
        if !self.wire_media(&model, current, &mut fields, &mut each, line, &label) {
            self.ids.pop();
            return current.clone();
        }
        self.wire_params(
            step,
            &model,
            current,
            &mut fields,
            &mut params,
            line,
            &label,
        );
        let mut text = format!("  - id: {id}\n    model: {}\n", model.key);
        if let Some(list) = &each {
            let _ = writeln!(text, "    each: {}", quoted(list));
        }
        for (key, value) in &fields {
            let _ = writeln!(text, "    {key}: {}", quoted(value));
        }
        if !params.is_empty() {
            text.push_str("    params:\n");
            for (key, value) in &params {
                let _ = writeln!(text, "      {key}: {value}");
            }
        }
        self.steps.push(text);
        let mut after = current.clone();
        let list = each.is_some() || model.task == TaskKind::SplitImage;
        match model.task.output() {
            MediaKind::Text => {
                after.set("text", format!("{{{{ steps.{id}.text }}}}"), false);
                if model.task == TaskKind::SpeechToText {
                    after.set("srt", format!("{{{{ steps.{id}.srt }}}}"), false);
                }
            }
            kind => {
                let name = kind_name(&format!("{kind:?}").to_lowercase());
                let output = match (name, list) {
                    ("image", true) => "images",
                    ("video", true) => "videos",
                    (other, _) => other,
                };
                after.set(name, format!("{{{{ steps.{id}.{output} }}}}"), list);
            }
        }
        after
    }

    /// `parallel_group`: each member reads what came before the group; after it, the newest
    /// of each kind its members made.
    fn group(&mut self, step: &ChainStep, current: &Current, line: u32, label: &str) -> Current {
        let from_params: Vec<Spanned<ChainStep>> = match step.params.get("steps") {
            Some(value) if step.steps.is_empty() => {
                serde_json::from_value::<Vec<ChainStep>>(value.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| Spanned {
                        value: s,
                        referenced: serde_saphyr::Location::UNKNOWN,
                        defined: serde_saphyr::Location::UNKNOWN,
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let members: Vec<&Spanned<ChainStep>> = step.steps.iter().chain(&from_params).collect();
        if members.is_empty() {
            let message = "a parallel_group with no steps".into();
            self.problem(line, label, "import.step_type", message);
            return current.clone();
        }
        let mut after = current.clone();
        for member in members {
            let made = self.step(member, current);
            for (kind, value) in made.made {
                if current.get(kind) != Some(&value) {
                    after.set(kind, value.0, value.1);
                }
            }
        }
        after
    }

    fn model(
        &mut self,
        step: &ChainStep,
        task: TaskKind,
        line: u32,
        label: &str,
    ) -> Option<std::sync::Arc<ModelSpec>> {
        let named = step.model.as_deref().filter(|m| *m != "local");
        let key = match named {
            Some(name) => MODEL_NAMES
                .iter()
                .find(|(from, _)| *from == name)
                .map_or(name, |(_, to)| *to),
            None => match default_model(&step.kind) {
                Some(key) => key,
                None => {
                    let message = format!("step `{label}` names no model");
                    self.problem(line, label, "import.model", message);
                    return None;
                }
            },
        };
        match self.catalog.resolve(key) {
            Ok(model) if model.task == task || step.kind == "prompt_generation" => Some(model),
            Ok(model) => {
                let message = format!("`{}` does {}, not {}", model.key, model.task, step.kind);
                self.problem(line, label, "import.model", message);
                None
            }
            Err(e) => {
                let message = format!("model `{key}`: {e}");
                self.problem(line, label, "import.model", message);
                None
            }
        }
    }

    /// The model's media fields from what came before; false when one it needs is missing.
    fn wire_media(
        &mut self,
        model: &ModelSpec,
        current: &Current,
        fields: &mut Vec<(String, String)>,
        each: &mut Option<String>,
        line: u32,
        label: &str,
    ) -> bool {
        for spec in model.params.values().filter(|s| s.kind == FieldKind::Media) {
            let Some(flag) = spec.flag.clone() else {
                continue;
            };
            let kind = spec
                .media
                .map_or("image", |m| kind_name(&format!("{m:?}").to_lowercase()));
            let list_field = flag == "images" || flag == "videos";
            match current.get(kind) {
                Some((reference, true)) if list_field => fields.push((flag, reference.clone())),
                Some((reference, true)) if each.is_none() => {
                    *each = Some(reference.clone());
                    fields.push((flag, "{{ item }}".into()));
                }
                Some((reference, false)) if list_field => fields.push((flag, reference.clone())),
                Some((reference, false)) => fields.push((flag, reference.clone())),
                _ if !spec.required => {}
                _ => {
                    let message = format!(
                        "`{}` needs {kind} ({flag}), and no step before it makes one",
                        model.key
                    );
                    self.problem(line, label, "import.no_input", message);
                    return false;
                }
            }
        }
        true
    }

    /// Text fields from `params` (or from what came before), other parameters the model
    /// knows; the rest listed.
    #[allow(clippy::too_many_arguments)]
    fn wire_params(
        &mut self,
        step: &ChainStep,
        model: &ModelSpec,
        current: &Current,
        fields: &mut Vec<(String, String)>,
        params: &mut Vec<(String, String)>,
        line: u32,
        label: &str,
    ) {
        for (name, value) in &step.params {
            if name == "grid" && model.key == "split_grid" {
                let grid = value
                    .as_str()
                    .and_then(|g| g.split_once(['x', 'X']))
                    .and_then(|(r, c)| {
                        Some((r.trim().parse::<u32>().ok()?, c.trim().parse::<u32>().ok()?))
                    });
                match grid {
                    Some((rows, cols)) => {
                        params.push(("rows".into(), rows.to_string()));
                        params.push(("cols".into(), cols.to_string()));
                    }
                    None => self.problem(
                        line,
                        label,
                        "import.field",
                        format!("grid `{value}` is not ROWSxCOLS"),
                    ),
                }
                continue;
            }
            let flag = match name.as_str() {
                "prompt" | "text" | "negative_prompt" | "question" | "system" => {
                    Some(name.as_str())
                }
                _ => None,
            };
            match (flag, value) {
                (Some(flag), Value::String(text)) if model.field_for_flag(flag).is_some() => {
                    fields.push((flag.to_owned(), templated(text)));
                }
                (Some(_), _) | (None, Value::Array(_) | Value::Object(_) | Value::Null) => {
                    let message =
                        format!("parameter `{name}` of `{}` was not converted", model.key);
                    self.problem(line, label, "import.field", message);
                }
                (None, scalar) if model.params.get(name).is_some_and(|s| s.flag.is_none()) => {
                    let text = match scalar {
                        Value::String(s) => quoted(s),
                        other => other.to_string(),
                    };
                    params.push((name.clone(), text));
                }
                (None, _) => {
                    let message = format!("`{}` has no parameter `{name}`", model.key);
                    self.problem(line, label, "import.field", message);
                }
            }
        }
        self.default_texts(model, current, fields);
    }

    /// A required text field the chain left to its flow: the text made before, or the main
    /// input.
    fn default_texts(
        &self,
        model: &ModelSpec,
        current: &Current,
        fields: &mut Vec<(String, String)>,
    ) {
        for spec in model
            .params
            .values()
            .filter(|s| s.kind == FieldKind::Text && s.required)
        {
            let Some(flag) = spec.flag.clone() else {
                continue;
            };
            if fields.iter().any(|(k, _)| *k == flag) {
                continue;
            }
            let wanted = if model.key == "subtitles" {
                "srt"
            } else {
                "text"
            };
            let value = match current.get(wanted) {
                Some((reference, _)) => reference.clone(),
                None if self.main_input => "{{ inputs.input }}".to_owned(),
                None => continue,
            };
            fields.push((flag, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let mut catalog = acgs_providers_fal::catalog().expect("fal");
        catalog.extend(acgs_providers_local::catalog().expect("local"));
        catalog
    }

    #[test]
    fn hostile_values_cannot_add_steps_or_keys_and_nothing_vanishes() {
        let source = "prompt: \"a boat\\u007f\"\nsteps:\n  - type: text_to_image\n    model: flux_dev\n    colour: blue\n  - type: split_image\n    params:\n      grid: \"2\\n  - id: evil\\n    model: topaz\\nx2\"\n  - type: image_to_video\n    model: kling_2_1\n    enabled: false\n";
        let imported = import_chain("c.yaml", source, &catalog()).expect("imported");
        let codes: Vec<(Option<u32>, &str)> =
            imported.problems.iter().map(|p| (p.line, p.code)).collect();
        assert_eq!(
            codes,
            [
                (Some(3), "import.field"),
                (Some(6), "import.field"),
                (Some(9), "import.step_type")
            ],
            "{:#?}",
            imported.problems
        );
        let added = imported
            .yaml
            .lines()
            .any(|l| l.trim_start().starts_with("- id: evil"));
        assert!(!added, "{}", imported.yaml);
        assert!(
            imported.yaml.contains("a boat\\u007f"),
            "DEL is escaped: {}",
            imported.yaml
        );
        let steps = imported.yaml.matches("\n  - id: ").count();
        assert_eq!(steps, 2, "{}", imported.yaml);
    }
}
