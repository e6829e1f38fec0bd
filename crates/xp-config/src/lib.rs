//! Typed experiment configs, stricter and friendlier than a dict: every problem reported at once
//! by key path and file position, unknown keys caught with a suggestion, comments kept on save.
//!
//! ```no_run
//! let config = xp_config::create_config(
//!     Some("experiment.toml".as_ref()),
//!     &["training.learning_rate=3e-4"],
//! )?;
//! println!("{}", config.training.learning_rate);
//! # Ok::<(), xp_config::ConfigError>(())
//! ```

mod check;
mod convert;
mod error;
mod file;
mod model;
mod provenance;
pub mod schema;

pub use error::{ConfigError, Location, Violation};
pub use file::{create_config, from_saved_toml, from_toml_str};
pub use model::{
    DataConfig, Device, DiffusionOrder, ExperimentConfig, ModelConfig, ModelType, TOML_INT_MAX,
    TrainingConfig,
};
