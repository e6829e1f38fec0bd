use std::path::PathBuf;

/// Everything that can go wrong with the results log.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        /// In the message, so not also `source()`: a chain printer (anyhow `{:#}`) would say it twice.
        error: std::io::Error,
    },
    #[error("no results log at {}: nothing has been logged there yet (check --dir)", path.display())]
    NoLog { path: PathBuf },
    #[error("the config of a result must be a JSON object (a table), got {got}")]
    ConfigNotObject { got: String },
    #[error("bad filter `{expr}`: {reason}")]
    Filter { expr: String, reason: String },
    #[error("bad experiment name pattern `{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("bad mode `{0}`: expected `min` or `max`")]
    Mode(String),
}
