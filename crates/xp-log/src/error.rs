use std::path::PathBuf;

/// Everything that can go wrong while logging.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
