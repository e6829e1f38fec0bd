//! The experiment config types: the one source of truth for validation (garde), the JSON Schema
//! (schemars reads the same `garde` attributes), the key reference and the default TOML.

use std::fmt;
use std::path::{Path, PathBuf};

use garde::Validate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::provenance::Provenance;

/// The largest integer TOML can hold (a signed 64-bit one).
pub const TOML_INT_MAX: u64 = i64::MAX as u64;

/// One experiment: what to train, how, and on which data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Name of the experiment; the run directory is named after it, so at most 200 bytes, no `/`
    /// or `\`, no control characters, and no leading `.` (which would hide it).
    #[garde(length(min = 1, max = 200), custom(run_name))]
    #[schemars(example = &"moses_charrnn", regex(pattern = r"^[^./\\\u0000-\u001f][^/\\\u0000-\u001f]*$"))]
    pub name: String,
    /// Seed for every random number generator of the run (weights, shuffling, sampling).
    #[serde(default = "defaults::seed")]
    #[garde(range(max = TOML_INT_MAX))]
    pub seed: u64,
    /// Where to train: `auto` (CUDA when compiled in and usable, else CPU), `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    #[garde(skip)]
    pub device: Device,
    /// Folder that receives run directories and the results log; relative to the working directory.
    #[serde(default = "defaults::output_dir")]
    #[garde(length(min = 1))]
    pub output_dir: String,
    /// The model architecture and its size.
    #[garde(dive)]
    pub model: ModelConfig,
    /// Optimisation settings.
    #[serde(default)]
    #[garde(dive)]
    pub training: TrainingConfig,
    /// Data files and how to read them.
    #[garde(dive)]
    pub data: DataConfig,
    #[serde(skip)]
    #[schemars(skip)]
    #[garde(skip)]
    pub(crate) provenance: Provenance,
}

/// Which generative model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Vae,
    Autoregressive,
    Diffusion,
    Gnn,
}

/// The order in which a diffusion model's sampler reveals masked positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiffusionOrder {
    // (No doc comments here: they would turn the schema's plain `enum` into a `oneOf`.)
    #[default]
    Confidence,
    Random,
}

impl ModelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Vae => "vae",
            ModelType::Autoregressive => "autoregressive",
            ModelType::Diffusion => "diffusion",
            ModelType::Gnn => "gnn",
        }
    }
}

