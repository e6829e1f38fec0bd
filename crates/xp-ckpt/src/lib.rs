//! Crash-safe checkpoints for training runs: the top k by a metric, the best, and always the last
//! (for resume). Each checkpoint is one directory written beside its final place, flushed to disk
//! and renamed into place, with the size and crc32c of every file in its `meta.json`; the folder's
//! state lives in a `manifest.json` rewritten atomically. A crash at any moment leaves the old
//! state or the new one. Payloads are named byte blobs (no Burn here): loading runs no code.
//!
//! ```no_run
//! use xp_ckpt::{Checkpoint, CheckpointManager, Mode};
//! let mut manager = CheckpointManager::open("runs/exp/checkpoints", 3, "val_loss", Mode::Min)?;
//! let ckpt = Checkpoint::new(7, 12_345)
//!     .with_payload("model.safetensors", vec![0; 16])
//!     .with_metric("val_loss", 0.42);
//! manager.save(&ckpt)?;
//! let resume_from = manager.load_last()?;
//! # Ok::<(), xp_ckpt::CkptError>(())
//! ```

mod checkpoint;
mod error;
mod manager;

pub use checkpoint::{CONFIG_FILE, Checkpoint, META_FILE, Payload};
pub use error::CkptError;
pub use manager::{CheckpointManager, Entry, MANIFEST_FILE, Mode, Saved, Unverified};
