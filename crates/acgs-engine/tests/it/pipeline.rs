//! Pipeline validation: every error class, with its line and step, all at once.

use std::path::Path;

use acgs_core::config::Config;
use acgs_engine::pipeline::check;
use acgs_engine::{Pipeline, Problems};

fn catalog() -> acgs_core::Catalog {
    let mut catalog = acgs_providers_fal::catalog().expect("fal");
    catalog.extend(acgs_providers_gemini::catalog().expect("gemini"));
    catalog.extend(acgs_providers_elevenlabs::catalog().expect("elevenlabs"));
    catalog
}

fn check_in(folder: &Path, source: &str) -> Result<Pipeline, Problems> {
    check("p.yaml", source, folder, &catalog(), &Config::default())
}

fn problems(source: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("dir");
    match check_in(dir.path(), source) {
        Ok(_) => Vec::new(),
        Err(p) => p
            .problems
            .iter()
            .map(|p| {
                format!(
                    "{}|{}|{}",
                    p.line.unwrap_or(0),
                    p.step.as_deref().unwrap_or("-"),
                    p.message
                )
            })
            .collect(),
    }
}

fn assert_problem(source: &str, line: u32, step: &str, needle: &str) {
    let found = problems(source);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with(&format!("{line}|{step}|")) && p.contains(needle)),
        "expected line {line}, step {step}, `{needle}` in {found:#?}"
    );
}

const HEADER: &str =
    "version: 1\ninputs:\n  product: { type: text }\n  photo: { type: image }\nsteps:\n";

#[test]
fn a_good_pipeline_is_ordered_by_its_references() {
    let source = format!(
        "{HEADER}  - id: clip\n    model: kling_2_1\n    image: \"{{{{ steps.still.image }}}}\"\n    prompt: orbit\n  - id: still\n    model: flux_dev\n    prompt: \"{{{{ inputs.product }}}}\"\n"
    );
    let dir = tempfile::tempdir().expect("dir");
    let pipeline = check_in(dir.path(), &source).expect("valid");
    let order: Vec<&str> = pipeline.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["still", "clip"]);
    assert_eq!(pipeline.max_parallel, 4);
}

#[test]
fn unknown_models_name_the_closest_keys() {
    let source = format!("{HEADER}  - id: a\n    model: flux_devv\n    prompt: x\n");
    assert_problem(&source, 7, "a", "flux_dev");
}

#[test]
fn references_must_exist_and_fit() {
    let source = format!(
        "{HEADER}  - id: writer\n    model: gemini_2_5_flash\n    prompt: hi\n  - id: still\n    model: flux_dev\n    prompt: \"{{{{ steps.ghost.text }}}}\"\n  - id: clip\n    model: kling_2_1\n    image: \"{{{{ steps.writer.text }}}}\"\n    prompt: \"{{{{ steps.still.image }}}}\"\n  - id: more\n    model: kling_2_1\n    image: \"{{{{ steps.still.video }}}}\"\n    prompt: \"{{{{ inputs.nothing }}}}\"\n"
    );
    let found = problems(&source);
    assert!(found.len() >= 5, "every problem at once: {found:#?}");
    assert_problem(&source, 11, "still", "there is no step `ghost`");
    assert_problem(
        &source,
        14,
        "clip",
        "a text output cannot feed the media field `image`",
    );
    assert_problem(
        &source,
        15,
        "clip",
        "steps.still.image is image, but `prompt` takes text",
    );
    assert_problem(&source, 18, "more", "steps.still.video does not exist");
    assert_problem(&source, 19, "more", "input `nothing` is not declared");
}

#[test]
fn inputs_must_have_the_right_kind() {
    let source = format!(
        "{HEADER}  - id: clip\n    model: kling_2_1\n    image: \"{{{{ inputs.product }}}}\"\n    prompt: \"{{{{ inputs.photo }}}}\"\n"
    );
    assert_problem(
        &source,
        8,
        "clip",
        "input `product` is text, but `image` takes image",
    );
    assert_problem(
        &source,
        9,
        "clip",
        "input `photo` is image, but `prompt` takes text",
    );
}

#[test]
fn cycles_are_named() {
    let source = format!(
        "{HEADER}  - id: a\n    model: gemini_2_5_flash\n    prompt: \"{{{{ steps.b.text }}}}\"\n  - id: b\n    model: gemini_2_5_flash\n    prompt: \"{{{{ steps.a.text }}}}\"\n"
    );
    let found = problems(&source);
    assert!(
        found
            .iter()
            .any(|p| p.contains("cycle: a → b → a") || p.contains("cycle: b → a → b")),
        "{found:#?}"
    );
}

