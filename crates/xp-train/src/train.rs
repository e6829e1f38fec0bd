//! The training loop: one function, generic over the backend and the model, that ties data,
//! optimisation, logging (xp-log), checkpoints (xp-ckpt), sampling and scoring (xp-chem) and
//! the results log (xp-results) together. A custom loop rather than burn-train's `Learner`,
//! which saves only per epoch and keeps neither RNG state nor a top-k.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::cast::ToElement;
use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use xp_chem::{GenerationMetrics, GridOptions, InvalidKind, Vocabulary};
use xp_ckpt::{Checkpoint, CheckpointManager, Mode};
use xp_config::{ExperimentConfig, ModelType};
use xp_log::{Chart, ChartCategory, ExperimentLogger, HParam, Image};
use xp_results::ResultsTracker;

use crate::data::{LoadReport, Products, encode_all, load_molecules};
use crate::error::TrainError;
use crate::gnn::EncodedGraph;
use crate::models::{Batch, SmilesModel};
use crate::rng::{Rng, Stream, epoch_order, with_backend_seed};
use crate::sample::sample;

/// Payload names inside a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
pub const STATE_FILE: &str = "state.json";
/// The checkpoints folder inside a run directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Molecules per slice of a training batch on the CPU, where one step's matrix products are too
/// small to keep more than one core busy: a batch of 64 runs as two slices on up to two cores,
/// one of 128 as four. A fixed size, not the machine's core count, so that a seed gives the same
/// weights whatever the number of cores.
pub const CPU_SLICE: usize = 32;
/// The metric checkpoints are ranked by.
pub const RANK_METRIC: &str = "val_loss";
/// The metric of a run's result record that counts the epochs it trained (fewer than configured
/// when it stopped early): it ties the record to the checkpoint it evaluated.
pub const EPOCHS_TRAINED_METRIC: &str = "epochs_trained";

/// Whether `record` is the final evaluation of the run in `run_dir` as its newest checkpoint
/// stands (`last_epoch` epochs trained, `epochs` configured). A run whose epochs are done but
/// that has no such record stopped before its result was logged: `--resume` finishes it.
/// Records from before [`EPOCHS_TRAINED_METRIC`] are matched by their configured epochs.
pub fn is_final_record(
    record: &xp_results::ResultRecord,
    run_dir: &Path,
    last_epoch: u64,
    epochs: u32,
) -> bool {
    let names_run = record
        .artifacts
        .get("run_dir")
        .is_some_and(|logged| Path::new(logged).file_name() == run_dir.file_name());
    names_run
        && match record.metrics.get(EPOCHS_TRAINED_METRIC) {
            Some(&trained) => trained == last_epoch as f64,
            None => {
                record
                    .config_value("training.epochs")
                    .and_then(serde_json::Value::as_u64)
                    == Some(u64::from(epochs))
            }
        }
}

/// The output folder holding `run_dir`, whose results log has the run's record: found from the
/// run directory itself, so a run resumed from another working directory logs beside the others.
fn output_folder(run_dir: &Path) -> PathBuf {
    let run_dir = run_dir
        .canonicalize()
        .unwrap_or_else(|_| run_dir.to_path_buf());
    run_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Whether the results log beside `run_dir` has its final record (see [`is_final_record`]).
fn final_record_logged(run_dir: &Path, last_epoch: u64, epochs: u32) -> Result<bool, TrainError> {
    match ResultsTracker::open(output_folder(run_dir)).query().all() {
        Ok(found) => Ok(found
            .value
            .iter()
            .any(|entry| is_final_record(&entry.record, run_dir, last_epoch, epochs))),
        Err(xp_results::ResultsError::NoLog { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether one of `run_dir`'s hparams rows was written after `checkpoint` was saved: its
/// hparams sub-run is younger than the checkpoint's folder. Times that tie (a file system that
/// keeps whole seconds) count as before, so a row is at worst written twice, never left out.
fn hparams_written_after(run_dir: &Path, checkpoint: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(saved) = modified(checkpoint) else {
        return false;
    };
    ExperimentLogger::hparams_runs(run_dir)
        .iter()
        .any(|sub_run| modified(sub_run).is_some_and(|written| written > saved))
}

/// How to run, beyond the config.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// A run directory to continue from its last checkpoint.
    pub resume: Option<PathBuf>,
    /// Set (on Ctrl-C) to stop after the current step, save and close. Take SIGINT on a thread
    /// of your own (`sigwait` or a signalfd, as `xtask` does), not with a handler: the final
    /// evaluation's substructure search swaps SIGINT handlers (see xp-chem's crate docs).
    pub stop: Arc<AtomicBool>,
    /// Show a progress bar and per-epoch lines on stderr.
    pub progress: bool,
    /// Acts as Ctrl-C once this global step is reached (for tests and demos).
    pub stop_at_step: Option<u64>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// Every configured epoch ran.
    Completed,
    /// Validation loss stopped improving for `patience` epochs.
    EarlyStopped,
    /// Stopped on request; a last checkpoint was saved and `--resume` goes on from it.
    Interrupted,
}

/// Where time went, summed over the run (this process only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Until the last forward pass of each step ended; on the CPU, slices' forward and backward
    /// passes overlap, so this counts some backward work, and `backward` the rest.
    pub forward: Duration,
    pub backward: Duration,
    /// Global-norm clipping and the optimizer update.
    pub optimizer: Duration,
    /// Building batches on the device.
    pub batching: Duration,
    /// Our own per-step and per-epoch logging.
    pub logging: Duration,
    pub checkpointing: Duration,
    pub validation: Duration,
    /// Sampling and scoring molecules.
    pub sampling: Duration,
    /// Training steps run and target tokens seen in them.
    pub steps: u64,
    pub tokens: u64,
}

impl Timing {
    /// Time in training steps proper (forward, backward, optimizer, batching).
    pub fn step_time(&self) -> Duration {
        self.forward + self.backward + self.optimizer + self.batching
    }

    /// Training tokens per second of step time.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.step_time().as_secs_f64().max(1e-9)
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub device: String,
    pub finish: Finish,
    pub epochs_completed: u64,
    pub global_step: u64,
    pub best_val_loss: Option<f64>,
    pub best_checkpoint: Option<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    /// Generation metrics of `training.sample_size` molecules from the best checkpoint (absent
    /// when interrupted).
    pub metrics: Option<GenerationMetrics>,
    /// The results log the run was recorded in (absent when interrupted).
    pub results_file: Option<PathBuf>,
    pub data: Vec<LoadReport>,
    pub timing: Timing,
}

/// Everything besides weights and optimizer that a resumed run needs to go on exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrainState {
    /// Epochs fully done.
    epoch: u64,
    /// Batches of epoch `epoch` already done (non-zero only in an interrupted run's checkpoint).
    batch_in_epoch: u64,
    global_step: u64,
    best_val_loss: Option<f64>,
    epochs_without_improvement: u32,
    early_stopped: bool,
    /// Training examples: the data order is a function of the seed, the epoch and this.
    train_len: usize,
    pub(crate) vocabulary: Vocabulary,
}

impl TrainState {
    /// Whether training is over for a run configured for `epochs`: early stopping ended it, or
    /// every epoch ran. Only the final evaluation and record remain, if they are not logged yet.
    fn trained_out(&self, epochs: u32) -> bool {
        self.early_stopped || self.epoch >= u64::from(epochs)
    }
}

/// Linear warm-up then inverse-square-root decay: `peak * min(s / w, sqrt(w / s))` at step `s`
/// (1-based) with `w` warm-up steps; constant `peak` when `w` is 0. It does not depend on the
/// number of epochs, so a run extended with `--resume` follows the same curve as one started
/// with more epochs.
pub fn learning_rate(peak: f64, warmup_steps: u64, step: u64) -> f64 {
    let s = (step + 1) as f64;
    if warmup_steps == 0 {
        return peak;
    }
    let w = warmup_steps as f64;
    peak * (s / w).min((w / s).sqrt())
}

/// The VAE's KL weight: linear from 0 to `weight` over `anneal_steps`.
pub fn kl_weight(weight: f64, anneal_steps: u64, step: u64) -> f64 {
    if anneal_steps == 0 {
        weight
    } else {
        weight * ((step + 1) as f64 / anneal_steps as f64).min(1.0)
    }
}

/// Sum of squared gradients of every parameter, as PyTorch's `clip_grad_norm_` computes it.
struct GradNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = g.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + squares,
                None => squares,
            });
        }
    }
}

struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    scale: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}

/// Global gradient norm; when `max_norm > 0` and the norm exceeds it, every gradient is scaled
/// by `max_norm / (norm + 1e-6)` (one factor for all parameters, unlike Burn's per-tensor
/// `GradientClipping::Norm`). Returns the norm before clipping.
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut norm = GradNorm::<B> { grads, total: None };
    model.visit(&mut norm);
    let norm = norm
        .total
        .map(|t| t.into_scalar().to_f64().sqrt())
        .unwrap_or(0.0);
    if max_norm > 0.0 && norm > max_norm {
        let mut scale = GradScale {
            grads,
            scale: max_norm / (norm + 1e-6),
        };
        model.visit(&mut scale);
    }
    norm
}

/// Gives every parameter an id from its position in the module, the same in every process.
/// Burn draws random ids, and the optimizer's saved state is keyed by them: without this a
/// resumed run's AdamW moments would match no parameter and silently start from zero.
struct StableIds(u64);

impl<B: Backend> ModuleMapper<B> for StableIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (_, value, _) = param.consume();
        self.0 += 1;
        Param::initialized(ParamId::from(self.0), value)
    }
}

/// The weights as safetensors in PyTorch's conventions (linear weights `[out, in]`), so
/// `safetensors.torch.load_file` gives tensors a PyTorch module of the same shape accepts. One
/// metadata key only (`format = pt`, as PyTorch's writer): Burn's default metadata is a hash map
/// whose order changes from run to run, and the same weights should give the same bytes.
fn model_bytes<B: Backend, M: Module<B>>(model: &M) -> Result<Vec<u8>, TrainError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .clear_metadata()
        .metadata("format", "pt")
        .with_to_adapter(BurnToPyTorchAdapter);
    model
        .save_into(&mut store)
        .map_err(|e| TrainError::Other(format!("cannot serialise the weights: {e}")))?;
    store
        .get_bytes()
        .map_err(|e| TrainError::Other(format!("cannot serialise the weights: {e}")))
}

pub(crate) fn load_model_bytes<B: Backend, M: Module<B>>(
    model: &mut M,
    bytes: &[u8],
    path: &Path,
) -> Result<(), TrainError> {
    let bad = |problem: String| TrainError::BadCheckpoint {
        path: path.to_path_buf(),
        problem,
    };
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .with_from_adapter(PyTorchToBurnAdapter)
        .validate(true);
    let applied = model.load_from(&mut store).map_err(|e| {
        bad(format!(
            "the weights do not fit this model ({e}); use the config the run was trained with"
        ))
    })?;
    // Burn 0.21 loads a norm's `weight`/`bias` (PyTorch's names) into `gamma`/`beta` but still
    // lists them as unused; they were used when their Burn name was applied.
    let unused: Vec<&String> = applied
        .unused
        .iter()
        .filter(|name| {
            let burn_name = name
                .strip_suffix(".weight")
                .map(|p| format!("{p}.gamma"))
                .or_else(|| name.strip_suffix(".bias").map(|p| format!("{p}.beta")));
            !burn_name.is_some_and(|b| applied.applied.contains(&b))
        })
        .collect();
    if !applied.missing.is_empty() || !applied.errors.is_empty() || !unused.is_empty() {
        let list = |names: Vec<String>| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        return Err(bad(format!(
            "the weights do not fit this model (missing: {}; unexpected: {}; errors: {}); use the config the run was trained with",
            list(
                applied
                    .missing
                    .iter()
                    .map(|(path, _)| path.clone())
                    .collect()
            ),
            list(unused.iter().map(|s| s.to_string()).collect()),
            list(applied.errors.iter().map(|e| e.to_string()).collect()),
        )));
    }
    Ok(())
}

/// A payload of the checkpoint at `path`, or an error naming what is missing.
pub(crate) fn payload<'a>(
    ckpt: &'a Checkpoint,
    name: &str,
    path: &Path,
) -> Result<&'a [u8], TrainError> {
    ckpt.payload(name).ok_or_else(|| TrainError::BadCheckpoint {
        path: path.to_path_buf(),
        problem: format!("no {name}"),
    })
}

/// The optimizer's state (AdamW moments and step counts) as Burn's full-precision record.
fn optimizer_bytes<B: AutodiffBackend, M: AutodiffModule<B>, O: Optimizer<M, B>>(
    optim: &O,
) -> Result<Vec<u8>, TrainError> {
    BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(optim.to_record(), ())
        .map_err(|e| TrainError::Other(format!("cannot serialise the optimizer: {e}")))
}

/// `training.sample_size` molecules from `model`, with the generators seeded for `index` (an
/// epoch, or `u64::MAX` for the final sample).
fn draw_samples<B: Backend, M: SmilesModel<B>>(
    model: &M,
    vocab: &Vocabulary,
    config: &ExperimentConfig,
    index: u64,
    device: &B::Device,
) -> Vec<String> {
    let seed = Rng::derive(config.seed, Stream::Sampling, index);
    with_backend_seed::<B, _>(device, seed, || {
        sample(
            model,
            vocab,
            config.training.sample_size as usize,
            config.data.max_length as usize,
            config.training.temperature,
            &mut Rng::new(seed),
            device,
        )
    })
}

/// The data of a run, encoded with its vocabulary (and as graphs, for a model that reads them).
struct Data {
    vocab: Vocabulary,
    train: Vec<Vec<u32>>,
    /// Empty unless the model reads graphs; else one per `train` sequence.
    train_graphs: Vec<EncodedGraph>,
    /// The training set's canonical SMILES, for novelty.
    train_canonical: HashSet<String>,
    val: Vec<Vec<u32>>,
    val_graphs: Vec<EncodedGraph>,
    reference: Vec<String>,
    reports: Vec<LoadReport>,
}

fn load_data(
    config: &ExperimentConfig,
    vocab: Option<Vocabulary>,
    with_graphs: bool,
    stop: &AtomicBool,
) -> Result<Data, TrainError> {
    let d = &config.data;
    let workers = d.num_workers as usize;
    let max = d.max_length as usize;
    let load = |path: &Path, products| {
        load_molecules(path, &d.smiles_column, max, workers, products, stop)
    };
    let graphs = Products {
        graphs: with_graphs,
        canonical: false,
    };
    let mut train = load(
        &d.train_path,
        Products {
            canonical: true,
            ..graphs
        },
    )?;
    let mut val = load(&d.val_path, graphs)?;
    let vocab =
        vocab.unwrap_or_else(|| Vocabulary::build(train.smiles.iter().map(String::as_str)).0);
    let train_ids = encode_all(&vocab, &mut train);
    let val_ids = encode_all(&vocab, &mut val);
    let mut reports = vec![train.report.clone(), val.report.clone()];
    let reference = match &d.test_path {
        Some(path) => {
            let test = load(path, Products::default())?;
            reports.push(test.report.clone());
            test.smiles
        }
        None => val.smiles.clone(),
    };
    Ok(Data {
        vocab,
        train: train_ids,
        train_graphs: train.graphs,
        train_canonical: std::mem::take(&mut train.canonical).into_iter().collect(),
        val: val_ids,
        val_graphs: val.graphs,
        reference,
        reports,
    })
}

/// The batch of molecules `indices` of `sequences`, with their `graphs` unless that is empty.
fn batch_of<B: Backend>(
    sequences: &[Vec<u32>],
    graphs: &[EncodedGraph],
    indices: impl Iterator<Item = usize> + Clone,
    device: &B::Device,
) -> Batch<B> {
    let refs: Vec<&[u32]> = indices.clone().map(|i| sequences[i].as_slice()).collect();
    let batch = Batch::<B>::new(&refs, Vocabulary::PAD_ID, device);
    if graphs.is_empty() {
        batch
    } else {
        let graphs: Vec<&EncodedGraph> = indices.map(|i| &graphs[i]).collect();
        batch.with_graphs(&graphs, device)
    }
}

