//! `acgs validate`: every problem of a pipeline file at once, each with its line and step —
//! schema, unknown models, parameters against the model's schema, inputs and outputs of the
//! wrong kind, missing references, cycles, paths outside the pipeline's folder, and settings that
//! would loosen the configured limits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use acgs_core::catalog::{Catalog, FieldKind, ModelSpec};
use acgs_core::config::Config;
use acgs_core::task::MediaKind;
use serde_saphyr::Spanned;
use sha2::Digest as _;

use super::refs::{self, Piece, Ref, outputs_of};
use super::schema::{self, InputType, PipelineFile, StepSpec};
use super::{MediaSource, Pipeline, Problem, Problems, Step};
use super::{expand, order, paths, settings, tools};

/// Check `source` (the text of `file`, whose relative paths are read from `folder`).
pub fn check(
    file: &str,
    source: &str,
    folder: &Path,
    catalog: &Catalog,
    config: &Config,
) -> Result<Pipeline, Problems> {
    let (parsed, schema_problems) = schema::parse_file(source);
    let mut found: Vec<Problem> = schema_problems
        .into_iter()
        .map(|p| p.into_problem(file))
        .collect();
    if let Some(parsed) = parsed {
        let mut checker = Checker {
            catalog,
            config,
            folder,
            name: file,
            file: &parsed,
            problems: Vec::new(),
        };
        let pipeline = checker.pipeline(file, source);
        if found.is_empty() && checker.problems.is_empty() {
            return Ok(pipeline);
        }
        found.append(&mut checker.problems);
    }
    found.sort_by_key(|p| p.line.unwrap_or(0));
    Err(Problems {
        file: file.to_owned(),
        problems: found,
    })
}

struct Checker<'a> {
    catalog: &'a Catalog,
    config: &'a Config,
    folder: &'a Path,
    /// The file as given, for each problem.
    name: &'a str,
    file: &'a PipelineFile,
    problems: Vec<Problem>,
}