impl fmt::Display for ModelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Model architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model family: `autoregressive` (an LSTM language model), `vae` (an LSTM encoder and
    /// decoder), `gnn` (a graph neural network encoder with the `vae`'s decoder) or `diffusion`
    /// (masked diffusion with a transformer).
    #[garde(skip)]
    #[schemars(example = &"autoregressive")]
    pub model_type: ModelType,
    /// Width of the hidden layers.
    #[serde(default = "defaults::hidden_dim")]
    #[garde(range(min = 32, max = 2048))]
    pub hidden_dim: u32,
    /// `vae` and `gnn` only: size of the latent space.
    #[serde(default = "defaults::latent_dim")]
    #[garde(range(min = 8, max = 512))]
    pub latent_dim: u32,
    /// Number of stacked layers (for `gnn`: rounds of message passing, and LSTM layers).
    #[serde(default = "defaults::num_layers")]
    #[garde(range(min = 1, max = 24))]
    pub num_layers: u32,
    /// Dropout probability between layers.
    #[serde(default = "defaults::dropout")]
    #[garde(range(min = 0.0, max = 0.5))]
    pub dropout: f64,
    /// `vae` and `gnn` only: weight of the KL term in the loss once annealing is over. The KL
    /// is summed over the code, the reconstruction averaged over tokens (as in MOSES's VAE), so
    /// on a molecule of n tokens this is a beta of n times the weight: 0.0014 is about 0.05 on
    /// MOSES (36 tokens); MOSES's own 0.05, a beta of 1.8, lets the code collapse.
    #[serde(default = "defaults::kl_weight")]
    #[garde(range(min = 0.0, max = 10.0))]
    pub kl_weight: f64,
    /// `vae` and `gnn` only: optimisation steps over which the KL weight grows linearly from 0
    /// to `kl_weight`.
    #[serde(default = "defaults::kl_anneal_steps")]
    #[garde(range(max = TOML_INT_MAX))]
    pub kl_anneal_steps: u64,
    /// Diffusion only: denoising steps when sampling; each unmasks about 1/steps of the
    /// positions still masked. More steps: slower sampling, usually more valid molecules.
    #[serde(default = "defaults::diffusion_steps")]
    #[garde(range(min = 1, max = 1000))]
    pub diffusion_steps: u32,
    /// Diffusion only: which masked positions each sampling step reveals. `confidence` first
    /// draws the molecule's length from the model's end-of-molecule predictions, then reveals
    /// the positions the model is surest of (as MaskGIT): far more valid molecules. `random`
    /// reveals each with equal chance (MDLM's ancestral sampler, true to the learned distribution).
    #[serde(default)]
    #[garde(skip)]
    pub diffusion_order: DiffusionOrder,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Maximum number of passes over the training set.
    #[serde(default = "defaults::epochs")]
    #[garde(range(min = 1))]
    pub epochs: u32,
    /// Molecules per optimisation step. On the CPU a step runs in slices of 32 molecules, each
    /// on a core of its own: 64 keeps two cores busy, 128 four.
    #[serde(default = "defaults::batch_size")]
    #[garde(range(min = 1, max = 512))]
    pub batch_size: u32,
    /// Peak learning rate of AdamW, reached after the warm-up.
    #[serde(default = "defaults::learning_rate")]
    #[garde(range(min = 1e-6, max = 1.0))]
    pub learning_rate: f64,
    /// Decoupled weight decay of AdamW.
    #[serde(default = "defaults::weight_decay")]
    #[garde(range(min = 0.0, max = 0.1))]
    pub weight_decay: f64,
    /// Largest global gradient norm before clipping; 0 disables clipping.
    #[serde(default = "defaults::gradient_clip")]
    #[garde(range(min = 0.0))]
    pub gradient_clip: f64,
    /// Epochs without a better validation loss before training stops early.
    #[serde(default = "defaults::patience")]
    #[garde(range(min = 1))]
    pub patience: u32,
    /// Optimisation steps of linear learning-rate warm-up; after it the rate decays as
    /// `sqrt(warmup_steps / step)`, so a longer warm-up also decays more slowly.
    #[serde(default = "defaults::warmup_steps")]
    #[garde(range(max = TOML_INT_MAX))]
    pub warmup_steps: u64,
    /// Molecules sampled after every epoch (scored, drawn and logged) and at the end (the
    /// generation metrics of the results log).
    #[serde(default = "defaults::sample_size")]
    #[garde(range(min = 16, max = 100000))]
    pub sample_size: u32,
    /// Sampling temperature: below 1 sharpens the model's distribution, above 1 flattens it.
    #[serde(default = "defaults::temperature")]
    #[garde(range(min = 0.05, max = 5.0))]
    pub temperature: f64,
    /// Best checkpoints (by validation loss) kept besides the last one.
    #[serde(default = "defaults::keep_top_k")]
    #[garde(range(min = 1, max = 1000))]
    pub keep_top_k: u32,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            epochs: defaults::epochs(),
            batch_size: defaults::batch_size(),
            learning_rate: defaults::learning_rate(),
            weight_decay: defaults::weight_decay(),
            gradient_clip: defaults::gradient_clip(),
            patience: defaults::patience(),
            warmup_steps: defaults::warmup_steps(),
            sample_size: defaults::sample_size(),
            temperature: defaults::temperature(),
            keep_top_k: defaults::keep_top_k(),
        }
    }
}

