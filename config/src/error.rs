//! Config errors that name the file, the field path and what is wrong.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a config file.
///
/// Its `Display` reads `FILE:LINE:COLUMN: FIELD: what is wrong` (line and column when known),
/// e.g. `cdn.toml:12:12: edge.cache.max_size: invalid size "12XB" ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the config came from (`<embedded default>` for the built-in one).
    pub file: PathBuf,
    /// 1-based line and column of the offending text, when the parser knows it.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the field, e.g. `edge.cache.max_size` (empty for a syntax error).
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one config file; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
