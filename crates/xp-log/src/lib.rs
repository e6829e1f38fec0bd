//! TensorBoard logging for Rust training loops: event files that the official TensorBoard reads
//! (scalars, scalar groups, histograms, images, text, hparams, custom-scalar charts), written by
//! a background thread so a logging call costs a queue push; plus run directories with the config and a
//! `metrics.jsonl` mirror.
//!
//! ```no_run
//! let writer = xp_log::SummaryWriter::new("runs/exp")?;
//! writer.add_scalar("train/loss", 0.42, 1)?;
//! writer.flush()?;
//! # Ok::<(), xp_log::LogError>(())
//! ```

mod error;
mod logger;
pub mod proto;
mod record;
mod summary;
mod writer;

pub use error::LogError;
pub use logger::{CONFIG_FILE, ExperimentLogger, METRICS_FILE};
pub use record::EventReader;
pub use summary::{Chart, ChartCategory, HParam, Image, default_bucket_edges};
pub use writer::SummaryWriter;
