//! Stage 4: assemble the request. One template syntax everywhere (`{{ name }}`), rendered in a
//! single pass: inspected text goes into its own field and is never rescanned; for text models
//! the configured instruction goes in the system instruction and user text in its own part.

use acgs_core::catalog::Params;
use acgs_guard::GuardError;
use acgs_guard::template::render;
use serde_json::Value;

use crate::stages::inspect::InspectedTexts;

/// Wire parameters and system instruction from validated parameters and inspected texts.
/// `templates` maps a flag to a configured template whose `{{ <flag> }}` slot receives the text.
pub(crate) fn assemble(
    params: &Params,
    texts: &InspectedTexts,
    templates: &[(String, String)],
) -> Result<(Params, Option<String>), GuardError> {
    let mut wire = params.clone();
    for field in &texts.texts {
        let text = match templates.iter().find(|(flag, _)| *flag == field.flag) {
            Some((_, template)) => render(template, &|slot| {
                (slot == field.flag).then(|| field.text.clone())
            })?,
            None => field.text.clone(),
        };
        wire.insert(field.param.clone(), Value::String(text));
    }
    Ok((wire, texts.system.as_ref().map(|s| s.text.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::validate::TextField;

    #[test]
    fn text_is_placed_once_and_never_rescanned() {
        let texts = InspectedTexts {
            texts: vec![TextField {
                param: "prompt".into(),
                flag: "prompt".into(),
                text: "a {{ prompt }} cat".into(),
            }],
            ..InspectedTexts::default()
        };
        let templates = vec![("prompt".to_owned(), "Studio photo: {{ prompt }}".to_owned())];
        let (wire, system) = assemble(&Params::new(), &texts, &templates).expect("renders");
        assert_eq!(wire["prompt"], "Studio photo: a {{ prompt }} cat");
        assert_eq!(system, None);
    }
}
