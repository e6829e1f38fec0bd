//! One checkpoint: a directory of payload files, the config, and a `meta.json` that records the
//! size and crc32c of every file. Nothing in it is code: loading reads bytes and JSON only.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::CkptError;
use crate::error::io;

/// Name of the metadata file in a checkpoint directory.
pub const META_FILE: &str = "meta.json";
/// Name of the config file in a checkpoint directory.
pub const CONFIG_FILE: &str = "config.toml";
const FORMAT: &str = "xp-ckpt/1";
const IO_BLOCK: usize = 8 << 20;

/// What a payload's bytes come from when saving.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// A file the caller wrote; it is copied into the checkpoint.
    File(PathBuf),
}

/// The state of a run at one moment: enough to resume it exactly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checkpoint {
    pub epoch: u64,
    pub global_step: u64,
    /// Named payloads, e.g. `model.safetensors`, `optimizer`, `scheduler`, `rng`. The name is
    /// the file name inside the checkpoint.
    pub payloads: BTreeMap<String, Payload>,
    /// The run's config, as TOML text.
    pub config: String,
    /// Metric name -> value at this checkpoint.
    pub metrics: BTreeMap<String, f64>,
    /// The best value of the tracked metric so far in the run.
    pub best_metric: Option<f64>,
}

impl Checkpoint {
    pub fn new(epoch: u64, global_step: u64) -> Self {
        Checkpoint {
            epoch,
            global_step,
            ..Default::default()
        }
    }

    pub fn with_payload(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.payloads.insert(name.to_owned(), Payload::Bytes(bytes));
        self
    }

    pub fn with_metric(mut self, name: &str, value: f64) -> Self {
        self.metrics.insert(name.to_owned(), value);
        self
    }

    pub fn with_config(mut self, toml: &str) -> Self {
        self.config = toml.to_owned();
        self
    }

    /// A payload's bytes (loaded checkpoints hold bytes only).
    pub fn payload(&self, name: &str) -> Option<&[u8]> {
        match self.payloads.get(name)? {
            Payload::Bytes(b) => Some(b),
            Payload::File(_) => None,
        }
    }

    /// Directory name of this checkpoint: `epoch0007-step0012345`.
    pub fn dir_name(&self) -> String {
        format!("epoch{:04}-step{:07}", self.epoch, self.global_step)
    }

    /// Reads the checkpoint in `dir`, verifying the size and checksum of every file.
    pub fn load(dir: &Path) -> Result<Self, CkptError> {
        let meta = Meta::read(dir)?;
        let mut payloads = BTreeMap::new();
        for (name, file) in &meta.payloads {
            payloads.insert(
                name.clone(),
                Payload::Bytes(read_verified(dir, name, file)?),
            );
        }
        let config = read_verified(dir, CONFIG_FILE, &meta.config)?;
        let config = String::from_utf8(config).map_err(|_| CkptError::Corrupt {
            path: dir.join(CONFIG_FILE),
            problem: "the config is not UTF-8 text".to_owned(),
        })?;
        Ok(Checkpoint {
            epoch: meta.epoch,
            global_step: meta.global_step,
            payloads,
            config,
            metrics: meta.metrics.into_iter().map(|(k, v)| (k, v.0)).collect(),
            best_metric: meta.best_metric.map(|v| v.0),
        })
    }
}

/// A float that survives JSON: NaN and infinities are written as strings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Float(pub f64);

impl Serialize for Float {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v == f64::INFINITY => s.serialize_str("Infinity"),
            v if v == f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            v => s.serialize_f64(v),
        }
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(Float(v)),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(Float(f64::NAN)),
                "Infinity" => Ok(Float(f64::INFINITY)),
                "-Infinity" => Ok(Float(f64::NEG_INFINITY)),
                _ => Err(serde::de::Error::custom(format!("not a number: {t:?}"))),
            },
        }
    }
}

/// Size and checksum of one file of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FileSum {
    pub size: u64,
    pub crc32c: u32,
}

impl FileSum {
    /// The error for a file whose length on disk is not the recorded one.
    fn check_size(&self, path: &Path, size: u64) -> Result<(), CkptError> {
        if size == self.size {
            return Ok(());
        }
        Err(CkptError::Corrupt {
            path: path.to_path_buf(),
            problem: format!("{size} bytes, {} expected (truncated?)", self.size),
        })
    }
}

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub format: String,
    pub epoch: u64,
    pub global_step: u64,
    /// Order of saving within a checkpoint folder; the newest has the largest.
    pub seq: u64,
    pub metrics: BTreeMap<String, Float>,
    pub best_metric: Option<Float>,
    pub config: FileSum,
    pub payloads: BTreeMap<String, FileSum>,
}