/// Each scoped thread's result, in the order they were spawned; a thread's panic goes on in
/// the caller, as if its work had run there.
pub(crate) fn join_in_order<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, T>>) -> Vec<T> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .collect()
}

/// What one step's forward and backward passes give.
struct Pass {
    grads: GradientsParams,
    /// The batch's loss (what is minimised) and, for a VAE, its mean KL per molecule.
    loss: f64,
    kl: Option<f64>,
    /// Real target tokens in the batch.
    tokens: usize,
    /// When the batch was on the device, and when the last forward pass ended.
    batched: Instant,
    forward_done: Instant,
}

/// The loss and gradients of the training molecules `indices`, their noise seeded from
/// `step_seed`.
///
/// With `slices` > 1 (on the CPU, see [`CPU_SLICE`]) the batch splits into that many slices,
/// each run on its own thread by its own copy of the model (its own autodiff graph). Each slice
/// draws its noise from its own seed ([`Batch::seed`](crate::models::Batch::seed)), so the
/// slices run side by side and still draw the same numbers in every run; only a model whose
/// forward pass uses the backend's process-wide generator ([`SmilesModel::BACKEND_NOISE`])
/// takes turns for its forward passes. Each slice's loss is weighted by its share of the
/// batch's tokens (and, for the KL term, of its molecules), so the summed gradients are the
/// whole batch's; they are summed in slice order, so a run stays reproducible bit for bit.
fn forward_backward<B, M>(
    model: &M,
    data: &Data,
    indices: &[usize],
    slices: usize,
    beta: f64,
    step_seed: u64,
    device: &B::Device,
) -> Pass
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SmilesModel<B>,
{
    if slices <= 1 {
        let batch = batch_of::<B>(
            &data.train,
            &data.train_graphs,
            indices.iter().copied(),
            device,
        );
        let batched = Instant::now();
        let loss = with_backend_seed::<B, _>(device, step_seed, || model.loss(&batch, beta));
        let value = loss.total.clone().into_scalar().to_f64();
        let forward_done = Instant::now();
        let grads = GradientsParams::from_grads(loss.total.backward(), model);
        return Pass {
            grads,
            loss: value,
            kl: loss.kl.map(|kl| kl.into_scalar().to_f64()),
            tokens: batch.tokens,
            batched,
            forward_done,
        };
    }
    let tokens: usize = indices.iter().map(|&i| data.train[i].len() - 1).sum();
    let molecules = indices.len();
    let slices: Vec<&[usize]> = indices.chunks(molecules.div_ceil(slices)).collect();
    let started = Instant::now();
    let parts: Vec<(M, GradientsParams, f64, Option<f64>, Instant, Instant)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = slices
                .iter()
                .enumerate()
                .map(|(k, slice)| {
                    let model = model.clone().fork(device);
                    let batch_seed = Rng::derive(step_seed, Stream::Slice, k as u64);
                    scope.spawn(move || {
                        let batch = batch_of::<B>(
                            &data.train,
                            &data.train_graphs,
                            slice.iter().copied(),
                            device,
                        )
                        .with_seed(batch_seed);
                        let batched = Instant::now();
                        let token_share = batch.tokens as f64 / tokens.max(1) as f64;
                        let molecule_share = slice.len() as f64 / molecules as f64;
                        let forward = || {
                            let loss = model.loss(&batch, beta);
                            let mut weighted = loss.reconstruction.mul_scalar(token_share);
                            if let Some(kl) = &loss.kl {
                                weighted = weighted + kl.clone().mul_scalar(beta * molecule_share);
                            }
                            (weighted, loss.kl)
                        };
                        let (weighted, kl) = if M::BACKEND_NOISE {
                            with_backend_seed::<B, _>(device, batch_seed, forward)
                        } else {
                            forward()
                        };
                        let value = weighted.clone().into_scalar().to_f64();
                        let kl = kl.map(|kl| kl.into_scalar().to_f64() * molecule_share);
                        let forward_done = Instant::now();
                        let grads = GradientsParams::from_grads(weighted.backward(), &model);
                        (model, grads, value, kl, batched, forward_done)
                    })
                })
                .collect();
            join_in_order(handles)
        });
    let mut sum = GradientsAccumulator::<M>::new();
    let (mut loss, mut kl) = (0.0, None::<f64>);
    let (mut batched, mut forward_done) = (started, started);
    for (part, grads, value, part_kl, part_batched, part_forward) in parts {
        sum.accumulate(&part, grads);
        loss += value;
        if let Some(v) = part_kl {
            *kl.get_or_insert(0.0) += v;
        }
        batched = batched.max(part_batched);
        forward_done = forward_done.max(part_forward);
    }
    Pass {
        grads: sum.grads(),
        loss,
        kl,
        tokens,
        batched: batched.min(forward_done),
        forward_done,
    }
}

/// The first `n` molecules of `sequences` (with their `graphs`, if any) in order, in batches of
/// `batch_size`, each with the rows it holds.
fn batches_in_order<'a, B: Backend>(
    sequences: &'a [Vec<u32>],
    graphs: &'a [EncodedGraph],
    n: usize,
    batch_size: usize,
    device: &'a B::Device,
) -> impl Iterator<Item = (Range<usize>, Batch<B>)> + 'a {
    (0..n).step_by(batch_size).map(move |start| {
        let rows = start..(start + batch_size).min(n);
        (rows.clone(), batch_of(sequences, graphs, rows, device))
    })
}

/// Mean loss per token (and mean KL per molecule) over `sequences`, without dropout.
fn evaluate<B: Backend, M: SmilesModel<B>>(
    model: &M,
    sequences: &[Vec<u32>],
    graphs: &[EncodedGraph],
    batch_size: usize,
    kl_beta: f64,
    device: &B::Device,
) -> (f64, Option<f64>) {
    let (mut nll, mut tokens, mut kl, mut molecules) = (0.0, 0usize, 0.0, 0usize);
    let n = sequences.len();
    for (_, batch) in batches_in_order::<B>(sequences, graphs, n, batch_size, device) {
        let loss = model.loss(&batch, kl_beta);
        nll += loss.reconstruction.into_scalar().to_f64() * batch.tokens as f64;
        tokens += batch.tokens;
        if let Some(k) = loss.kl {
            kl += k.into_scalar().to_f64() * batch.size() as f64;
            molecules += batch.size();
        }
    }
    let recon = nll / tokens.max(1) as f64;
    let kl = (molecules > 0).then(|| kl / molecules as f64);
    (recon + kl.unwrap_or(0.0) * kl_beta, kl)
}

/// For a VAE, the share of the first `n` molecules of `sequences` that decode greedily from the
/// mean of their code back to exactly their tokens (the reconstruction accuracy of the VAE
/// literature); `None` for a model without an encoder.
fn reconstruction_rate<B: Backend, M: SmilesModel<B>>(
    model: &M,
    sequences: &[Vec<u32>],
    graphs: &[EncodedGraph],
    n: usize,
    batch_size: usize,
    max_tokens: usize,
    device: &B::Device,
) -> Option<f64> {
    let n = n.min(sequences.len());
    let mut exact = 0;
    for (rows, batch) in batches_in_order::<B>(sequences, graphs, n, batch_size, device) {
        let decoded = model.reconstruct(&batch, max_tokens)?;
        // Encoded rows hold <bos>, the tokens, then <eos>.
        exact += rows
            .zip(decoded)
            .filter(|(i, tokens)| sequences[*i][1..sequences[*i].len() - 1] == tokens[..])
            .count();
    }
    Some(exact as f64 / n.max(1) as f64)
}