#[test]
fn parameters_follow_the_model_schema() {
    let source = format!(
        "{HEADER}  - id: still\n    model: flux_dev\n    prompt: x\n    params: {{ image_size: huge_square }}\n  - id: clip\n    model: kling_2_1\n    image: \"{{{{ steps.still.image }}}}\"\n    prompt: x\n    params: {{ duration: \"{{{{ steps.still.image }}}}\" }}\n"
    );
    assert_problem(&source, 9, "still", "image_size");
    assert_problem(
        &source,
        14,
        "clip",
        "takes a literal or one `{{ inputs.NAME }}`",
    );
}

#[test]
fn keys_ids_and_fields_are_checked() {
    let typo = format!("{HEADER}  - id: a\n    model: flux_dev\n    promt: x\n");
    assert_problem(&typo, 8, "-", "unknown key `promt`");
    let ids = format!(
        "{HEADER}  - id: Bad Id\n    model: flux_dev\n    prompt: x\n  - id: a\n    model: flux_dev\n    prompt: x\n  - id: a\n    model: flux_dev\n    prompt: x\n"
    );
    assert_problem(&ids, 6, "-", "is not [a-z0-9_-]");
    assert_problem(&ids, 12, "a", "used twice");
    let field =
        format!("{HEADER}  - id: a\n    model: flux_dev\n    prompt: x\n    audio: song.wav\n");
    assert_problem(&field, 9, "a", "`flux_dev` takes no `audio`");
    let missing = format!("{HEADER}  - id: a\n    model: kling_2_1\n    prompt: x\n");
    assert_problem(&missing, 6, "a", "`kling_2_1` needs `image`");
}

#[test]
fn paths_stay_inside_the_pipeline_folder() {
    let dir = tempfile::tempdir().expect("dir");
    let inner = dir.path().join("inner");
    fs_err::create_dir(&inner).expect("inner");
    fs_err::write(dir.path().join("outside.png"), b"x").expect("file");
    fs_err::write(inner.join("ok.png"), b"x").expect("file");
    std::os::unix::fs::symlink(dir.path().join("outside.png"), inner.join("link.png"))
        .expect("link");
    for (value, needle) in [
        ("../outside.png", "without `..`"),
        ("/etc/passwd", "without `..`"),
        ("link.png", "leads outside"),
        ("missing.png", "not found"),
    ] {
        let source =
            format!("{HEADER}  - id: a\n    model: kling_2_1\n    prompt: x\n    image: {value}\n");
        let found = match check_in(&inner, &source) {
            Ok(_) => Vec::new(),
            Err(p) => p.problems.into_iter().map(|p| p.message).collect(),
        };
        assert!(
            found.iter().any(|m| m.contains(needle)),
            "{value}: {found:?}"
        );
    }
    let source =
        format!("{HEADER}  - id: a\n    model: kling_2_1\n    prompt: x\n    image: ok.png\n");
    assert!(check_in(&inner, &source).is_ok());
}

#[test]
fn settings_may_only_tighten() {
    let source = format!(
        "version: 1\nsettings:\n  max_parallel: 99\n  cost_management: {{ daily_limit: 500 }}\n{}",
        &HEADER["version: 1\n".len()..].replace(
            "inputs:\n  product: { type: text }\n  photo: { type: image }\n",
            ""
        )
    ) + "  - id: a\n    model: flux_dev\n    prompt: x\n";
    assert_problem(&source, 3, "-", "max_parallel must be between 1 and 32");
    assert_problem(&source, 4, "-", "daily_limit would loosen");
    let tighter = "version: 1\nsettings:\n  cost_management: { daily_limit: 5, max_cost_per_run: \"1.50\" }\nsteps:\n  - id: a\n    model: flux_dev\n    prompt: x\n";
    let dir = tempfile::tempdir().expect("dir");
    let pipeline = check_in(dir.path(), tighter).expect("valid");
    assert_eq!(pipeline.cost.daily_limit.to_string(), "5.00");
    assert_eq!(pipeline.cost.max_cost_per_run.to_string(), "1.50");
}