impl Meta {
    pub fn read(dir: &Path) -> Result<Self, CkptError> {
        let path = dir.join(META_FILE);
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CkptError::Corrupt {
                path: dir.to_path_buf(),
                problem: format!("{META_FILE} is missing"),
            },
            _ => CkptError::Io {
                action: "read",
                path: path.clone(),
                error: e,
            },
        })?;
        let meta: Meta = serde_json::from_slice(&text).map_err(|e| CkptError::Corrupt {
            path: path.clone(),
            problem: format!("unreadable metadata: {e}"),
        })?;
        if meta.format != FORMAT {
            return Err(CkptError::Corrupt {
                path,
                problem: format!("format `{}`, this version reads `{FORMAT}`", meta.format),
            });
        }
        for name in meta.payloads.keys() {
            check_name(name).map_err(|_| CkptError::Corrupt {
                path: path.clone(),
                problem: format!("payload name `{name}` is not a plain file name"),
            })?;
        }
        Ok(meta)
    }

    /// Cheap check that every file is there with its recorded size (no checksums).
    pub fn check_sizes(&self, dir: &Path) -> Result<(), CkptError> {
        let files = self.payloads.iter().map(|(n, s)| (n.as_str(), s));
        for (name, sum) in files.chain([(CONFIG_FILE, &self.config)]) {
            let path = dir.join(name);
            let size =
                std::fs::metadata(&path)
                    .map(|m| m.len())
                    .map_err(|e| CkptError::Corrupt {
                        path: path.clone(),
                        problem: format!("cannot read it: {e}"),
                    })?;
            sum.check_size(&path, size)?;
        }
        Ok(())
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), CkptError> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name != META_FILE
        && name != CONFIG_FILE;
    if plain {
        Ok(())
    } else {
        Err(CkptError::BadPayloadName {
            name: name.to_owned(),
        })
    }
}

fn read_verified(dir: &Path, name: &str, sum: &FileSum) -> Result<Vec<u8>, CkptError> {
    let path = dir.join(name);
    let corrupt = |problem: String| CkptError::Corrupt {
        path: path.clone(),
        problem,
    };
    let file = File::open(&path).map_err(|e| corrupt(format!("cannot open it: {e}")))?;
    let size = file.metadata().map_err(|e| corrupt(e.to_string()))?.len();
    sum.check_size(&path, size)?;
    let mut bytes = Vec::with_capacity(size as usize);
    (&file)
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(format!("cannot read it: {e}")))?;
    let crc = crc32c::crc32c(&bytes);
    if bytes.len() as u64 != sum.size || crc != sum.crc32c {
        return Err(corrupt(format!(
            "checksum {crc:08x}, {:08x} expected: its bytes changed since it was saved",
            sum.crc32c
        )));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path`, flushed to disk, and returns its size and checksum.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<FileSum> {
    let (file, sum) = write_unsynced(path, bytes)?;
    file.sync_all()?;
    Ok(sum)
}

/// Writes `bytes` to `path` (not yet flushed: the caller syncs the returned file).
fn write_unsynced(path: &Path, bytes: &[u8]) -> std::io::Result<(File, FileSum)> {
    let mut file = File::create(path)?;
    let mut crc = 0;
    for block in bytes.chunks(IO_BLOCK) {
        crc = crc32c::crc32c_append(crc, block);
        file.write_all(block)?;
    }
    let sum = FileSum {
        size: bytes.len() as u64,
        crc32c: crc,
    };
    Ok((file, sum))
}

/// Copies `from` to `path` (not yet flushed: the caller syncs the returned file).
fn copy_unsynced(from: &Path, path: &Path) -> std::io::Result<(File, FileSum)> {
    let mut reader = BufReader::with_capacity(IO_BLOCK, File::open(from)?);
    let mut file = File::create(path)?;
    let (mut crc, mut size) = (0, 0u64);
    let mut block = vec![0; IO_BLOCK];
    loop {
        let n = reader.read(&mut block)?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &block[..n]);
        file.write_all(&block[..n])?;
        size += n as u64;
    }
    Ok((file, FileSum { size, crc32c: crc }))
}

/// Flushes a directory's entries (new names, renames) to disk.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes the checkpoint's files into `dir` (which must exist and be empty), each flushed to disk.
pub(crate) fn write_files(ckpt: &Checkpoint, seq: u64, dir: &Path) -> Result<(), CkptError> {
    // Write every payload, then flush them all: the disk works on one file while the next is
    // written, as with one big file and one fsync.
    let mut payloads = BTreeMap::new();
    let mut unsynced = Vec::new();
    for (name, payload) in &ckpt.payloads {
        let path = dir.join(name);
        let (file, sum) = match payload {
            Payload::Bytes(bytes) => write_unsynced(&path, bytes).map_err(io("write", &path))?,
            Payload::File(from) => {
                copy_unsynced(from, &path).map_err(io("copy a payload file into", &path))?
            }
        };
        payloads.insert(name.clone(), sum);
        unsynced.push((file, path));
    }
    for (file, path) in unsynced {
        file.sync_all().map_err(io("flush", &path))?;
    }
    let config_path = dir.join(CONFIG_FILE);
    let config =
        write_synced(&config_path, ckpt.config.as_bytes()).map_err(io("write", &config_path))?;
    let meta = Meta {
        format: FORMAT.to_owned(),
        epoch: ckpt.epoch,
        global_step: ckpt.global_step,
        seq,
        metrics: ckpt
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), Float(*v)))
            .collect(),
        best_metric: ckpt.best_metric.map(Float),
        config,
        payloads,
    };
    let meta_path = dir.join(META_FILE);
    let text = serde_json::to_vec_pretty(&meta).expect("metadata always serialises");
    write_synced(&meta_path, &text).map_err(io("write", &meta_path))?;
    sync_dir(dir).map_err(io("flush", dir))?;
    Ok(())
}