/// Runs (or resumes) the training described by `config` on `device` with the model `build`
/// makes for a vocabulary size.
pub(crate) fn run<B, M>(
    config: &ExperimentConfig,
    options: &TrainOptions,
    device: B::Device,
    device_name: String,
    on_cpu: bool,
    build: impl Fn(usize, &B::Device) -> M,
) -> Result<TrainOutcome, TrainError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SmilesModel<B>,
    M::InnerModule: SmilesModel<B::InnerBackend>,
{
    let t = &config.training;
    let seed = config.seed;
    let config_toml = config.to_toml_string();

    // Resume: the last checkpoint of the run directory.
    let resumed = match &options.resume {
        Some(run_dir) => {
            let ckpt_dir = run_dir.join(CHECKPOINTS_DIR);
            if !ckpt_dir.is_dir() {
                return Err(TrainError::Resume {
                    path: run_dir.clone(),
                    problem: format!(
                        "it has no {CHECKPOINTS_DIR}/ folder; pass a run directory that `cargo xtask train` created"
                    ),
                });
            }
            let manager =
                CheckpointManager::open(&ckpt_dir, t.keep_top_k as usize, RANK_METRIC, Mode::Min)
                    .map_err(|e| match e {
                    xp_ckpt::CkptError::InUse { .. } => TrainError::Resume {
                        path: run_dir.clone(),
                        problem: "it is still training in another process (its checkpoint \
                                      folder is in use); let it finish, or stop it (Ctrl-C) and \
                                      resume it then"
                            .to_owned(),
                    },
                    e => e.into(),
                })?;
            if let Some(problem) = broken_newest(&manager) {
                return Err(TrainError::Resume {
                    path: run_dir.clone(),
                    problem,
                });
            }
            let last = manager.load_last()?.ok_or_else(|| TrainError::Resume {
                path: run_dir.clone(),
                problem: "it has no checkpoint yet (the run stopped before its first save); start it again".to_owned(),
            })?;
            let path = manager.last().map(|e| manager.path(e)).unwrap_or_default();
            let state: TrainState = serde_json::from_slice(payload(&last, STATE_FILE, &path)?)
                .map_err(|e| TrainError::BadCheckpoint {
                    path: path.clone(),
                    problem: format!("{STATE_FILE}: {e}"),
                })?;
            // Checks that need no data: they fail before a large training set is read.
            let changed = changed_shape(&last.config, run_dir, config);
            if !changed.is_empty() {
                return Err(TrainError::Resume {
                    path: run_dir.clone(),
                    problem: format!(
                        "a resumed run keeps its model's shape, but {}; drop those --set, or start a new run",
                        changed.join(", ")
                    ),
                });
            }
            let mut state = state;
            // A run stopped early goes on when --set raised its patience above its count.
            if state.early_stopped
                && state.epoch < t.epochs as u64
                && t.patience > state.epochs_without_improvement
            {
                state.early_stopped = false;
            }
            // A run whose epochs are done is finished here (its final evaluation and record)
            // unless the results log already has them: the process may have stopped in between.
            if state.trained_out(t.epochs) && final_record_logged(run_dir, state.epoch, t.epochs)? {
                return Err(TrainError::Resume {
                    path: run_dir.clone(),
                    problem: if state.early_stopped {
                        format!(
                            "training stopped early after {} epochs (no better validation loss for {} epochs); raise training.patience above {} with --set to go on",
                            state.epoch,
                            state.epochs_without_improvement,
                            state.epochs_without_improvement
                        )
                    } else {
                        format!(
                            "all {} epochs are done and its result is logged; raise training.epochs with --set to train longer",
                            state.epoch
                        )
                    },
                });
            }
            Some((run_dir.clone(), manager, last, state, path))
        }
        None => None,
    };

    // A new run's output folder is made before the data is read: a bad `output_dir` fails at once,
    // not after the training set (1.58M molecules for full MOSES) has loaded.
    if resumed.is_none() {
        std::fs::create_dir_all(&config.output_dir).map_err(|error| xp_log::LogError::Io {
            action: "create the output folder",
            path: config.output_dir.clone().into(),
            error,
        })?;
    }
    let data = load_data(
        config,
        resumed.as_ref().map(|r| r.3.vocabulary.clone()),
        M::READS_GRAPHS,
        &options.stop,
    )?;
    // indicatif hides the bar by itself when stderr is not a terminal.
    let bar = if options.progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    for report in &data.reports {
        say(&bar, options.progress, report.summary());
    }
    if resumed.is_none() {
        let longest = data.train.iter().chain(&data.val).map(Vec::len).max();
        // Encoded rows hold <bos>, the tokens and <eos>; data.max_length counts all but <bos>.
        if let Some(hint) = longest.and_then(|n| row_length_hint(config, n - 1)) {
            say(&bar, options.progress, hint);
        }
        if let Some(note) = validation_overlap_note(&data.train, &data.val) {
            say(&bar, options.progress, note);
        }
    }
    let steps_per_epoch = data.train.len().div_ceil(t.batch_size as usize) as u64;
    let slices = if on_cpu {
        (t.batch_size as usize).div_ceil(CPU_SLICE)
    } else {
        1
    };

    let mut model = with_backend_seed::<B, _>(&device, Rng::derive(seed, Stream::Init, 0), || {
        build(data.vocab.len(), &device).map(&mut StableIds(0))
    });
    let mut optim = AdamWConfig::new()
        .with_weight_decay(t.weight_decay as f32)
        .with_epsilon(1e-8)
        .init::<B, M>();
    let (run_dir, mut manager, mut state, mut logger) = match resumed {
        Some((run_dir, manager, last, state, path)) => {
            if state.train_len != data.train.len() {
                return Err(TrainError::Resume {
                    path: run_dir,
                    problem: format!(
                        "the checkpoint was trained on {} molecules but {} has {} usable ones now; the data order cannot be restored",
                        state.train_len,
                        config.data.train_path.display(),
                        data.train.len()
                    ),
                });
            }
            load_model_bytes(&mut model, payload(&last, MODEL_FILE, &path)?, &path)?;
            let optim_bytes = payload(&last, OPTIMIZER_FILE, &path)?.to_vec();
            let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
            let record =
                recorder
                    .load(optim_bytes, &device)
                    .map_err(|e| TrainError::BadCheckpoint {
                        path: path.clone(),
                        problem: format!("{OPTIMIZER_FILE}: {e}"),
                    })?;
            optim = optim.load_record(record);
            let logger =
                ExperimentLogger::resume(&run_dir, state.global_step as i64, &config_toml)?;
            let line = if state.trained_out(t.epochs) {
                format!(
                    "finishing {}: its {} epochs are done, but its result was never logged; evaluating its best checkpoint",
                    run_dir.display(),
                    state.epoch
                )
            } else {
                format!(
                    "resuming {} at epoch {}, step {} (from {})",
                    run_dir.display(),
                    state.epoch + 1,
                    state.global_step,
                    path.display()
                )
            };
            say(&bar, options.progress, line);
            for warning in manager.warnings() {
                say(&bar, options.progress, format!("warning: {warning}"));
            }
            (run_dir, manager, state, logger)
        }
        None => {
            let mut logger =
                ExperimentLogger::create(&config.output_dir, &config.name, &config_toml)?;
            // Logged once, at the start: a resumed run keeps it (it sits at step 0).
            logger.log_custom_scalars(&chart_layout())?;
            let run_dir = logger.run_dir().to_path_buf();
            let manager = CheckpointManager::open(
                run_dir.join(CHECKPOINTS_DIR),
                t.keep_top_k as usize,
                RANK_METRIC,
                Mode::Min,
            )?;
            let state = TrainState {
                epoch: 0,
                batch_in_epoch: 0,
                global_step: 0,
                best_val_loss: None,
                epochs_without_improvement: 0,
                early_stopped: false,
                train_len: data.train.len(),
                vocabulary: data.vocab.clone(),
            };
            (run_dir, manager, state, logger)
        }
    };

    // From here on the run directory exists: an error names it, so the caller can say how to go
    // on (`--resume` continues from the last checkpoint, or finishes a run whose epochs are done).
    let failed_run = run_dir.clone();
    let result = (|| -> Result<TrainOutcome, TrainError> {
        let mut timing = Timing::default();
        // A VAE's reconstruction accuracy, on as many validation molecules as are sampled.
        let reconstruct_val = |model: &M::InnerModule| {
            reconstruction_rate::<B::InnerBackend, _>(
                model,
                &data.val,
                &data.val_graphs,
                t.sample_size as usize,
                t.batch_size as usize,
                config.data.max_length as usize,
                &device,
            )
        };
        let total_steps = steps_per_epoch * t.epochs as u64;
        bar.set_length(total_steps);
        bar.set_position(state.global_step);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        // A resumed run whose epochs are done only gets its final evaluation (see above).
        say(
            &bar,
            options.progress && !state.trained_out(t.epochs),
            format!(
                "training {} ({}) on {device_name}: {} molecules, {} steps per epoch; logs in {}",
                config.name,
                config.model.model_type,
                data.train.len(),
                steps_per_epoch,
                run_dir.display()
            ),
        );

        let save = |manager: &mut CheckpointManager,
                    model: &M,
                    optim_record: Vec<u8>,
                    state: &TrainState,
                    metrics: &[(&str, f64)]|
         -> Result<PathBuf, TrainError> {
            let mut ckpt = Checkpoint::new(state.epoch, state.global_step)
                .with_payload(MODEL_FILE, model_bytes(model)?)
                .with_payload(OPTIMIZER_FILE, optim_record)
                .with_payload(
                    STATE_FILE,
                    serde_json::to_vec_pretty(state).expect("state serialises"),
                )
                .with_config(&config_toml);
            for (name, value) in metrics {
                ckpt = ckpt.with_metric(name, *value);
            }
            let saved = manager.save(&ckpt)?;
            for warning in saved.warnings.iter().filter(|w| !w.contains("is NaN")) {
                say(&bar, options.progress, format!("warning: {warning}"));
            }
            Ok(saved.path)
        };

        let mut finish = if state.early_stopped {
            Finish::EarlyStopped
        } else {
            Finish::Completed
        };
        let mut last_checkpoint = manager.last().map(|e| manager.path(e));
        'epochs: while !state.trained_out(t.epochs) {
            let epoch = state.epoch;
            bar.set_prefix(format!("{}/{}", epoch + 1, t.epochs));
            let order = epoch_order(seed, epoch, data.train.len());
            let epoch_started = Instant::now();
            let (mut epoch_loss, mut epoch_batches, mut epoch_tokens) = (0.0, 0u64, 0u64);
            let batches: Vec<&[usize]> = order.chunks(t.batch_size as usize).collect();
            for (b, indices) in batches
                .iter()
                .enumerate()
                .skip(state.batch_in_epoch as usize)
            {
                if options.stop_at_step == Some(state.global_step) {
                    options.stop.store(true, Ordering::SeqCst);
                }
                if options.stop.load(Ordering::SeqCst) {
                    state.batch_in_epoch = b as u64;
                    let started = Instant::now();
                    // At an epoch's start the checkpoint of the epoch before holds this very state.
                    let saved = manager
                        .last()
                        .filter(|e| e.epoch == state.epoch && e.global_step == state.global_step)
                        .map(|e| manager.path(e));
                    let path = match saved {
                        Some(path) => path,
                        None => save(
                            &mut manager,
                            &model,
                            optimizer_bytes(&optim)?,
                            &state,
                            &[(RANK_METRIC, f64::NAN)],
                        )?,
                    };
                    timing.checkpointing += started.elapsed();
                    say(
                        &bar,
                        options.progress,
                        format!(
                            "stopped at step {} (epoch {}, batch {b}); saved {}; go on with --resume {}",
                            state.global_step,
                            epoch + 1,
                            path.display(),
                            run_dir.display()
                        ),
                    );
                    last_checkpoint = Some(path);
                    finish = Finish::Interrupted;
                    break 'epochs;
                }
                let step = state.global_step;
                let started = Instant::now();
                let beta = kl_weight(config.model.kl_weight, config.model.kl_anneal_steps, step);
                let pass = forward_backward::<B, M>(
                    &model,
                    &data,
                    indices,
                    slices,
                    beta,
                    Rng::derive(seed, Stream::Step, step),
                    &device,
                );
                let loss_value = pass.loss;
                if !loss_value.is_finite() {
                    return Err(TrainError::Diverged {
                        step,
                        value: loss_value,
                    });
                }
                let mut grads = pass.grads;
                let (after_batch, after_forward) = (pass.batched, pass.forward_done);
                let after_backward = Instant::now();
                let grad_norm = clip_global_norm::<B, M>(&model, &mut grads, t.gradient_clip);
                let lr = learning_rate(t.learning_rate, t.warmup_steps, step);
                model = optim.step(lr, model, grads);
                let after_optim = Instant::now();
                timing.batching += after_batch - started;
                timing.forward += after_forward - after_batch;
                timing.backward += after_backward - after_forward;
                timing.optimizer += after_optim - after_backward;
                timing.steps += 1;
                timing.tokens += pass.tokens as u64;

                logger.set_step(step as i64);
                let mut scalars = vec![
                    ("train/loss", loss_value),
                    ("train/learning_rate", lr),
                    ("train/grad_norm", grad_norm),
                ];
                if let Some(kl) = pass.kl {
                    scalars.push(("train/kl", kl));
                    scalars.push(("train/kl_weight", beta));
                }
                logger.log_scalars(&scalars)?;
                state.global_step += 1;
                epoch_loss += loss_value;
                epoch_batches += 1;
                epoch_tokens += pass.tokens as u64;
                bar.inc(1);
                bar.set_message(format!(
                    "loss {loss_value:.3} {:.0} tok/s",
                    epoch_tokens as f64 / epoch_started.elapsed().as_secs_f64()
                ));
                timing.logging += after_optim.elapsed();
            }
            let train_seconds = epoch_started.elapsed().as_secs_f64();
            let train_loss = epoch_loss / epoch_batches.max(1) as f64;

            // Validation, samples, checkpoint.
            let started = Instant::now();
            let valid = model.valid();
            let beta = kl_weight(
                config.model.kl_weight,
                config.model.kl_anneal_steps,
                state.global_step,
            );
            let val_seed = Rng::derive(seed, Stream::Validation, epoch);
            let (val_loss, val_kl) =
                with_backend_seed::<B::InnerBackend, _>(&device, val_seed, || {
                    evaluate::<B::InnerBackend, _>(
                        &valid,
                        &data.val,
                        &data.val_graphs,
                        t.batch_size as usize,
                        beta,
                        &device,
                    )
                });
            let reconstruction = reconstruct_val(&valid);
            timing.validation += started.elapsed();

            let started = Instant::now();
            let sampled = draw_samples(&valid, &data.vocab, config, epoch, &device);
            let refs: Vec<&str> = sampled.iter().map(String::as_str).collect();
            let scores = xp_chem::quick_metrics(&refs, Some(&data.train_canonical));
            timing.sampling += started.elapsed();

            let started = Instant::now();
            // The epoch's summaries carry the step of its last update, so that everything logged at a
            // step before a checkpoint's `global_step` belongs to that checkpoint: a run resumed from
            // it drops the rest (see ExperimentLogger::resume). An epoch runs at least one batch.
            let step = state.global_step as i64 - 1;
            logger.set_step(step);
            let mut scalars = vec![
                ("val/loss", val_loss),
                ("train/epoch_loss", train_loss),
                (
                    "perf/tokens_per_second",
                    epoch_tokens as f64 / train_seconds.max(1e-9),
                ),
                ("samples/validity", scores.validity),
            ];
            if let Some(kl) = val_kl {
                scalars.push(("val/kl", kl));
            }
            if let Some(r) = reconstruction {
                scalars.push(("val/reconstruction", r));
            }
            if let Some(u) = scores.unique_at_1k {
                scalars.push(("samples/uniqueness", u));
            }
            if let Some(n) = scores.novelty {
                scalars.push(("samples/novelty", n));
            }
            let invalid_tags: Vec<(String, f64)> = invalid_shares(&scores)
                .map(|(key, share)| (format!("samples/invalid/{key}"), share))
                .collect();
            scalars.extend(invalid_tags.iter().map(|(tag, v)| (tag.as_str(), *v)));
            logger.log_scalars(&scalars)?;
            log_weights(&mut logger, &valid)?;
            log_samples(&mut logger, &sampled)?;
            logger.flush()?;
            timing.logging += started.elapsed();

            let improved = state.best_val_loss.is_none_or(|best| val_loss < best);
            if improved {
                state.best_val_loss = Some(val_loss);
                state.epochs_without_improvement = 0;
            } else {
                state.epochs_without_improvement += 1;
            }
            state.epoch += 1;
            state.batch_in_epoch = 0;
            if state.epochs_without_improvement >= t.patience {
                state.early_stopped = true;
            }
            let started = Instant::now();
            let path = save(
                &mut manager,
                &model,
                optimizer_bytes(&optim)?,
                &state,
                &[
                    (RANK_METRIC, val_loss),
                    ("train_loss", train_loss),
                    ("validity", scores.validity),
                ],
            )?;
            last_checkpoint = Some(path);
            timing.checkpointing += started.elapsed();
            say(
                &bar,
                options.progress,
                format!(
                    "epoch {}/{}: train loss {:.4}, val loss {val_loss:.4}, {}{}validity {:.1}%{}, {:.0} tokens/s{}",
                    epoch + 1,
                    t.epochs,
                    train_loss,
                    // How much a VAE's code says about its molecule: near 0, the decoder ignores it.
                    val_kl.map_or(String::new(), |kl| format!("code {kl:.1} nats, ")),
                    reconstruction.map_or(String::new(), |r| format!(
                        "reconstructed {:.1}%, ",
                        r * 100.0
                    )),
                    scores.validity * 100.0,
                    // The commonest mistake, as a share of the samples: what to look at next.
                    scores.invalid.most_frequent().first().map_or(
                        String::new(),
                        |(kind, n)| format!(
                            " (commonest mistake: {}, {:.0}%)",
                            kind.label(),
                            100.0 * *n as f64 / scores.count.max(1) as f64
                        )
                    ),
                    epoch_tokens as f64 / train_seconds.max(1e-9),
                    if improved { " (best)" } else { "" }
                ),
            );
            if state.early_stopped {
                say(
                    &bar,
                    options.progress,
                    format!(
                        "stopping early: no better validation loss for {} epochs",
                        t.patience
                    ),
                );
                finish = Finish::EarlyStopped;
                break;
            }
        }
        bar.finish_and_clear();

        let best_checkpoint = manager.best().map(|e| manager.path(e));
        let mut outcome = TrainOutcome {
            run_dir: run_dir.clone(),
            device: device_name,
            finish,
            epochs_completed: state.epoch,
            global_step: state.global_step,
            best_val_loss: state.best_val_loss,
            best_checkpoint: best_checkpoint.clone(),
            last_checkpoint,
            metrics: None,
            results_file: None,
            data: data.reports.clone(),
            timing,
        };
        if finish == Finish::Interrupted {
            logger.close()?;
            return Ok(outcome);
        }

        // Final metrics from the best checkpoint, hparams, and the results record.
        let mut best = model.valid();
        if let Some(path) = &best_checkpoint {
            let ckpt = Checkpoint::load(path)?;
            load_model_bytes(&mut best, payload(&ckpt, MODEL_FILE, path)?, path)?;
        }
        let sampled = draw_samples(&best, &data.vocab, config, u64::MAX, &device);
        let refs: Vec<&str> = sampled.iter().map(String::as_str).collect();
        let reference: Vec<&str> = data.reference.iter().map(String::as_str).collect();
        let reference = xp_chem::ReferenceSet::new(&reference);
        let metrics =
            xp_chem::generation_metrics(&refs, Some(&data.train_canonical), Some(&reference));
        let mut metric_pairs = metric_pairs(state.best_val_loss, &metrics);
        metric_pairs.push((EPOCHS_TRAINED_METRIC.to_owned(), state.epoch as f64));
        if let Some(r) = reconstruct_val(&best) {
            metric_pairs.push(("reconstruction".to_owned(), r));
        }
        let hparams = flatten_config(config);
        let metric_refs: Vec<(&str, f64)> =
            metric_pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // As torch's add_hparams: the metrics as scalars tagged `hparam/NAME` in the hparams sub-run.
        let hparam_tags: Vec<(String, f64)> = metric_pairs
            .iter()
            .map(|(k, v)| (format!("hparam/{k}"), *v))
            .collect();
        let hparam_refs: Vec<(&str, f64)> =
            hparam_tags.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // A resume that only finishes the run, after a process that stopped between its hparams
        // row and its record, would write that same row (same checkpoint, same samples) again.
        let row_written = outcome.timing.steps == 0
            && outcome
                .last_checkpoint
                .as_deref()
                .is_some_and(|saved| hparams_written_after(&run_dir, saved));
        if !row_written {
            logger.log_hparams(&hparams, &hparam_refs)?;
        }
        let samples_path = run_dir.join("samples.txt");
        std::fs::write(&samples_path, sampled.join("\n") + "\n").map_err(|e| {
            TrainError::Other(format!("cannot write {}: {e}", samples_path.display()))
        })?;
        logger.close()?;

        let tracker = ResultsTracker::open(match &options.resume {
            Some(_) => output_folder(&run_dir),
            None => config.output_dir.clone().into(),
        });
        let config_json = serde_json::to_value(config).expect("configs serialise");
        let best_str = best_checkpoint
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let run_str = run_dir.display().to_string();
        let samples_str = samples_path.display().to_string();
        tracker.log_result(
            &config.name,
            &config_json,
            metric_refs.iter().copied(),
            [
                ("best_checkpoint", best_str.as_str()),
                ("run_dir", run_str.as_str()),
                ("samples", samples_str.as_str()),
            ],
        )?;
        outcome.metrics = Some(metrics);
        outcome.results_file = Some(tracker.path().to_path_buf());
        Ok(outcome)
    })();
    result.map_err(|error| TrainError::InRun {
        run_dir: failed_run,
        error: Box::new(error),
    })
}