fn line<T>(s: &Spanned<T>) -> u32 {
    u32::try_from(s.referenced.line()).unwrap_or(0)
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Checker<'_> {
    fn problem(
        &mut self,
        line: u32,
        step: Option<&str>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.name.to_owned(),
            line: (line > 0).then_some(line),
            step: step.map(str::to_owned),
            code,
            message: message.into(),
            hint: None,
        });
    }

    /// `message` with the closest of `known` to `name` ("did you mean …?").
    fn suggest<'k>(
        message: String,
        name: &str,
        known: impl IntoIterator<Item = &'k str>,
    ) -> String {
        let close = acgs_core::suggest::closest(name, known, 2);
        format!("{message}{}", acgs_core::suggest::did_you_mean(&close))
    }

    fn pipeline(&mut self, file: &str, source: &str) -> Pipeline {
        let spec = self.file;
        if spec.version.value != 1 {
            self.problem(
                line(&spec.version),
                None,
                "pipeline.version",
                "only `version: 1` exists",
            );
        }
        if spec.steps.is_empty() {
            self.problem(0, None, "pipeline.no_steps", "there are no steps");
        }
        for name in spec.inputs.keys().filter(|n| !is_id(n)) {
            self.problem(
                0,
                None,
                "pipeline.bad_name",
                format!("input name `{name}` is not [a-z0-9_-]"),
            );
        }
        let models = self.models();
        let mut steps = Vec::new();
        for s in &spec.steps {
            match models.get(&s.id.value) {
                Some(model) => steps.push(self.step(s, Arc::clone(model), &models)),
                None => self.unmodelled(s),
            }
        }
        let (steps, mut expanded) = expand::expand(self.ordered(steps), self.name);
        self.problems.append(&mut expanded);
        let (steps, _) = order::levels(steps);
        tools::check(&steps, self.config, self.name, &mut self.problems);
        let (max_parallel, cost) =
            settings::settings(&spec.settings, self.config, |at, code, m| {
                self.problem(at, None, code, m);
            });
        let inputs = paths::input_defaults(&spec.inputs, self.folder, |message| {
            self.problem(0, None, "pipeline.path", message);
        });
        Pipeline {
            file: file.to_owned(),
            folder: self.folder.to_owned(),
            source: source.to_owned(),
            sha256: hex::encode(sha2::Sha256::digest(source.as_bytes())),
            name: spec.name.clone(),
            inputs,
            max_parallel,
            on_error: spec.settings.on_error,
            cost,
            steps,
        }
    }

    /// Every step's model by step id (ids checked for shape and uniqueness on the way).
    fn models(&mut self) -> BTreeMap<String, Arc<ModelSpec>> {
        let mut models = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for s in &self.file.steps {
            let id = &s.id.value;
            if !is_id(id) {
                self.problem(
                    line(&s.id),
                    None,
                    "pipeline.bad_name",
                    format!("step id `{id}` is not [a-z0-9_-], 1–64 long"),
                );
            }
            if !seen.insert(id.clone()) {
                self.problem(
                    line(&s.id),
                    Some(id),
                    "pipeline.duplicate_step",
                    "this step id is used twice",
                );
            }
            match self.catalog.resolve(&s.model.value) {
                Ok(model) => {
                    models.insert(id.clone(), model);
                }
                Err(e) => self.problem(
                    line(&s.model),
                    Some(id),
                    "pipeline.unknown_model",
                    e.to_string(),
                ),
            }
        }
        models
    }

    fn step(
        &mut self,
        s: &StepSpec,
        model: Arc<ModelSpec>,
        models: &BTreeMap<String, Arc<ModelSpec>>,
    ) -> Step {
        let id = s.id.value.clone();
        let mut deps = BTreeSet::new();
        let mut texts = Vec::new();
        for (key, value) in s.texts() {
            let flag = match (model.field_for_flag(key), key) {
                (Some((_, spec)), _) if spec.kind == FieldKind::Text => key,
                (None, "question") if model.field_for_flag("prompt").is_some() => "prompt",
                _ => {
                    self.problem(
                        line(value),
                        Some(&id),
                        "pipeline.unknown_field",
                        format!("`{}` takes no `{key}`", model.key),
                    );
                    continue;
                }
            };
            if let Some(pieces) = self.pieces(value, &id) {
                for r in refs::refs(&pieces) {
                    self.check_ref(r, MediaKind::Text, key, line(value), &id, models, &mut deps);
                }
                texts.push((flag.to_owned(), pieces));
            }
        }
        let media = self.media(s, &model, models, &mut deps);
        let params = self.params(s, &model, &texts);
        let each = s.each.as_ref().and_then(|each| {
            let pieces = self.pieces(each, &id)?;
            match pieces.as_slice() {
                [Piece::Ref(r @ Ref::List { .. })] => {
                    self.check_ref(
                        r,
                        MediaKind::Text,
                        "each",
                        line(each),
                        &id,
                        models,
                        &mut deps,
                    );
                    Some(r.clone())
                }
                _ => {
                    let message =
                        "`each` takes one whole list: {{ steps.ID.items }}, images or videos";
                    self.problem(line(each), Some(&id), "pipeline.each", message);
                    None
                }
            }
        });
        for need in &s.needs {
            if self.need_exists(need, &id) {
                deps.insert(need.value.clone());
            }
        }
        if deps.contains(&id) {
            self.problem(
                line(&s.id),
                Some(&id),
                "pipeline.reference",
                "a step cannot use its own output",
            );
            deps.remove(&id);
        }
        Step {
            id,
            line: line(&s.id),
            model,
            texts,
            media,
            params,
            count: s.n,
            deps,
            item: None,
            each,
        }
    }

    fn pieces(&mut self, value: &Spanned<String>, step: &str) -> Option<Vec<Piece>> {
        refs::parse(&value.value)
            .map_err(|e| self.problem(line(value), Some(step), "pipeline.template", e))
            .ok()
    }

    /// Whether what `r` names is declared: an input under `inputs`, a step among the steps.
    fn exists(&mut self, r: &Ref, at: u32, step: &str) -> bool {
        let (message, name, known): (String, &str, Vec<&str>) = match r {
            Ref::Input(name) if !self.file.inputs.contains_key(name) => (
                format!("input `{name}` is not declared under `inputs`"),
                name,
                self.file.inputs.keys().map(String::as_str).collect(),
            ),
            Ref::Step { step: other, .. } | Ref::List { step: other, .. }
                if !self.file.steps.iter().any(|s| &s.id.value == other) =>
            {
                (
                    format!("there is no step `{other}`"),
                    other,
                    self.file
                        .steps
                        .iter()
                        .map(|s| s.id.value.as_str())
                        .collect(),
                )
            }
            _ => return true,
        };
        let message = Self::suggest(message, name, known);
        self.problem(at, Some(step), "pipeline.reference", message);
        false
    }

    /// Whether a `needs` entry names a step.
    fn need_exists(&mut self, need: &Spanned<String>, step: &str) -> bool {
        let steps = || self.file.steps.iter().map(|s| s.id.value.as_str());
        if steps().any(|s| s == need.value) {
            return true;
        }
        let message = Self::suggest(
            format!("`needs` names `{}`, which is not a step", need.value),
            &need.value,
            steps(),
        );
        self.problem(line(need), Some(step), "pipeline.reference", message);
        false
    }

    /// A step whose model is unknown: what can be checked without it — its references and
    /// `needs` — so that one misspelt model does not hide the step's other problems.
    fn unmodelled(&mut self, s: &StepSpec) {
        let id = &s.id.value;
        let texts = s.texts().into_iter().map(|(k, v)| (k, v.clone()));
        for (_, value) in texts.chain(s.media()) {
            if let Some(pieces) = self.pieces(&value, id) {
                for r in refs::refs(&pieces) {
                    self.exists(r, line(&value), id);
                }
            }
        }
        for need in &s.needs {
            self.need_exists(need, id);
        }
    }

    /// A reference into a field taking `wants`; step references become dependencies.
    #[allow(clippy::too_many_arguments)]
    fn check_ref(
        &mut self,
        r: &Ref,
        wants: MediaKind,
        key: &str,
        at: u32,
        step: &str,
        models: &BTreeMap<String, Arc<ModelSpec>>,
        deps: &mut BTreeSet<String>,
    ) {
        let kind_name = |k: MediaKind| format!("{k:?}").to_lowercase();
        if !self.exists(r, at, step) {
            return;
        }
        match r {
            // Lists and items are checked when the steps that run once per item are made.
            Ref::Item | Ref::Index => {}
            Ref::List { step: other, .. } => {
                deps.insert(other.clone());
            }
            Ref::Input(name) => match self.file.inputs.get(name) {
                None => {}
                Some(input) => {
                    let has = match input.ty {
                        InputType::Text => MediaKind::Text,
                        InputType::Image => MediaKind::Image,
                        InputType::Video => MediaKind::Video,
                        InputType::Audio => MediaKind::Audio,
                    };
                    if has != wants {
                        self.problem(
                            at,
                            Some(step),
                            "pipeline.kind",
                            format!(
                                "input `{name}` is {}, but `{key}` takes {}",
                                kind_name(has),
                                kind_name(wants)
                            ),
                        );
                    }
                }
            },
            Ref::Step {
                step: other,
                output,
                ..
            } => {
                deps.insert(other.clone());
                let fans_out = self
                    .file
                    .steps
                    .iter()
                    .any(|s| &s.id.value == other && s.each.is_some());
                let Some(model) = models.get(other).filter(|_| !fans_out) else {
                    // A step that runs once per item is checked when its copies are made.
                    return;
                };
                if !outputs_of(model.task).contains(output) {
                    let makes: Vec<&str> =
                        outputs_of(model.task).iter().map(|o| o.name()).collect();
                    self.problem(
                        at,
                        Some(step),
                        "pipeline.reference",
                        format!(
                            "steps.{other}.{} does not exist: `{}` makes {}",
                            output.name(),
                            model.key,
                            makes.join(", ")
                        ),
                    );
                } else if output.media() != wants {
                    let message = if output.media() == MediaKind::Text {
                        format!(
                            "steps.{other}.{} is text from a model; a text output cannot feed the media field `{key}`",
                            output.name()
                        )
                    } else {
                        format!(
                            "steps.{other}.{} is {}, but `{key}` takes {}",
                            output.name(),
                            kind_name(output.media()),
                            kind_name(wants)
                        )
                    };
                    self.problem(at, Some(step), "pipeline.kind", message);
                }
            }
        }
    }

    fn media(
        &mut self,
        s: &StepSpec,
        model: &ModelSpec,
        models: &BTreeMap<String, Arc<ModelSpec>>,
        deps: &mut BTreeSet<String>,
    ) -> Vec<(String, MediaSource)> {
        let id = &s.id.value;
        let mut out = Vec::new();
        for (key, value) in &s.media() {
            let (key, value) = (*key, value);
            let Some((_, spec)) = model
                .field_for_flag(key)
                .filter(|(_, f)| f.kind == FieldKind::Media)
            else {
                self.problem(
                    line(value),
                    Some(id),
                    "pipeline.unknown_field",
                    format!("`{}` takes no `{key}`", model.key),
                );
                continue;
            };
            let wants = spec.media.unwrap_or(MediaKind::Image);
            let Some(pieces) = self.pieces(value, id) else {
                continue;
            };
            match pieces.as_slice() {
                [Piece::Ref(r)] => {
                    self.check_ref(r, wants, key, line(value), id, models, deps);
                    out.push((key.to_owned(), MediaSource::Ref(r.clone())));
                }
                [Piece::Text(path)] => match paths::inside(self.folder, path) {
                    Ok(path) => out.push((key.to_owned(), MediaSource::Path(path))),
                    Err(message) => self.problem(line(value), Some(id), "pipeline.path", message),
                },
                _ => self.problem(
                    line(value),
                    Some(id),
                    "pipeline.template",
                    format!("`{key}` takes one reference or one path, not text around a reference"),
                ),
            }
        }
        for (name, spec) in &model.params {
            let flag = spec.flag.as_deref().unwrap_or(name);
            // A field given with a problem of its own is not also missing.
            let given = s.media().iter().any(|(k, _)| *k == flag);
            if spec.kind == FieldKind::Media && spec.required && !given {
                self.problem(
                    line(&s.id),
                    Some(id),
                    "pipeline.missing_field",
                    format!("`{}` needs `{flag}`", model.key),
                );
            }
        }
        out
    }

    /// Parameters: literals checked against the model's schema; `{{ inputs.x }}` checked when
    /// the run gives the input.
    fn params(
        &mut self,
        s: &StepSpec,
        model: &Arc<ModelSpec>,
        texts: &[(String, Vec<Piece>)],
    ) -> Vec<(String, Vec<Piece>)> {
        let id = &s.id.value;
        let mut literal = Vec::new();
        let mut out = Vec::new();
        if let Some(max) = &s.max_items {
            if model.params.contains_key("max_items") {
                literal.push(("max_items".to_owned(), max.value.to_string()));
                out.push((
                    "max_items".to_owned(),
                    vec![Piece::Text(max.value.to_string())],
                ));
            } else {
                let message = format!("`{}` cannot write a list (`max_items`)", model.key);
                self.problem(line(max), Some(id), "pipeline.unknown_field", message);
            }
        }
        for (name, value) in &s.params {
            let Some(pieces) = self.pieces(
                &Spanned {
                    value: value.value.0.clone(),
                    referenced: value.referenced,
                    defined: value.defined,
                },
                id,
            ) else {
                continue;
            };
            match pieces.as_slice() {
                [Piece::Ref(r @ Ref::Input(_))] => {
                    self.exists(r, line(value), id);
                    if !model.params.contains_key(name) {
                        self.problem(
                            line(value),
                            Some(id),
                            "pipeline.unknown_field",
                            Self::suggest(
                                format!("`{}` has no parameter `{name}`", model.key),
                                name,
                                model.params.keys().map(String::as_str),
                            ),
                        );
                    }
                }
                [Piece::Text(text)] => literal.push((name.clone(), text.clone())),
                _ => self.problem(
                    line(value),
                    Some(id),
                    "pipeline.template",
                    format!("parameter `{name}` takes a literal or one `{{{{ inputs.NAME }}}}`"),
                ),
            }
            out.push((name.clone(), pieces));
        }
        let stand_ins: BTreeMap<String, String> = texts
            .iter()
            .map(|(flag, _)| (flag.clone(), "x".into()))
            .collect();
        if let Err(e) =
            crate::stages::validate::validate(model, &stand_ins, &literal, s.n, self.config)
        {
            let at = s.params.values().next().map_or(line(&s.id), line);
            self.problem(at, Some(id), "pipeline.parameter", e.to_string());
        }
        out
    }

    /// The steps in dependency order ([`order::levels`]); a cycle is a problem naming it.
    fn ordered(&mut self, steps: Vec<Step>) -> Vec<Step> {
        let (ordered, cycle) = order::levels(steps);
        if let Some((at, cycle)) = cycle {
            self.problem(
                at,
                cycle.first().map(String::as_str),
                "pipeline.cycle",
                format!("steps form a cycle: {}", cycle.join(" → ")),
            );
        }
        ordered
    }
}
