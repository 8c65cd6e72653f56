//! Problems of a pipeline file: each with its line and step, all reported at once.

use std::fmt;

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// The step it concerns.
    pub step: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn at(line: u32, step: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            line: (line > 0).then_some(line),
            step: step.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// Every problem found in a pipeline file, with the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    /// The file as given.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
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
        }
        Ok(())
    }
}