/// For a diffusion model, whose every position costs compute whether a molecule fills it or not:
/// a note when `data.max_length` is far above what the data needs (`needed`: its longest
/// molecule's tokens and `<eos>`), naming the setting that keeps every molecule.
fn row_length_hint(config: &ExperimentConfig, needed: usize) -> Option<String> {
    let max = config.data.max_length as usize;
    (config.model.model_type == ModelType::Diffusion && needed * 5 / 4 < max).then(|| {
        format!(
            "note: a diffusion model computes over every position of its rows (data.max_length = \
             {max}), but the longest molecule here needs {needed}; --set data.max_length={needed} \
             keeps every one and runs faster"
        )
    })
}

/// A note when validation molecules also appear in the training data (the same tokens, so the
/// same SMILES: a val_path that repeats train_path, or overlapping splits). Their loss then
/// rewards memorising, and so do best checkpoints and early stopping, which follow it.
fn validation_overlap_note(train: &[Vec<u32>], val: &[Vec<u32>]) -> Option<String> {
    let seen: HashSet<&[u32]> = train.iter().map(Vec::as_slice).collect();
    let shared = val.iter().filter(|v| seen.contains(v.as_slice())).count();
    (shared > 0).then(|| {
        format!(
            "note: {shared} of {} validation molecules ({:.1}%) are also in the training data \
             (the same SMILES); their validation loss rewards memorising, and best checkpoints \
             and early stopping follow it: give data.val_path molecules held out from training",
            val.len(),
            100.0 * shared as f64 / val.len() as f64
        )
    })
}

