use std::path::{Path, PathBuf};

/// Everything that can go wrong with checkpoints. Each names the file or the fix.
#[derive(Debug, thiserror::Error)]
pub enum CkptError {
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        /// In the message, so not also `source()`: a chain printer (anyhow `{:#}`) would say it twice.
        error: std::io::Error,
    },
    #[error("checkpoint {}: {problem}; it cannot be trusted (restore it, or delete it and reopen)", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error(
        "metric `{metric}` is missing from the checkpoint's metrics (it has: {present}); log it, or open the manager with one of those"
    )]
    MissingMetric { metric: String, present: String },
    #[error(
        "bad payload name `{name}`: use letters, digits, `.`, `_` and `-`, not starting with `.`, and not `meta.json` or `config.toml`"
    )]
    BadPayloadName { name: String },
    #[error("a checkpoint for epoch {epoch}, step {step} already exists at {}", path.display())]
    Exists {
        epoch: u64,
        step: u64,
        path: PathBuf,
    },
    #[error(
        "cannot open {} to save: another process has this checkpoint folder open (a run still training?); let it end first, or look with CheckpointManager::open_read_only",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("max_checkpoints must be at least 1")]
    NoRoom,
    #[error(
        "cannot save into {}: it was opened read-only; open it with CheckpointManager::open to save",
        path.display()
    )]
    ReadOnly { path: PathBuf },
}

/// `map_err(io("write", path))`: an I/O error with what was being done and to which file.
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CkptError {
    let path = path.to_path_buf();
    move |error| CkptError::Io {
        action,
        path,
        error,
    }
}
