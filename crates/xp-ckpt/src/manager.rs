//! A folder of checkpoints: keeps the top k by a metric and always the last, with the state in
//! an atomically rewritten `manifest.json` that a reopened manager (a resumed run) trusts only as
//! far as the checkpoint directories on disk confirm it.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Float, Meta, check_name, sync_dir, write_files};
use crate::error::io;
use crate::{Checkpoint, CkptError};

/// Name of the manifest in a checkpoint folder.
pub const MANIFEST_FILE: &str = "manifest.json";
const TMP_PREFIX: &str = ".tmp-";
const LOCK_FILE: &str = ".lock";

/// Whether smaller or larger values of the metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Min,
    Max,
}

/// A checkpoint the manager keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Directory name inside the folder, e.g. `epoch0007-step0012345`.
    pub dir: String,
    pub epoch: u64,
    pub global_step: u64,
    /// Order of saving: the newest has the largest.
    pub seq: u64,
    /// The tracked metric at this checkpoint (NaN when it was NaN or is absent).
    metric: Float,
}

impl Entry {
    pub fn metric(&self) -> f64 {
        self.metric.0
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    metric: String,
    mode: Mode,
    /// The largest seq ever saved here: a directory not listed with a larger seq is a save whose
    /// manifest update was lost; one with a smaller seq was evicted.
    max_seq: u64,
    best: Option<String>,
    last: Option<String>,
    checkpoints: Vec<Entry>,
    /// Checkpoint directories that failed verification: never taken for evicted ones, so one
    /// whose files are restored is listed again, not deleted. Absent in older manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unverified: Vec<String>,
}

/// A checkpoint directory the manager found but does not list because it fails verification (a
/// missing or truncated file, unreadable metadata). It is never deleted: restore its files and
/// reopen the folder, and it is listed again.
#[derive(Debug, Clone, PartialEq)]
pub struct Unverified {
    /// Directory name inside the folder, e.g. `epoch0007-step0012345`.
    pub dir: String,
    /// From the directory name, as its metadata may be what is broken.
    pub epoch: u64,
    pub global_step: u64,
    /// What failed, naming the file.
    pub problem: String,
}

/// What [`CheckpointManager::save`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub path: PathBuf,
    /// This checkpoint is now the best.
    pub is_best: bool,
    /// Checkpoints deleted because they fell out of the top k.
    pub removed: Vec<PathBuf>,
    /// Problems that did not stop the save (a NaN metric, an old checkpoint that could not be
    /// deleted).
    pub warnings: Vec<String>,
}

/// The checkpoints of one run folder. Holds an exclusive lock on the folder while open, unless
/// opened read-only.
pub struct CheckpointManager {
    dir: PathBuf,
    max_checkpoints: usize,
    metric: String,
    mode: Mode,
    /// Kept checkpoints, oldest first.
    entries: Vec<Entry>,
    /// Checkpoint directories that fail verification, oldest first.
    unverified: Vec<Unverified>,
    max_seq: u64,
    warnings: Vec<String>,
    /// The folder's lock; `None` for a read-only view, which never writes.
    lock: Option<File>,
}

