//! Where a config's values came from, so that saving keeps the file's comments and errors can
//! point at a line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Origin of a loaded config. It never takes part in equality: two configs with the same values
/// are equal wherever they came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provenance(pub(crate) Option<Arc<Origin>>);

#[derive(Debug)]
pub(crate) struct Origin {
    /// The file the config was read from; `None` for the built-in default.
    pub file: Option<PathBuf>,
    /// Folder that relative paths in the text were resolved against.
    pub base_dir: PathBuf,
    /// The TOML text as read, comments and all.
    pub text: String,
    /// The resolved values right after loading, as JSON, to tell which values changed since.
    pub loaded: serde_json::Value,
    /// `key.path` -> the `key.path=value` override that set it.
    pub overrides: BTreeMap<String, String>,
}

impl PartialEq for Provenance {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Provenance {
    pub fn file(&self) -> Option<&Path> {
        self.0.as_ref()?.file.as_deref()
    }
}
