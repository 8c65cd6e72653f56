//! Lists and fan-out, made plain when the file is checked: a step with `each` becomes one step
//! per item (`clips.1`, `clips.2`, … — ids a file cannot write, so they never collide), and a
//! whole-list reference (`{{ steps.clips.videos }}`) becomes its items. Every list has a bound
//! known from the file — `n`, `rows` × `cols`, `max_items` — so the estimate prices every
//! expanded step at its worst case and the run reserves them all before anything is sent. A list
//! that turns out shorter skips the steps of the missing items (their reservations released).

use std::collections::{BTreeMap, BTreeSet};

use acgs_core::catalog::{CountMode, ParamType};
use acgs_core::task::MediaKind;

use super::plan::literal_param;
use super::refs::{OutputKind, Piece, Ref, outputs_of};
use super::{MediaSource, Problem, Step};

/// The most items a list may have.
pub(crate) const MAX_ITEMS: u32 = 64;
/// The most steps a file may expand to.
const MAX_STEPS: usize = 512;

/// Lists and fan-out made plain in `steps` (in dependency order), and the problems found.
pub(super) fn expand(steps: Vec<Step>, file: &str) -> (Vec<Step>, Vec<Problem>) {
    let mut expander = Expander {
        file,
        groups: BTreeMap::new(),
        plain: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut out = Vec::new();
    for step in steps {
        out.extend(expander.step(step));
        if out.len() > MAX_STEPS {
            let message = format!("the file expands to more than {MAX_STEPS} steps");
            expander.problem(0, None, "pipeline.too_many_steps", message);
            break;
        }
    }
    (out, expander.problems)
}

/// A step that runs once per item: its item count and what each item makes.
struct Group {
    count: u32,
    output: MediaKind,
}

struct Expander<'a> {
    file: &'a str,
    groups: BTreeMap<String, Group>,
    /// Steps that run once, by id.
    plain: BTreeMap<String, Step>,
    problems: Vec<Problem>,
}

