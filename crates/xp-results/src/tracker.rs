//! Appending results: one record, one `write` of a whole line, under an exclusive advisory lock.
//!
//! A writer that crashes mid-line leaves a torn record, and the next append continues on that
//! line. Readers recover the complete record after the fragment and report the fragment
//! ([`SkipKind::Torn`](crate::SkipKind::Torn)), so a crash costs only the record being written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::record::write_line;
use crate::{Query, ResultRecord, ResultsError};

/// File name of the log inside its folder.
pub const LOG_FILE: &str = "results.jsonl";

/// How hard [`ResultsTracker::log_result`] works to make a record survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The record is in the operating system's cache when `log_result` returns: it survives the
    /// process crashing, not the machine losing power. A torn line from a power cut is skipped
    /// and reported when reading.
    #[default]
    Os,
    /// Also `fsync` the file after every record: survives power loss, costs a disk flush each.
    Fsync,
}

/// The results log of one folder (`{dir}/results.jsonl`): any number of processes may append and
/// read at once.
pub struct ResultsTracker {
    dir: PathBuf,
    path: PathBuf,
    durability: Durability,
    /// The append handle, opened on first use.
    writer: Mutex<Option<File>>,
}

impl ResultsTracker {
    /// The log in `dir`. Nothing is created until the first [`log_result`](Self::log_result).
    pub fn open(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_path_buf();
        ResultsTracker {
            path: dir.join(LOG_FILE),
            dir,
            durability: Durability::default(),
            writer: Mutex::new(None),
        }
    }

    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one result, stamped with the current local time (RFC 3339 with offset), and
    /// returns that timestamp. `config` must serialise to a JSON object.
    pub fn log_result<'a>(
        &self,
        experiment_name: &str,
        config: &impl Serialize,
        metrics: impl IntoIterator<Item = (&'a str, f64)>,
        artifacts: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<String, ResultsError> {
        let timestamp = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let mut line = Vec::with_capacity(1024);
        write_line(
            &mut line,
            &timestamp,
            experiment_name,
            config,
            metrics.into_iter(),
            artifacts.into_iter(),
        )
        .map_err(|got| ResultsError::ConfigNotObject { got })?;
        self.append_line(&line)?;
        Ok(timestamp)
    }

    /// Appends a record as it is (its timestamp included): for importing and for tests.
    pub fn append(&self, record: &ResultRecord) -> Result<(), ResultsError> {
        self.append_line(&record.to_line())
    }

    fn append_line(&self, line: &[u8]) -> Result<(), ResultsError> {
        let io = |action, error| ResultsError::Io {
            action,
            path: self.path.clone(),
            error,
        };
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if writer.is_none() {
            std::fs::create_dir_all(&self.dir).map_err(|e| ResultsError::Io {
                action: "create the results folder",
                path: self.dir.clone(),
                error: e,
            })?;
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&self.path)
                .map_err(|e| io("open for appending", e))?;
            *writer = Some(file);
        }
        let file = writer.as_mut().expect("opened above");
        file.lock().map_err(|e| io("lock", e))?;
        let result = file.write_all(line).and_then(|()| match self.durability {
            Durability::Fsync => file.sync_data(),
            Durability::Os => Ok(()),
        });
        let unlocked = file.unlock();
        result.map_err(|e| io("append to", e))?;
        unlocked.map_err(|e| io("unlock", e))
    }

    /// Queries over the log; see [`Query`].
    pub fn query(&self) -> Query {
        Query::new(&self.path)
    }
}
