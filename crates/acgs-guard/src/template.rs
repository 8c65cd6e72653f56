//! Templates: one syntax everywhere, `{{ name }}`, rendered in a single pass. Values are inserted
//! verbatim and never rescanned, so user text cannot open or close a slot or inject template
//! syntax. There are no filters and no environment or file access.

use crate::error::GuardError;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'t> {
    /// Literal text.
    Text(&'t str),
    /// A slot `{{ name }}`.
    Slot(&'t str),
}

/// Split a template into literal text and slots. Slot names are `[A-Za-z0-9_.\[\]]+`.
pub fn parse(template: &str) -> Result<Vec<Piece<'_>>, GuardError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| GuardError::Template("a `{{` is never closed".into()))?;
        let name = after[..close].trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'[' | b']'));
        if !valid {
            return Err(GuardError::Template(format!(
                "`{{{{ {} }}}}` is not a valid slot name",
                name.chars().take(40).collect::<String>()
            )));
        }
        pieces.push(Piece::Slot(name));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(GuardError::Template("a `}}` has no matching `{{`".into()));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// The slot names a template refers to, in order.
pub fn slots(template: &str) -> Result<Vec<&str>, GuardError> {
    Ok(parse(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Slot(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Render `template`, asking `value` for each slot. An unknown slot is an error.
pub fn render(
    template: &str,
    value: &dyn Fn(&str) -> Option<String>,
) -> Result<String, GuardError> {
    let mut out = String::with_capacity(template.len());
    for piece in parse(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Slot(name) => {
                let v = value(name)
                    .ok_or_else(|| GuardError::Template(format!("unknown slot `{name}`")))?;
                out.push_str(&v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<String> {
        match name {
            "prompt" => Some("a {{ secret }} cat }}".into()),
            "inputs.product" => Some("teapot".into()),
            _ => None,
        }
    }

    #[test]
    fn renders_in_one_pass_without_rescanning_values() {
        let out = render("Photo of {{inputs.product}}: {{ prompt }}", &values).expect("renders");
        assert_eq!(out, "Photo of teapot: a {{ secret }} cat }}");
    }

    #[test]
    fn malformed_templates_are_errors() {
        for bad in [
            "{{ prompt",
            "a }} b",
            "{{ }}",
            "{{ a b }}",
            "{{ env:HOME }}",
            "{{ unknown }}",
        ] {
            assert!(render(bad, &values).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_slots() {
        assert_eq!(
            slots("{{ steps.still.image }} and {{inputs.x}}").expect("parses"),
            vec!["steps.still.image", "inputs.x"]
        );
    }
}