#[test]
fn hostile_yaml_is_refused_cleanly() {
    let laughs = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nversion: 1\nsteps: []\n";
    let found = problems(laughs);
    assert!(
        found.len() <= 8,
        "one problem per top-level key at most: {found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("unknown key `a`")),
        "{found:?}"
    );
    let include = format!("{HEADER}  - id: a\n    model: !include other.yaml\n    prompt: x\n");
    let found = problems(&include);
    assert!(found.iter().any(|p| p.contains("tag")), "{found:?}");
    let huge = format!("{HEADER}# {}\n", "x".repeat(1024 * 1024));
    assert!(problems(&huge)[0].contains("larger than 1024 KiB"));
    let deep = format!(
        "version: 1\nsteps: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(problems(&deep).len(), 1);
}

#[test]
fn every_problem_is_found_at_once_with_suggestions() {
    let source = format!(
        "{HEADER}  - id: scene\n    model: flux_dev\n    promt: a cat\n    n: two\n  \
         - id: clip\n    model: flux_deev\n    prompt: \"{{{{ inputs.prodcut }}}}\"\n    needs: [scnee]\n  \
         - id: still\n    model: flux_dev\n    prompt: x\n    params: {{ num_inference_stpes: 4 }}\n"
    );
    let dir = tempfile::tempdir().expect("dir");
    let found = check_in(dir.path(), &source).expect_err("invalid").problems;
    let seen: Vec<(Option<u32>, &str, &str)> = found
        .iter()
        .map(|p| (p.line, p.code, p.message.as_str()))
        .collect();
    let has = |line: u32, code: &str, needle: &str| {
        assert!(
            seen.iter()
                .any(|(l, c, m)| *l == Some(line) && *c == code && m.contains(needle)),
            "line {line} {code} `{needle}` in {seen:#?}"
        );
    };
    has(
        8,
        "pipeline.unknown_key",
        "unknown key `promt` (did you mean prompt?)",
    );
    has(9, "pipeline.schema", "`n`: invalid");
    has(11, "pipeline.unknown_model", "flux_deev");
    has(12, "pipeline.reference", "did you mean product?");
    has(13, "pipeline.reference", "did you mean scene?");
    has(
        17,
        "pipeline.parameter",
        "did you mean num_inference_steps?",
    );
    assert!(found.iter().all(|p| p.file == "p.yaml"), "{found:?}");
    let hint = found
        .iter()
        .find(|p| p.code == "pipeline.unknown_key")
        .and_then(|p| p.hint.as_deref())
        .expect("a hint lists the keys");
    assert!(hint.contains("negative_prompt"), "{hint}");
}

#[test]
fn each_copy_waits_only_for_its_own_item_and_text_copies_give_text() {
    let source = format!(
        "{HEADER}  - id: scenes\n    model: gemini_2_5_flash\n    prompt: three scenes\n    max_items: 3\n  - id: lines\n    model: gemini_2_5_flash\n    each: \"{{{{ steps.scenes.items }}}}\"\n    prompt: \"A line for {{{{ item }}}}\"\n  - id: stills\n    model: flux_dev\n    each: \"{{{{ steps.lines.items }}}}\"\n    prompt: \"{{{{ item }}}}, scene {{{{ index }}}}\"\n  - id: first\n    model: flux_dev\n    prompt: \"{{{{ steps.lines.items[0] }}}}\"\n"
    );
    let dir = tempfile::tempdir().expect("dir");
    let pipeline = check_in(dir.path(), &source).expect("valid");
    let step = |id: &str| pipeline.step(id).unwrap_or_else(|| panic!("{id}"));
    let deps = |id: &str| step(id).deps.iter().cloned().collect::<Vec<_>>();
    assert_eq!(deps("lines.2"), ["scenes"]);
    assert_eq!(
        deps("stills.3"),
        ["lines.3"],
        "not every line, only its own"
    );
    assert_eq!(deps("first"), ["lines.1"]);
    let first = format!("{:?}", step("first").texts);
    assert!(first.contains("step: \"lines.1\", output: Text"), "{first}");
    let third = format!("{:?}", step("stills.3").texts);
    assert!(
        third.contains("Text(\", scene \"), Text(\"3\")"),
        "{{{{ index }}}} counts from 1: {third}"
    );
}

#[test]
fn a_problem_every_copy_shares_is_reported_once() {
    let source = format!(
        "{HEADER}  - id: grid\n    model: flux_dev\n    prompt: a grid\n    n: 4\n  - id: words\n    model: gemini_2_5_flash\n    each: \"{{{{ steps.grid.images }}}}\"\n    prompt: \"{{{{ item }}}}\"\n"
    );
    let found = problems(&source);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("each item is a file"), "{found:#?}");
}

#[test]
fn a_list_field_counts_every_item_it_may_get() {
    let source = format!(
        "{HEADER}  - id: grid\n    model: flux_dev\n    prompt: four\n    n: 4\n  - id: one\n    model: flux_dev\n    prompt: one more\n  - id: mix\n    model: kontext_multi\n    prompt: blend\n    images: [\"{{{{ steps.grid.images }}}}\", \"{{{{ steps.one.image }}}}\"]\n"
    );
    let found = problems(&source);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("`images` may get 5 files"), "{found:#?}");
    let fits = source.replace("n: 4", "n: 3");
    assert!(problems(&fits).is_empty(), "{:#?}", problems(&fits));
}