impl CheckpointManager {
    /// Opens (creating it if needed) the checkpoint folder `dir`, keeping the best
    /// `max_checkpoints` by `metric` under `mode`, plus the last. Cleans up what an interrupted
    /// save left, and rebuilds the manifest from the checkpoint directories when it is missing
    /// or unreadable.
    pub fn open(
        dir: impl AsRef<Path>,
        max_checkpoints: usize,
        metric: &str,
        mode: Mode,
    ) -> Result<Self, CkptError> {
        if max_checkpoints == 0 {
            return Err(CkptError::NoRoom);
        }
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io("create the checkpoint folder", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => CkptError::InUse { path: dir.clone() },
            std::fs::TryLockError::Error(error) => CkptError::Io {
                action: "lock",
                path: lock_path.clone(),
                error,
            },
        })?;
        let mut manager = CheckpointManager {
            dir,
            max_checkpoints,
            metric: metric.to_owned(),
            mode,
            entries: Vec::new(),
            unverified: Vec::new(),
            max_seq: 0,
            warnings: Vec::new(),
            lock: Some(lock),
        };
        manager.recover()?;
        Ok(manager)
    }

    /// Whether a process has the checkpoint folder `dir` open to write (a run still training):
    /// its lock is held. The probe takes a shared lock and drops it at once; a writer opening the
    /// folder in that instant is refused as if another process had it, so do not poll this.
    pub fn in_use(dir: impl AsRef<Path>) -> bool {
        let Ok(lock) = File::open(dir.as_ref().join(LOCK_FILE)) else {
            return false;
        };
        matches!(
            lock.try_lock_shared(),
            Err(std::fs::TryLockError::WouldBlock)
        )
    }

    /// A read-only view of the checkpoint folder `dir`: takes no lock and changes nothing, so it
    /// works while a training process has the folder open (to sample from its best checkpoint
    /// so far, say) and on folders you may not write. It lists what [`open`](Self::open) would,
    /// without cleaning up: leftovers of an interrupted save and evicted checkpoints are skipped.
    /// [`save`](Self::save) is refused. A checkpoint the writer evicts after this view was taken
    /// fails to load with an error naming it; open the view again.
    pub fn open_read_only(
        dir: impl AsRef<Path>,
        metric: &str,
        mode: Mode,
    ) -> Result<Self, CkptError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(CkptError::Io {
                action: "read the checkpoint folder",
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    if dir.exists() {
                        "not a folder"
                    } else {
                        "no such folder"
                    },
                ),
                path: dir,
            });
        }
        let mut manager = CheckpointManager {
            dir,
            max_checkpoints: usize::MAX,
            metric: metric.to_owned(),
            mode,
            entries: Vec::new(),
            unverified: Vec::new(),
            max_seq: 0,
            warnings: Vec::new(),
            lock: None,
        };
        manager.recover()?;
        Ok(manager)
    }

    /// Reads the folder, reconciles it with the manifest, applies retention and rewrites the
    /// manifest; a read-only view only reads.
    fn recover(&mut self) -> Result<(), CkptError> {
        let writable = self.lock.is_some();
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let manifest: Option<Manifest> = match std::fs::read(&manifest_path) {
            Ok(text) => match serde_json::from_slice(&text) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.warnings.push(format!(
                        "{} is unreadable ({e}); rebuilt from the checkpoint directories",
                        manifest_path.display()
                    ));
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("read", &manifest_path)(e)),
        };
        let listed: Option<BTreeSet<String>> = manifest
            .as_ref()
            .map(|m| m.checkpoints.iter().map(|e| e.dir.clone()).collect());
        let manifest_max = manifest.as_ref().map_or(0, |m| m.max_seq);
        let was_unverified: BTreeSet<&str> = manifest
            .as_ref()
            .map(|m| m.unverified.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let mut found = Vec::new();
        let mut unverified = Vec::new();
        let mut max_seq = manifest_max;
        for item in std::fs::read_dir(&self.dir).map_err(io("list", &self.dir))? {
            let item = item.map_err(io("list", &self.dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let path = item.path();
            if name.starts_with(TMP_PREFIX) {
                // An interrupted save or manifest write (or, for a read-only view, one in
                // progress): never listed, safe to drop.
                if !writable {
                    continue;
                }
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(io("remove the leftover", &path))?;
                continue;
            }
            let Some((epoch, global_step)) = parse_checkpoint_name(&name) else {
                continue;
            };
            if !path.is_dir() {
                continue;
            }
            // A readable seq counts even when a file is broken: a later save must not reuse it.
            let meta = Meta::read(&path).and_then(|meta| {
                max_seq = max_seq.max(meta.seq);
                meta.check_sizes(&path).map(|()| meta)
            });
            let meta = match meta {
                Ok(meta) => meta,
                // Evicted by a writer while this (read-only) view looked: not broken, just gone.
                Err(_) if !path.exists() => continue,
                Err(err) => {
                    self.warnings.push(format!("not listed: {err}"));
                    unverified.push(Unverified {
                        dir: name,
                        epoch,
                        global_step,
                        problem: describe(&err),
                    });
                    continue;
                }
            };
            let evicted = listed.as_ref().is_some_and(|l| {
                !l.contains(&name)
                    && !was_unverified.contains(name.as_str())
                    && meta.seq <= manifest_max
            });
            if evicted {
                // Retention had dropped it; the save that did so stopped before deleting it.
                if !writable {
                    continue;
                }
                discard(&self.dir, &name).map_err(io("remove the evicted checkpoint", &path))?;
                continue;
            }
            let metric = match meta.metrics.get(&self.metric) {
                Some(v) => *v,
                None => {
                    self.warnings.push(format!(
                        "{name} has no `{}` metric; it is kept only while it is the last",
                        self.metric
                    ));
                    Float(f64::NAN)
                }
            };
            found.push(Entry {
                dir: name,
                epoch: meta.epoch,
                global_step: meta.global_step,
                seq: meta.seq,
                metric,
            });
        }
        found.sort_by_key(|e| e.seq);
        unverified.sort_by_key(|u: &Unverified| (u.epoch, u.global_step));
        self.entries = found;
        self.unverified = unverified;
        self.max_seq = max_seq;
        if !writable {
            return Ok(());
        }
        sync_dir(&self.dir).map_err(io("flush", &self.dir))?;
        let removed = self.retain()?;
        self.warnings.extend(removed.1);
        Ok(())
    }

    /// Drops what falls outside top-k ∪ {last}: manifest first, then the directories.
    /// Returns the removed paths and the deletions that failed.
    fn retain(&mut self) -> Result<(Vec<PathBuf>, Vec<String>), CkptError> {
        let keep = self.kept();
        let (kept, dropped): (Vec<Entry>, Vec<Entry>) =
            self.entries.drain(..).partition(|e| keep.contains(&e.seq));
        self.entries = kept;
        self.write_manifest()?;
        let mut removed = Vec::new();
        let mut failed = Vec::new();
        for e in dropped {
            let path = self.dir.join(&e.dir);
            match discard(&self.dir, &e.dir) {
                Ok(()) => removed.push(path),
                Err(err) => failed.push(format!("could not delete {}: {err}", path.display())),
            }
        }
        Ok((removed, failed))
    }

    /// The seqs to keep: the best `max_checkpoints` (NaN never ranks; ties go to the newer),
    /// and the last.
    fn kept(&self) -> BTreeSet<u64> {
        let mut keep: BTreeSet<u64> = self
            .ranked()
            .iter()
            .take(self.max_checkpoints)
            .map(|e| e.seq)
            .collect();
        keep.extend(self.last().map(|e| e.seq));
        keep
    }

    /// Entries with a rankable metric, best first.
    fn ranked(&self) -> Vec<&Entry> {
        let mut ranked: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| !e.metric.0.is_nan())
            .collect();
        ranked.sort_by(|a, b| self.compare(a, b));
        ranked
    }

    fn compare(&self, a: &Entry, b: &Entry) -> Ordering {
        let by_metric = match self.mode {
            Mode::Min => a.metric.0.total_cmp(&b.metric.0),
            Mode::Max => b.metric.0.total_cmp(&a.metric.0),
        };
        by_metric.then(b.seq.cmp(&a.seq))
    }

    fn write_manifest(&self) -> Result<(), CkptError> {
        let manifest = Manifest {
            metric: self.metric.clone(),
            mode: self.mode,
            max_seq: self.max_seq,
            best: self.best().map(|e| e.dir.clone()),
            last: self.last().map(|e| e.dir.clone()),
            checkpoints: self.entries.clone(),
            unverified: self.unverified.iter().map(|u| u.dir.clone()).collect(),
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("the manifest always serialises");
        let tmp = self.dir.join(format!("{TMP_PREFIX}{MANIFEST_FILE}"));
        let path = self.dir.join(MANIFEST_FILE);
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)
        };
        write().map_err(|error| {
            let _ = std::fs::remove_file(&tmp);
            CkptError::Io {
                action: "write",
                path: path.clone(),
                error,
            }
        })
    }

    /// Saves a checkpoint atomically, then applies retention. On any error the folder keeps its
    /// previous checkpoints and manifest, all loadable.
    pub fn save(&mut self, ckpt: &Checkpoint) -> Result<Saved, CkptError> {
        if self.lock.is_none() {
            return Err(CkptError::ReadOnly {
                path: self.dir.clone(),
            });
        }
        for name in ckpt.payloads.keys() {
            check_name(name)?;
        }
        let Some(&value) = ckpt.metrics.get(&self.metric) else {
            let present: Vec<&str> = ckpt.metrics.keys().map(String::as_str).collect();
            return Err(CkptError::MissingMetric {
                metric: self.metric.clone(),
                present: if present.is_empty() {
                    "no metrics".to_owned()
                } else {
                    present.join(", ")
                },
            });
        };
        let name = ckpt.dir_name();
        let path = self.dir.join(&name);
        if path.exists() {
            return Err(CkptError::Exists {
                epoch: ckpt.epoch,
                step: ckpt.global_step,
                path,
            });
        }
        let seq = self.max_seq + 1;
        let tmp = self.dir.join(format!("{TMP_PREFIX}{name}"));
        let written = (|| {
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(|error| CkptError::Io {
                    action: "remove the leftover",
                    path: tmp.clone(),
                    error,
                })?;
            }
            std::fs::create_dir(&tmp).map_err(|error| CkptError::Io {
                action: "create",
                path: tmp.clone(),
                error,
            })?;
            write_files(ckpt, seq, &tmp)?;
            std::fs::rename(&tmp, &path).map_err(|error| CkptError::Io {
                action: "move the finished checkpoint into place at",
                path: path.clone(),
                error,
            })?;
            sync_dir(&self.dir).map_err(|error| CkptError::Io {
                action: "flush",
                path: self.dir.clone(),
                error,
            })
        })();
        if let Err(err) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(err);
        }
        self.max_seq = seq;
        self.entries.push(Entry {
            dir: name,
            epoch: ckpt.epoch,
            global_step: ckpt.global_step,
            seq,
            metric: Float(value),
        });
        let mut warnings = Vec::new();
        if value.is_nan() {
            warnings.push(format!(
                "metric `{}` is NaN at epoch {}, step {}: this checkpoint is never the best; it is kept while it is the last",
                self.metric, ckpt.epoch, ckpt.global_step
            ));
        }
        let (removed, failed) = self.retain()?;
        warnings.extend(failed);
        Ok(Saved {
            is_best: self.best().is_some_and(|b| b.seq == seq),
            path,
            removed,
            warnings,
        })
    }

    /// The best kept checkpoint by the metric (never one whose metric is NaN).
    pub fn best(&self) -> Option<&Entry> {
        self.ranked().into_iter().next()
    }

    /// The most recently saved checkpoint: where a resumed run continues.
    pub fn last(&self) -> Option<&Entry> {
        self.entries.iter().max_by_key(|e| e.seq)
    }

    /// Every kept checkpoint, oldest first.
    pub fn checkpoints(&self) -> &[Entry] {
        &self.entries
    }

    pub fn path(&self, entry: &Entry) -> PathBuf {
        self.dir.join(&entry.dir)
    }

    /// Loads (and verifies) the best checkpoint; `None` when there is none.
    pub fn load_best(&self) -> Result<Option<Checkpoint>, CkptError> {
        self.best()
            .map(|e| Checkpoint::load(&self.path(e)))
            .transpose()
    }

    /// Loads (and verifies) the last checkpoint; `None` when there is none.
    pub fn load_last(&self) -> Result<Option<Checkpoint>, CkptError> {
        self.last()
            .map(|e| Checkpoint::load(&self.path(e)))
            .transpose()
    }

    /// What opening found and worked around: unreadable manifest, checkpoints not listed
    /// because they fail verification, checkpoints without the metric.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The checkpoint directories not listed because they fail verification, oldest first.
    pub fn unverified(&self) -> &[Unverified] {
        &self.unverified
    }

    /// The unverified checkpoints newer (by epoch and step) than the last listed one, or all of
    /// them when none is listed: non-empty when the folder's newest state is broken. A resumed
    /// run should not go on from the last listed one then: it would repeat epochs and, on
    /// reaching a broken one's epoch and step, fail to save.
    pub fn unverified_since_last(&self) -> Vec<&Unverified> {
        let last = self.last().map(|l| (l.epoch, l.global_step));
        self.unverified
            .iter()
            .filter(|u| last.is_none_or(|last| (u.epoch, u.global_step) > last))
            .collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Deletes a checkpoint directory without ever leaving a half-deleted one under its name: it is
/// renamed to a temporary name first (atomic), which `open` removes if deletion is interrupted.
fn discard(dir: &Path, name: &str) -> std::io::Result<()> {
    let doomed = dir.join(format!("{TMP_PREFIX}evicted-{name}"));
    std::fs::rename(dir.join(name), &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

/// The epoch and step of a checkpoint directory's name, `epoch<digits>-step<digits>`.
fn parse_checkpoint_name(name: &str) -> Option<(u64, u64)> {
    let (epoch, step) = name.strip_prefix("epoch")?.split_once("-step")?;
    let number = |digits: &str| {
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    Some((number(epoch)?, number(step)?))
}

/// An error's problem alone: a [`CkptError::Corrupt`] without its advice, which suits a folder
/// more than one checkpoint.
fn describe(err: &CkptError) -> String {
    match err {
        CkptError::Corrupt { path, problem } => format!("{}: {problem}", path.display()),
        other => other.to_string(),
    }
}