/// Why a run cannot go on when a checkpoint newer than the last usable one fails verification:
/// resuming from the older one would repeat its epochs, then fail to save over the broken one.
fn broken_newest(manager: &CheckpointManager) -> Option<String> {
    let broken = manager.unverified_since_last();
    let newest = broken.last()?;
    let what = broken
        .iter()
        .map(|u| u.problem.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some(match manager.last() {
        Some(last) if broken.len() == 1 => format!(
            "its newest checkpoint fails verification: {what}; restore its files from a backup, or move {} out of {} to go on from {} (epoch {})",
            newest.dir,
            manager.dir().display(),
            last.dir,
            last.epoch
        ),
        Some(last) => format!(
            "its newest checkpoints fail verification: {what}; restore their files from a backup, or move them out of {} to go on from {} (epoch {})",
            manager.dir().display(),
            last.dir,
            last.epoch
        ),
        None => format!(
            "no checkpoint of it can be used: {what}; restore the files from a backup, or start the run again"
        ),
    })
}

/// A line above the progress bar, or on stderr when there is no bar (not a terminal).
fn say(bar: &ProgressBar, on: bool, line: impl AsRef<str>) {
    if !on {
    } else if bar.is_hidden() {
        eprintln!("{}", line.as_ref());
    } else {
        bar.println(line);
    }
}

/// The model settings that give the weights their shapes, as (key, value).
fn shape_settings(config: &ExperimentConfig) -> Vec<(&'static str, String)> {
    let m = &config.model;
    let mut settings = vec![
        ("model.model_type", m.model_type.as_str().to_owned()),
        ("model.hidden_dim", m.hidden_dim.to_string()),
        ("model.num_layers", m.num_layers.to_string()),
    ];
    match m.model_type {
        ModelType::Vae | ModelType::Gnn => {
            settings.push(("model.latent_dim", m.latent_dim.to_string()))
        }
        // Its position embeddings span the longest molecule.
        ModelType::Diffusion => {
            settings.push(("data.max_length", config.data.max_length.to_string()))
        }
        _ => {}
    }
    settings
}

/// How `config` changes the shape settings of the run whose checkpoint holds `saved_toml`, one
/// phrase per setting; empty when nothing does, or when the saved config no longer loads (loading
/// the weights then says what does not fit). Its data may have moved: that is not checked.
fn changed_shape(saved_toml: &str, run_dir: &Path, config: &ExperimentConfig) -> Vec<String> {
    let Ok(saved) = xp_config::from_saved_toml(saved_toml, "the checkpoint's config", run_dir)
    else {
        return Vec::new();
    };
    let (was, now) = (shape_settings(&saved), shape_settings(config));
    // A change of model_type is reported as such; latent_dim is compared only between VAEs (of
    // either kind).
    now.iter()
        .filter_map(|(key, value)| {
            let before = was.iter().find(|(k, _)| k == key).map(|(_, v)| v)?;
            (before != value).then(|| format!("{key} is {value} here and {before} in the run"))
        })
        .collect()
}

/// The numbers of a finished run, as named in hparams and in the results log.
fn metric_pairs(best_val_loss: Option<f64>, m: &GenerationMetrics) -> Vec<(String, f64)> {
    let mut out = vec![("validity".to_owned(), m.validity)];
    if let Some(v) = best_val_loss {
        out.insert(0, ("best_val_loss".to_owned(), v));
    }
    for entry in m.entries() {
        if let Some(v) = entry.value {
            out.push((entry.key.to_owned(), v));
        }
    }
    // As `samples/invalid/*`, so runs can be compared and queried by their mistakes.
    out.extend(invalid_shares(m).map(|(key, share)| (format!("invalid_{key}"), share)));
    out
}

/// Why the invalid samples were invalid: each kind of mistake's share of all samples (with
/// validity, they sum to 1), by the kind's key.
fn invalid_shares(m: &GenerationMetrics) -> impl Iterator<Item = (&'static str, f64)> + '_ {
    InvalidKind::ALL.into_iter().map(|kind| {
        (
            kind.key(),
            m.invalid.get(kind) as f64 / m.count.max(1) as f64,
        )
    })
}

/// The config as dotted keys, for TensorBoard's HParams tab.
fn flatten_config(config: &ExperimentConfig) -> Vec<(String, HParam)> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, HParam)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Number(n) => out.push((
                prefix.to_owned(),
                HParam::Number(n.as_f64().unwrap_or(f64::NAN)),
            )),
            serde_json::Value::Bool(b) => out.push((prefix.to_owned(), HParam::Bool(*b))),
            serde_json::Value::String(s) => out.push((prefix.to_owned(), HParam::Text(s.clone()))),
            serde_json::Value::Null => {}
            serde_json::Value::Array(_) => {
                out.push((prefix.to_owned(), HParam::Text(value.to_string())))
            }
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(config).expect("configs serialise"),
        &mut out,
    );
    out
}

