use std::path::PathBuf;

/// Why a training run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {problem}", path.display())]
    Data { path: PathBuf, problem: String },
    #[error("{0}")]
    Device(String),
    #[error(transparent)]
    Config(#[from] xp_config::ConfigError),
    #[error(transparent)]
    Log(#[from] xp_log::LogError),
    #[error(transparent)]
    Checkpoint(#[from] xp_ckpt::CkptError),
    #[error(transparent)]
    Results(#[from] xp_results::ResultsError),
    #[error("checkpoint {}: {problem}", path.display())]
    BadCheckpoint { path: PathBuf, problem: String },
    #[error("cannot resume {}: {problem}", path.display())]
    Resume { path: PathBuf, problem: String },
    #[error("cannot sample from {}: {problem}", path.display())]
    Sample { path: PathBuf, problem: String },
    #[error(
        "the loss became {value} at step {step}; lower training.learning_rate or set training.gradient_clip"
    )]
    Diverged { step: u64, value: f64 },
    #[error("{0}")]
    Other(String),
    /// Stopped on request (Ctrl-C) while the data loaded, before the first step: no run
    /// directory was made, and a resumed run is as it was.
    #[error("stopped on request before training began; nothing was written")]
    Stopped,
    /// A run that failed after its run directory was made: what is there stays (its
    /// checkpoints, logs), and `--resume` goes on from its last checkpoint.
    #[error("{}: {error}", run_dir.display())]
    InRun {
        run_dir: PathBuf,
        error: Box<TrainError>,
    },
}

impl TrainError {
    /// The run directory of a run that failed after it was made.
    pub fn run_dir(&self) -> Option<&std::path::Path> {
        match self {
            TrainError::InRun { run_dir, .. } => Some(run_dir),
            _ => None,
        }
    }
}
