use std::path::{Path, PathBuf};

/// Everything that can go wrong while logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        /// In the message, so not also `source()`: a chain printer (anyhow `{:#}`) would say it twice.
        error: std::io::Error,
    },
    #[error("{} is not a run directory (it has no config.toml); pass the folder a run created", path.display())]
    NotARunDir { path: PathBuf },
    #[error("{}: bad record at byte {offset}: {problem}", path.display())]
    CorruptEventFile {
        path: PathBuf,
        offset: u64,
        problem: String,
    },
    #[error("histogram `{tag}`: {problem}")]
    Histogram { tag: String, problem: String },
    #[error("image `{tag}`: {problem}")]
    Image { tag: String, problem: String },
    #[error("the log writer stopped after an earlier error: {0}")]
    Stopped(String),
}

/// `map_err(io("create", path))`: an I/O error with what was being done and to which file.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |error| LogError::Io {
        action,
        path,
        error,
    }
}
