//! Problems of a pipeline file: each with its line, step, code and hint, all reported at once.

use std::fmt;

pub use acgs_core::Problem;

/// Every problem found in a pipeline file, with the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The file as given.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl Problems {
    /// One problem of `file` with no line or step (the file cannot be read, say).
    pub(crate) fn one(file: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            problems: vec![Problem {
                file: file.to_owned(),
                line: None,
                step: None,
                code,
                message: message.into(),
                hint: None,
            }],
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if let Some(step) = &p.step {
                write!(f, ": step `{step}`")?;
            }
            write!(f, ": {}", p.message)?;
            if let Some(hint) = &p.hint {
                write!(f, "\n    hint: {hint}")?;
            }
        }
        Ok(())
    }
}
