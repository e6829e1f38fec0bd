use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or writing a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        /// In the message, so not also `source()`: a chain printer (anyhow `{:#}`) would say it twice.
        error: std::io::Error,
    },
    #[error(
        "{} is a folder, not a config file{}",
        path.display(),
        inside.as_ref().map(|f| format!("; did you mean {}?", f.display())).unwrap_or_default()
    )]
    Folder {
        path: PathBuf,
        /// The `config.toml` it holds (a run directory's), if any.
        inside: Option<PathBuf>,
    },
    #[error("{origin}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", Violations(.0))]
    Invalid(Vec<Violation>),
}

impl ConfigError {
    /// The individual problems, when the config was readable but wrong.
    pub fn violations(&self) -> &[Violation] {
        match self {
            ConfigError::Invalid(v) => v,
            _ => &[],
        }
    }
}

/// One problem with one key of a config.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Dotted key path, e.g. `training.batch_size`.
    pub path: String,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
    /// Where the offending value (or key) was written.
    pub location: Option<Location>,
}

/// Where a value was written: a place in a file, or a command-line override.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    File {
        file: String,
        line: usize,
        column: usize,
    },
    Override(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { file, line, column } => write!(f, "{file}:{line}:{column}"),
            Location::Override(text) => write!(f, "override `{text}`"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if self.path.is_empty() {
            // Nothing to name, as in an override with no key.
            return f.write_str(&self.message);
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct Violations<'a>(&'a [Violation]);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} problem{} in the config:",
            if n == 1 { "" } else { "s" }
        )?;
        for v in self.0 {
            write!(f, "\n  {v}")?;
        }
        Ok(())
    }
}