/// Data files and how to read them. Relative paths are resolved against the folder of the
/// config file they were written in (or the working directory, for command-line overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// CSV file (with a header row) of training SMILES.
    #[garde(custom(existing_file))]
    #[schemars(example = &"../data/train.csv", extend("format" = "path"))]
    pub train_path: PathBuf,
    /// CSV file (with a header row) of validation SMILES.
    #[garde(custom(existing_file))]
    #[schemars(example = &"../data/val.csv", extend("format" = "path"))]
    pub val_path: PathBuf,
    /// Optional CSV file of test SMILES.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[garde(inner(custom(existing_file)))]
    #[schemars(example = &"../data/test.csv", extend("format" = "path"))]
    pub test_path: Option<PathBuf>,
    /// Name of the CSV column that holds the SMILES.
    #[serde(default = "defaults::smiles_column")]
    #[garde(length(min = 1))]
    pub smiles_column: String,
    /// Longest SMILES, in tokens, kept for training; longer ones are skipped and counted.
    #[serde(default = "defaults::max_length")]
    #[garde(range(min = 10, max = 500))]
    pub max_length: u32,
    /// Background threads that load and tokenise data.
    #[serde(default = "defaults::num_workers")]
    #[garde(range(min = 0, max = 16))]
    pub num_workers: u32,
}

/// The keys checked by `existing_file`.
pub(crate) const DATA_FILE_KEYS: [&str; 3] = ["data.train_path", "data.val_path", "data.test_path"];

/// The key checked by `run_name`.
pub(crate) const RUN_NAME_KEY: &str = "name";

/// A name that can be the start of a directory name as it is.
fn run_name(name: &str, _: &()) -> garde::Result {
    let problem = if name.starts_with('.') {
        "must not start with `.`"
    } else if name.contains(['/', '\\']) {
        "must not contain `/` or `\\`"
    } else if name.contains(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(garde::Error::new(format!(
        "{problem}: it names the run directory; got {name:?}"
    )))
}

fn existing_file(path: &PathBuf, _: &()) -> garde::Result {
    if path.as_os_str().is_empty() {
        return Err(garde::Error::new("must name a file, got an empty path"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(garde::Error::new(format!(
            "must be a file, but {} is a directory",
            path.display()
        ))),
        Err(err) => Err(garde::Error::new(format!(
            "cannot read {}: {}",
            path.display(),
            io_reason(&err)
        ))),
    }
}

fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

/// Where the run's tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// CUDA when compiled in and a device is usable, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// A CUDA device: `None` for the default one, `Some(n)` for `cuda:n`.
    Cuda(Option<u32>),
}

impl Device {
    pub const ACCEPTED: &'static str = "auto, cpu, cuda, cuda:N (N a device index such as 0)";
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(None) => f.write_str("cuda"),
            Device::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected one of {}, got {s:?}", Device::ACCEPTED);
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(None)),
            _ => {
                let index = s.strip_prefix("cuda:").ok_or_else(bad)?;
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                index
                    .parse()
                    .map(|n| Device::Cuda(Some(n)))
                    .map_err(|_| bad())
            }
        }
    }
}

impl Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Device {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Device".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(auto|cpu|cuda(:[0-9]+)?)$",
            "examples": ["auto", "cpu", "cuda", "cuda:0"],
        })
    }
}

impl ExperimentConfig {
    /// The file this config was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.provenance.file()
    }
}

pub(crate) mod defaults {
    pub fn seed() -> u64 {
        42
    }
    pub fn output_dir() -> String {
        "results".to_owned()
    }
    pub fn hidden_dim() -> u32 {
        128
    }
    pub fn latent_dim() -> u32 {
        64
    }
    pub fn num_layers() -> u32 {
        2
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn epochs() -> u32 {
        2
    }
    pub fn batch_size() -> u32 {
        64
    }
    pub fn learning_rate() -> f64 {
        1e-2
    }
    pub fn weight_decay() -> f64 {
        1e-5
    }
    pub fn gradient_clip() -> f64 {
        1.0
    }
    pub fn patience() -> u32 {
        5
    }
    pub fn warmup_steps() -> u64 {
        300
    }
    pub fn kl_weight() -> f64 {
        0.0014
    }
    pub fn kl_anneal_steps() -> u64 {
        500
    }
    pub fn diffusion_steps() -> u32 {
        64
    }
    pub fn sample_size() -> u32 {
        512
    }
    pub fn temperature() -> f64 {
        1.0
    }
    pub fn keep_top_k() -> u32 {
        3
    }
    pub fn smiles_column() -> String {
        "smiles".to_owned()
    }
    pub fn max_length() -> u32 {
        200
    }
    pub fn num_workers() -> u32 {
        4
    }
}