/// One histogram per parameter tensor, named as in the safetensors file (PyTorch's names).
fn log_weights<B: Backend, M: Module<B>>(
    logger: &mut ExperimentLogger,
    model: &M,
) -> Result<(), TrainError> {
    for snapshot in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false) {
        let name = snapshot.full_path();
        let data = snapshot
            .to_data()
            .map_err(|e| TrainError::Other(format!("cannot read weights {name}: {e:?}")))?;
        let values: Vec<f32> = data
            .convert::<f32>()
            .into_vec()
            .map_err(|e| TrainError::Other(format!("cannot read weights {name}: {e:?}")))?;
        logger.log_histogram(&format!("weights/{name}"), &values)?;
    }
    Ok(())
}

/// TensorBoard's Custom Scalars tab for a run: what is worth seeing in one chart.
fn chart_layout() -> Vec<ChartCategory> {
    let multiline = |title: &str, tags: &[&str]| Chart::Multiline {
        title: title.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    };
    vec![
        ChartCategory {
            title: "loss".to_owned(),
            charts: vec![multiline(
                "training and validation loss",
                &["train/loss$", "val/loss$"],
            )],
        },
        ChartCategory {
            title: "samples".to_owned(),
            charts: vec![
                multiline(
                    "validity, uniqueness and novelty",
                    &[
                        "samples/validity$",
                        "samples/uniqueness$",
                        "samples/novelty$",
                    ],
                ),
                multiline(
                    "invalid samples by kind of mistake",
                    &["samples/invalid/.*"],
                ),
            ],
        },
    ]
}

