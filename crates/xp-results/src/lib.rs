//! The results log: one JSON line per finished run (`timestamp`, `experiment_name`, `config`,
//! `metrics`, `artifacts`, the seed's format), appended safely by any number of processes and
//! queried fast: best or top n by a metric, filtered by name and config values, compared.
//!
//! ```no_run
//! use xp_results::{Mode, ResultsTracker};
//! let log = ResultsTracker::open("results");
//! let config = serde_json::json!({"model": {"model_type": "vae"}});
//! log.log_result("vae-small", &config, [("val_loss", 0.42)], [("best", "runs/vae/best")])?;
//! let best = log.query().filter("model.model_type == vae")?.best("val_loss", Mode::Min)?;
//! # Ok::<(), xp_results::ResultsError>(())
//! ```

mod error;
mod query;
mod record;
mod scan;
mod tracker;

pub use error::ResultsError;
pub use query::{Comparison, Entry, Filter, Found, Mode, Query, compare};
pub use record::ResultRecord;
pub use scan::{SkipKind, SkippedLine};
pub use tracker::{Durability, LOG_FILE, ResultsTracker};