impl Expander<'_> {
    fn problem(&mut self, line: u32, step: Option<&str>, code: &'static str, message: String) {
        // Every copy of a step would find the same problem: it is reported once.
        let seen = self.problems.iter().any(|p| {
            p.line == (line > 0).then_some(line) && p.code == code && p.message == message
        });
        if seen {
            return;
        }
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: (line > 0).then_some(line),
            step: step.map(str::to_owned),
            code,
            message,
            hint: None,
        });
    }

    /// `step` as the steps it becomes.
    fn step(&mut self, mut step: Step) -> Vec<Step> {
        let whole = self.read_whole(&step);
        step.media = self.media(&step);
        let rewrite =
            |this: &mut Self, fields: &[(String, Vec<Piece>)]| -> Vec<(String, Vec<Piece>)> {
                fields
                    .iter()
                    .map(|(flag, pieces)| (flag.clone(), this.pieces(&step, pieces)))
                    .collect()
            };
        let (texts, params) = (rewrite(self, &step.texts), rewrite(self, &step.params));
        (step.texts, step.params) = (texts, params);
        step.deps = self.deps(&step, &whole);
        let Some(each) = step.each.take() else {
            if self.uses_item(&step) {
                let message =
                    "`{{ item }}` and `{{ index }}` are only for a step with `each`".into();
                self.problem(step.line, Some(&step.id), "pipeline.reference", message);
            }
            self.plain.insert(step.id.clone(), step.clone());
            return vec![step];
        };
        let Ref::List {
            step: source,
            output,
        } = &each
        else {
            let message =
                "`each` takes a whole list: {{ steps.ID.items }}, images or videos".into();
            self.problem(step.line, Some(&step.id), "pipeline.each", message);
            return Vec::new();
        };
        let Some(items) = self.items(source, *output, step.line, &step.id) else {
            return Vec::new();
        };
        let count = u32::try_from(items.len()).unwrap_or(MAX_ITEMS);
        self.groups.insert(
            step.id.clone(),
            Group {
                count,
                output: step.model.task.output(),
            },
        );
        items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| self.copy(&step, i + 1, item, output.media()))
            .collect()
    }

    fn uses_item(&self, step: &Step) -> bool {
        let in_media = step
            .media
            .iter()
            .any(|(_, m)| matches!(m, MediaSource::Ref(Ref::Item)));
        in_media
            || step.texts.iter().chain(&step.params).any(|(_, pieces)| {
                pieces
                    .iter()
                    .any(|p| matches!(p, Piece::Ref(Ref::Item | Ref::Index)))
            })
    }

    /// Step `step`'s copy for item `number` (from 1), `item` of kind `kind`.
    fn copy(&mut self, step: &Step, number: usize, item: Ref, kind: MediaKind) -> Option<Step> {
        let mut copy = step.clone();
        copy.id = format!("{}.{number}", step.id);
        if let Ref::Step { step: from, .. } = &item {
            copy.deps.insert(from.clone());
        }
        for (flag, pieces) in copy.texts.iter_mut().chain(copy.params.iter_mut()) {
            for piece in pieces.iter_mut() {
                match piece {
                    Piece::Ref(Ref::Index) => *piece = Piece::Text(number.to_string()),
                    Piece::Ref(Ref::Item) if kind == MediaKind::Text => {
                        *piece = Piece::Ref(item.clone());
                    }
                    Piece::Ref(Ref::Item) => {
                        let message = format!("`{flag}` takes text, but each item is a file");
                        self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                        return None;
                    }
                    _ => {}
                }
            }
        }
        for (flag, source) in &mut copy.media {
            if matches!(source, MediaSource::Ref(Ref::Item)) {
                let wants = field_media(step, flag);
                if wants != Some(kind) {
                    let message = format!("`{flag}` takes a file of another kind than each item");
                    self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                    return None;
                }
                *source = MediaSource::Ref(item.clone());
            }
        }
        copy.item = Some(item);
        Some(copy)
    }

    /// Dependencies on a step that runs once per item become dependencies on every copy.
    fn deps(&self, step: &Step, whole: &BTreeSet<String>) -> BTreeSet<String> {
        let copies = |group: &str, count: u32| -> Vec<String> {
            // The copies this step reads one by one; all of them when it reads the whole list,
            // or names the step only in `needs` (then it reads none of them one by one). A step
            // run once per item waits for its own item's copy, added to each copy.
            let named: Vec<String> = direct_reads(step)
                .filter(|id| id.rsplit_once('.').is_some_and(|(g, _)| g == group))
                .collect();
            let each_only = matches!(&step.each, Some(Ref::List { step: s, .. }) if s == group);
            match (whole.contains(group), named.is_empty(), each_only) {
                (false, false, _) => named,
                (false, true, true) => Vec::new(),
                _ => (1..=count).map(|n| format!("{group}.{n}")).collect(),
            }
        };
        step.deps
            .iter()
            .flat_map(|d| match self.groups.get(d) {
                Some(g) => copies(d, g.count),
                None => vec![d.clone()],
            })
            .collect()
    }

    /// The steps run once per item whose whole list `step` reads (in a list field).
    fn read_whole(&self, step: &Step) -> BTreeSet<String> {
        step.media
            .iter()
            .filter_map(|(_, m)| match m {
                MediaSource::Ref(Ref::List { step: s, .. }) if self.groups.contains_key(s) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The media fields with whole lists replaced by their items (each an item that may be
    /// missing when the list is shorter), and items of a step run once per item made direct.
    fn media(&mut self, step: &Step) -> Vec<(String, MediaSource)> {
        let mut out = Vec::new();
        for (flag, source) in &step.media {
            match source {
                MediaSource::Ref(Ref::List { step: from, output }) => {
                    let spec = step.model.field_for_flag(flag).map(|(_, s)| s);
                    if !spec.is_some_and(|s| s.ty == ParamType::MediaList) {
                        let message = format!(
                            "`{flag}` takes one file; a whole list goes in `each` or a list field such as `images` or `videos`"
                        );
                        self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                        continue;
                    }
                    if spec.and_then(|s| s.media) != Some(output.media()) {
                        let message =
                            format!("steps.{from}.{} is not what `{flag}` takes", output.name());
                        self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                        continue;
                    }
                    let Some(items) = self.items(from, *output, step.line, &step.id) else {
                        continue;
                    };
                    out.extend(
                        items
                            .into_iter()
                            .map(|r| (flag.clone(), MediaSource::Item(r))),
                    );
                }
                MediaSource::Ref(r) => match self.direct(r, step) {
                    // A copy's output is checked here: the file's check left it to this step.
                    Some(Ref::Step { output, .. })
                        if Some(output.media()) != field_media(step, flag)
                            && self.groups.contains_key(upstream(r)) =>
                    {
                        let message = format!(
                            "`{flag}` takes another kind of file than steps.{}.{}",
                            upstream(r),
                            output.name()
                        );
                        self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                    }
                    Some(r) => out.push((flag.clone(), MediaSource::Ref(r))),
                    None => continue,
                },
                other => out.push((flag.clone(), other.clone())),
            }
        }
        self.check_counts(step, &out);
        out
    }

    /// Every list field holds at most what the model takes, counting every item it may get.
    fn check_counts(&mut self, step: &Step, media: &[(String, MediaSource)]) {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (flag, _) in media {
            *counts.entry(flag.as_str()).or_default() += 1;
        }
        for (flag, count) in counts {
            let max = step
                .model
                .field_for_flag(flag)
                .and_then(|(_, s)| s.max_items);
            if let Some(max) = max.filter(|max| count > *max as usize) {
                let message = format!(
                    "`{flag}` may get {count} files; `{}` takes at most {max}",
                    step.model.key
                );
                self.problem(
                    step.line,
                    Some(&step.id),
                    "pipeline.too_many_items",
                    message,
                );
            }
        }
    }

    /// Text and parameter pieces with items of a step run once per item made direct; a whole
    /// list is a problem there.
    fn pieces(&mut self, step: &Step, pieces: &[Piece]) -> Vec<Piece> {
        let mut out = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match piece {
                Piece::Ref(Ref::List { step: from, output }) => {
                    let message = format!(
                        "steps.{from}.{} is a whole list; a text takes one item (steps.{from}.{}[N]) or `{{{{ item }}}}` with `each`",
                        output.name(),
                        output.name()
                    );
                    self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                }
                Piece::Ref(r) => match self.direct(r, step) {
                    Some(Ref::Step { output, .. })
                        if output.media() != MediaKind::Text
                            && self.groups.contains_key(upstream(r)) =>
                    {
                        let message = format!(
                            "steps.{}.{} is a file; a text takes text",
                            upstream(r),
                            output.name()
                        );
                        self.problem(step.line, Some(&step.id), "pipeline.kind", message);
                    }
                    Some(r) => out.push(Piece::Ref(r)),
                    None => {}
                },
                text => out.push(text.clone()),
            }
        }
        out
    }

    /// A reference into a step that runs once per item, made a reference to one of its copies
    /// (`steps.clips.videos[1]` → `steps.clips.2.video`); `None`, with a problem, when it cannot.
    fn direct(&mut self, r: &Ref, step: &Step) -> Option<Ref> {
        let Ref::Step {
            step: from,
            output,
            index,
        } = r
        else {
            return Some(r.clone());
        };
        let Some(group) = self.groups.get(from) else {
            if *output == OutputKind::Videos {
                let message = format!(
                    "steps.{from}.videos exists only for a step with `each`; use steps.{from}.video"
                );
                self.problem(step.line, Some(&step.id), "pipeline.reference", message);
                return None;
            }
            return Some(r.clone());
        };
        let (count, made) = (group.count, group.output);
        if !output.is_list() || output.media() != made {
            let message = format!(
                "`{from}` runs once per item: use steps.{from}.{} (every item) or steps.{from}.{}[N]",
                list_of(made),
                list_of(made)
            );
            self.problem(step.line, Some(&step.id), "pipeline.reference", message);
            return None;
        }
        if *index >= count as usize {
            let message = format!(
                "steps.{from}.{}[{index}] is past the last of its {count} items (they count from 0)",
                output.name()
            );
            self.problem(step.line, Some(&step.id), "pipeline.reference", message);
            return None;
        }
        Some(Ref::Step {
            step: format!("{from}.{}", index + 1),
            output: output.single(),
            index: 0,
        })
    }

    /// The items of list `output` of step `from`, as references; `None`, with a problem, when
    /// the list has no bound or does not exist.
    fn items(&mut self, from: &str, output: OutputKind, line: u32, at: &str) -> Option<Vec<Ref>> {
        if let Some(group) = self.groups.get(from) {
            if output.media() != group.output {
                let message = format!(
                    "each copy of `{from}` makes {}: use steps.{from}.{}",
                    list_of(group.output),
                    list_of(group.output)
                );
                self.problem(line, Some(at), "pipeline.reference", message);
                return None;
            }
            let refs = (1..=group.count).map(|n| Ref::Step {
                step: format!("{from}.{n}"),
                output: output.single(),
                index: 0,
            });
            return Some(refs.collect());
        }
        let upstream = self.plain.get(from)?;
        let bound = match output {
            OutputKind::Videos => Err(format!("steps.{from}.videos exists only for a step with `each`; use steps.{from}.video")),
            _ if !outputs_of(upstream.model.task).contains(&output) => Err(format!("steps.{from}.{} does not exist: `{}` makes no such list", output.name(), upstream.model.key)),
            OutputKind::Items => literal_u32(upstream, "max_items").ok_or_else(|| format!("steps.{from}.items is a list of unknown length: set `max_items` (1–{MAX_ITEMS}) on step `{from}`")),
            _ => Ok(image_bound(upstream)),
        };
        let count = match bound {
            Ok(count) if (1..=MAX_ITEMS).contains(&count) => count,
            Ok(count) => {
                let message = format!(
                    "steps.{from}.{} may hold {count} items; a list holds at most {MAX_ITEMS}",
                    output.name()
                );
                self.problem(line, Some(at), "pipeline.unbounded", message);
                return None;
            }
            Err(message) => {
                self.problem(line, Some(at), "pipeline.unbounded", message);
                return None;
            }
        };
        let refs = (0..count as usize).map(|index| Ref::Step {
            step: from.to_owned(),
            output,
            index,
        });
        Some(refs.collect())
    }
}

/// The most images `step` makes: its count (`rows` × `cols` for a grid).
fn image_bound(step: &Step) -> u32 {
    let param = |name: &str| {
        literal_u32(step, name).unwrap_or_else(|| {
            let spec = step.model.params.get(name);
            let value = match step.params.iter().any(|(n, _)| n == name) {
                // Set from an input: as many as the schema allows.
                true => spec.and_then(|s| s.max).map(|m| m.to_string()),
                false => spec
                    .and_then(|s| s.default.as_ref())
                    .map(ToString::to_string),
            };
            value.and_then(|v| v.parse().ok()).unwrap_or(1)
        })
    };
    let counted = match &step.model.count {
        CountMode::Param(name) => param(name),
        CountMode::Requests => 1,
        CountMode::Product(names) => names
            .iter()
            .map(|n| param(n))
            .fold(1u32, u32::saturating_mul),
    };
    step.count.unwrap_or(1).max(counted)
}

fn literal_u32(step: &Step, name: &str) -> Option<u32> {
    let value = literal_param(step, name)?;
    let n = value.as_u64().or_else(|| value.as_str()?.parse().ok())?;
    u32::try_from(n).ok()
}

/// The steps `step`'s fields read one reference at a time (after copies are made direct).
fn direct_reads(step: &Step) -> impl Iterator<Item = String> + '_ {
    let media = step.media.iter().filter_map(|(_, m)| match m {
        MediaSource::Ref(r) | MediaSource::Item(r) => Some(upstream(r).to_owned()),
        MediaSource::Path(_) => None,
    });
    let pieces = step
        .texts
        .iter()
        .chain(&step.params)
        .flat_map(|(_, pieces)| pieces)
        .filter_map(|p| match p {
            Piece::Ref(r) => Some(upstream(r).to_owned()),
            Piece::Text(_) => None,
        });
    media.chain(pieces)
}

/// The step a reference reads, or "" for an input.
fn upstream(r: &Ref) -> &str {
    match r {
        Ref::Step { step, .. } | Ref::List { step, .. } => step,
        Ref::Input(_) | Ref::Item | Ref::Index => "",
    }
}

/// The media kind a media field of `step` takes.
fn field_media(step: &Step, flag: &str) -> Option<MediaKind> {
    step.model.field_for_flag(flag).and_then(|(_, s)| s.media)
}

/// The list name for items of `kind`.
fn list_of(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "images",
        MediaKind::Video => "videos",
        MediaKind::Audio | MediaKind::Text => "items",
    }
}