/// The samples' grid image (the first 16, invalid skipped, as the seed's `log_molecules`) and
/// their SMILES as text.
fn log_samples(logger: &mut ExperimentLogger, sampled: &[String]) -> Result<(), TrainError> {
    let refs: Vec<&str> = sampled.iter().map(String::as_str).collect();
    if let Ok(grid) = xp_chem::grid_image(&refs, Some(&refs), &GridOptions::default()) {
        logger.log_image(
            "samples/molecules",
            &Image {
                height: grid.height,
                width: grid.width,
                channels: 4,
                data: grid.rgba,
            },
        )?;
    }
    let listed: Vec<String> = sampled
        .iter()
        .take(64)
        .map(|s| {
            let mark = match xp_chem::Molecule::parse(s) {
                Ok(_) => String::new(),
                Err(e) => format!(
                    " (invalid: {})",
                    e.invalid_kind().unwrap_or(InvalidKind::Other).label()
                ),
            };
            format!("- `{}`{mark}", if s.is_empty() { "(empty)" } else { s })
        })
        .collect();
    logger.log_text("samples/smiles", &listed.join("\n"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diffusion_run_far_longer_than_its_data_gets_a_hint() {
        let config = |model: &str| {
            let text = format!(
                "name = \"x\"\n[model]\nmodel_type = \"{model}\"\n\
                 [data]\ntrain_path = \"t.csv\"\nval_path = \"v.csv\"\nmax_length = 200\n"
            );
            xp_config::from_saved_toml(&text, "x.toml", Path::new(".")).unwrap()
        };
        let hint = row_length_hint(&config("diffusion"), 58).unwrap();
        assert!(hint.contains("data.max_length = 200"), "{hint}");
        assert!(hint.contains("--set data.max_length=58"), "{hint}");
        // Close enough, or a model whose cost follows each molecule's own length: no note.
        assert_eq!(row_length_hint(&config("diffusion"), 170), None);
        assert_eq!(row_length_hint(&config("autoregressive"), 58), None);
    }

    #[test]
    fn validation_molecules_seen_in_training_get_a_note() {
        let train = vec![vec![1, 5, 6, 2], vec![1, 5, 2], vec![1, 7, 2]];
        let note = validation_overlap_note(&train, &[vec![1, 5, 2], vec![1, 5, 5, 2]]).unwrap();
        assert!(
            note.starts_with("note: 1 of 2 validation molecules (50.0%)"),
            "{note}"
        );
        assert!(note.contains("data.val_path"), "{note}");
        // The same file for both: every one.
        let note = validation_overlap_note(&train, &train).unwrap();
        assert!(
            note.starts_with("note: 3 of 3 validation molecules (100.0%)"),
            "{note}"
        );
        // A prefix is another molecule; held-out data gets no note.
        assert_eq!(
            validation_overlap_note(&train, &[vec![1, 5], vec![1, 6, 5, 2]]),
            None
        );
        assert_eq!(validation_overlap_note(&train, &[]), None);
    }

    #[test]
    fn learning_rate_warms_up_then_decays_and_ignores_epochs() {
        assert_eq!(learning_rate(1e-3, 0, 5), 1e-3);
        assert!((learning_rate(1e-3, 100, 0) - 1e-5).abs() < 1e-12);
        assert!((learning_rate(1e-3, 100, 99) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(1e-3, 100, 399) - 0.5e-3).abs() < 1e-12);
        assert!(learning_rate(1e-3, 100, 1000) < learning_rate(1e-3, 100, 500));
    }

    /// Every gradient of a model in `grads`, flattened in parameter order.
    struct Flatten<'a> {
        grads: &'a GradientsParams,
        values: Vec<f32>,
    }

    impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let grad = self.grads.get::<B::InnerBackend, D>(param.id).unwrap();
            self.values
                .extend(grad.into_data().to_vec::<f32>().unwrap());
        }
    }

    #[test]
    fn a_batch_in_slices_has_the_whole_batch_gradient() {
        use crate::models::{CharRnn, SmilesVae};
        use burn::backend::{Autodiff, Flex};
        type B = Autodiff<Flex>;
        let device = Default::default();
        // Molecules of unequal lengths, so the slices hold unequal shares of the tokens.
        let smiles = [
            "CCO",
            "c1ccccc1",
            "CC(=O)Nc1ccc(O)cc1",
            "C",
            "CCN(CC)CC",
            "O=C=O",
            "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
        ];
        let (vocab, _) = Vocabulary::build(smiles);
        let data = Data {
            train: smiles
                .iter()
                .map(|s| vocab.encode(s).unwrap().ids)
                .collect(),
            vocab,
            train_graphs: Vec::new(),
            train_canonical: HashSet::new(),
            val: Vec::new(),
            val_graphs: Vec::new(),
            reference: Vec::new(),
            reports: Vec::new(),
        };
        let indices = [6, 0, 3, 2, 5, 1, 4];
        let flat = |model: &CharRnn<B>, pass: &Pass| {
            let mut flatten = Flatten {
                grads: &pass.grads,
                values: Vec::new(),
            };
            model.visit(&mut flatten);
            flatten.values
        };
        // Without dropout the slices draw no noise: one slice, two or three give the same loss
        // and gradients, up to rounding. (Models are built as `run` builds them: Burn's lazily
        // initialised parameters must be materialised before the slices copy them.)
        let model = CharRnn::<B>::new(data.vocab.len(), 32, 2, 0.0, &device).map(&mut StableIds(0));
        let whole = forward_backward::<B, _>(&model, &data, &indices, 1, 0.0, 9, &device);
        let whole_grads = flat(&model, &whole);
        assert_eq!(
            whole.tokens,
            indices
                .iter()
                .map(|&i| data.train[i].len() - 1)
                .sum::<usize>()
        );
        for slices in [2, 3] {
            let sliced = forward_backward::<B, _>(&model, &data, &indices, slices, 0.0, 9, &device);
            assert_eq!(sliced.tokens, whole.tokens);
            assert!(
                (sliced.loss - whole.loss).abs() < 1e-5,
                "{} vs {}",
                sliced.loss,
                whole.loss
            );
            let grads = flat(&model, &sliced);
            assert_eq!(grads.len(), whole_grads.len());
            let scale = whole_grads.iter().fold(0f32, |m, g| m.max(g.abs()));
            for (a, b) in grads.iter().zip(&whole_grads) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "{a} vs {b} ({slices} slices)"
                );
            }
            // The same slices give the same bits every time.
            let again = forward_backward::<B, _>(&model, &data, &indices, slices, 0.0, 9, &device);
            assert!(flat(&model, &again) == grads);
        }
        // With dropout each slice draws its own masks from the step's seed: repeatable, and
        // another seed draws others.
        let model = CharRnn::<B>::new(data.vocab.len(), 32, 2, 0.3, &device).map(&mut StableIds(0));
        let pass = |seed| forward_backward::<B, _>(&model, &data, &indices, 3, 0.0, seed, &device);
        assert!(flat(&model, &pass(1)) == flat(&model, &pass(1)));
        assert!(flat(&model, &pass(1)) != flat(&model, &pass(2)));

        // A VAE's KL term is a mean per molecule, not per token: the slices' KL adds up to the
        // whole batch's (it does not depend on the reparameterisation noise).
        let vae =
            SmilesVae::<B>::new(data.vocab.len(), 32, 8, 1, 0.0, &device).map(&mut StableIds(0));
        let whole = forward_backward::<B, _>(&vae, &data, &indices, 1, 0.5, 9, &device);
        let sliced = forward_backward::<B, _>(&vae, &data, &indices, 3, 0.5, 9, &device);
        let (a, b) = (whole.kl.unwrap(), sliced.kl.unwrap());
        assert!(a > 0.0 && (a - b).abs() < 1e-5 * a, "{a} vs {b}");
    }

    #[test]
    fn clipping_scales_every_gradient_by_one_global_factor() {
        use burn::backend::{Autodiff, Flex};
        use burn::nn::{Linear, LinearConfig};
        type B = Autodiff<Flex>;
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(3, 2).init(&device);
        let x = Tensor::<B, 2>::from_floats([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], &device);
        let grads_of = |model: &Linear<B>| {
            let loss = model.forward(x.clone()).powi_scalar(2).sum();
            GradientsParams::from_grads(loss.backward(), model)
        };
        let flat = |g: &GradientsParams, id| -> Vec<f32> {
            let t: Option<Tensor<Flex, 2>> = g.get(id);
            match t {
                Some(t) => t.into_data().to_vec().unwrap(),
                None => g.get::<Flex, 1>(id).unwrap().into_data().to_vec().unwrap(),
            }
        };
        let weight_id = model.weight.id;
        let bias_id = model.bias.as_ref().unwrap().id;
        let before = grads_of(&model);
        let (w0, b0) = (flat(&before, weight_id), flat(&before, bias_id));
        let expected: f64 = w0
            .iter()
            .chain(&b0)
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        // Below the limit: nothing changes.
        let mut grads = grads_of(&model);
        let norm = clip_global_norm::<B, _>(&model, &mut grads, expected * 2.0);
        assert!((norm - expected).abs() < 1e-4 * expected);
        assert_eq!(flat(&grads, weight_id), w0);
        // Above it: both tensors scaled by the same factor, to the limit.
        let mut grads = grads_of(&model);
        clip_global_norm::<B, _>(&model, &mut grads, expected / 4.0);
        let factor = (expected / 4.0) / (expected + 1e-6);
        for (after, before) in flat(&grads, weight_id)
            .iter()
            .zip(&w0)
            .chain(flat(&grads, bias_id).iter().zip(&b0))
        {
            assert!(
                (*after as f64 - *before as f64 * factor).abs() < 1e-5,
                "{after} vs {before}"
            );
        }
        // 0 disables clipping.
        let mut grads = grads_of(&model);
        clip_global_norm::<B, _>(&model, &mut grads, 0.0);
        assert_eq!(flat(&grads, bias_id), b0);
    }

    #[test]
    fn kl_weight_anneals_linearly() {
        assert_eq!(kl_weight(0.5, 0, 0), 0.5);
        assert!((kl_weight(0.5, 100, 49) - 0.25).abs() < 1e-12);
        assert_eq!(kl_weight(0.5, 100, 1000), 0.5);
    }
}
