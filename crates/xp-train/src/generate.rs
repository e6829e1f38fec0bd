//! Drawing molecules from a saved run: the model is rebuilt from one checkpoint's config, weights
//! and vocabulary alone, so neither the training data nor the optimizer state is needed, and a
//! run still training can be sampled (its checkpoints are read without taking their lock).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use xp_ckpt::{Checkpoint, CheckpointManager, MANIFEST_FILE, META_FILE, Mode};
use xp_config::{Device, DiffusionOrder, ExperimentConfig, ModelType};

use crate::device::{Engine, select};
use crate::diffusion::{Sampling, SmilesDiffusion};
use crate::error::TrainError;
use crate::gnn::GraphVae;
use crate::models::{CharRnn, SmilesModel, SmilesVae};
use crate::rng::{Rng, Stream, with_backend_seed};
use crate::sample::sample;
use crate::train::{
    CHECKPOINTS_DIR, MODEL_FILE, RANK_METRIC, STATE_FILE, TrainState, join_in_order,
    load_model_bytes, payload,
};

/// Which of a run's checkpoints to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pick {
    /// The lowest validation loss, as the run's final metrics use.
    #[default]
    Best,
    /// The most recently saved.
    Last,
}

/// What to draw. `None` takes the run's own setting from its saved config.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// How many SMILES; the run's `training.sample_size` by default.
    pub count: Option<usize>,
    /// The run's `training.temperature` by default.
    pub temperature: Option<f64>,
    /// The run's `seed` by default.
    pub seed: Option<u64>,
    /// Which checkpoint of a run directory; the best by default. Refused when the path is one
    /// checkpoint, which leaves nothing to pick.
    pub pick: Option<Pick>,
    /// Where to run the model: `auto` (the default) takes CUDA when built in and usable.
    pub device: Device,
    /// Diffusion models only: denoising steps (the run's `model.diffusion_steps` by default).
    pub diffusion_steps: Option<u32>,
    /// Diffusion models only: which positions each step reveals (the run's
    /// `model.diffusion_order` by default).
    pub diffusion_order: Option<DiffusionOrder>,
}

/// Molecules drawn by [`generate`], and where from.
#[derive(Debug, Clone)]
pub struct Generated {
    /// One SMILES per draw, in order; invalid ones included, as the model wrote them.
    pub smiles: Vec<String>,
    /// The checkpoint directory the weights came from.
    pub checkpoint: PathBuf,
    pub epoch: u64,
    pub global_step: u64,
    /// The checkpoint's validation loss.
    pub val_loss: Option<f64>,
    /// The device it ran on, and why that one.
    pub device: String,
    /// The run's config, as the checkpoint saved it.
    pub config: ExperimentConfig,
    /// What the run's checkpoint folder had to work around, such as a checkpoint passed over
    /// because it fails verification: the one drawn from may not be the one asked for.
    pub warnings: Vec<String>,
}

/// SMILES are drawn this many at a time (or the run's `training.sample_size`, if larger), each
/// batch with a seed of its own, so memory stays bounded for any count. Batch `k` uses the
/// sampling seed of index `u64::MAX - k`; batch 0 is thus the draw a run makes for its final
/// metrics, and drawing `training.sample_size` molecules from the best checkpoint with the run's
/// seed and temperature on the same backend repeats the run's `samples.txt`.
pub const SAMPLE_BATCH: usize = 1024;

/// Draws SMILES from `path`: a run directory (its best checkpoint, or `options.pick`), its
/// `checkpoints/` folder, or one checkpoint directory. The checkpoint is verified (sizes and
/// checksums) before use. `progress` is called with the number drawn so far as each batch
/// finishes (batches are drawn side by side on the CPU, one per core).
pub fn generate(
    path: &Path,
    options: &GenerateOptions,
    mut progress: impl FnMut(usize),
) -> Result<Generated, TrainError> {
    let (checkpoint, warnings) = find_checkpoint(path, options.pick)?;
    let ckpt = Checkpoint::load(&checkpoint)?;
    let config = xp_config::from_saved_toml(
        &ckpt.config,
        &checkpoint.join(xp_ckpt::CONFIG_FILE).display().to_string(),
        &checkpoint,
    )?;
    let state: TrainState = serde_json::from_slice(payload(&ckpt, STATE_FILE, &checkpoint)?)
        .map_err(|e| TrainError::BadCheckpoint {
            path: checkpoint.clone(),
            problem: format!("{STATE_FILE}: {e}"),
        })?;
    let weights = payload(&ckpt, MODEL_FILE, &checkpoint)?;
    let count = options
        .count
        .unwrap_or(config.training.sample_size as usize);
    let temperature = options.temperature.unwrap_or(config.training.temperature);
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(TrainError::Other(format!(
            "the temperature must be a positive number, got {temperature}"
        )));
    }
    if config.model.model_type != ModelType::Diffusion {
        let asked = [
            ("diffusion steps apply", options.diffusion_steps.is_some()),
            (
                "a diffusion order applies",
                options.diffusion_order.is_some(),
            ),
        ];
        if let Some((what, _)) = asked.iter().find(|(_, given)| *given) {
            return Err(TrainError::Other(format!(
                "{what} to diffusion models only; this run's model is {}",
                config.model.model_type
            )));
        }
    }
    let diffusion_steps = match options.diffusion_steps {
        Some(0) => {
            return Err(TrainError::Other(
                "diffusion steps must be at least 1".to_owned(),
            ));
        }
        Some(steps) => steps,
        None => config.model.diffusion_steps,
    };
    let (engine, device) = select(options.device)?;
    let draw = Draw {
        // Batches are drawn side by side on the CPU's cores; a GPU takes one at a time.
        threads: match engine {
            Engine::Cuda(_) => 1,
            _ => rayon::current_num_threads(),
        },
        config: &config,
        vocab: &state.vocabulary,
        weights,
        checkpoint: &checkpoint,
        count,
        temperature,
        seed: options.seed.unwrap_or(config.seed),
        diffusion: Sampling {
            steps: diffusion_steps as usize,
            order: options
                .diffusion_order
                .unwrap_or(config.model.diffusion_order),
        },
    };
    let smiles = match engine {
        Engine::Flex => draw.on::<burn::backend::Flex>(&Default::default(), &mut progress),
        Engine::NdArray => draw.on::<burn::backend::NdArray>(&Default::default(), &mut progress),
        #[cfg(feature = "cuda")]
        Engine::Cuda(index) => draw
            .on::<burn::backend::Cuda>(&burn::backend::cuda::CudaDevice::new(index), &mut progress),
        #[cfg(not(feature = "cuda"))]
        Engine::Cuda(_) => unreachable!("select never picks CUDA without the cuda feature"),
    }?;
    Ok(Generated {
        smiles,
        val_loss: ckpt.metrics.get(RANK_METRIC).copied(),
        epoch: ckpt.epoch,
        global_step: ckpt.global_step,
        checkpoint,
        device,
        config,
        warnings,
    })
}

/// The checkpoint directory `path` names, directly or through its run, and what its folder's
/// manager had to work around (a checkpoint that fails verification is passed over).
fn find_checkpoint(path: &Path, pick: Option<Pick>) -> Result<(PathBuf, Vec<String>), TrainError> {
    let bad = |problem: String| TrainError::Sample {
        path: path.to_path_buf(),
        problem,
    };
    if path.join(META_FILE).is_file() {
        if let Some(pick) = pick {
            return Err(bad(format!(
                "it is one checkpoint, so there is no {} one to pick; pass its run directory, or drop the choice",
                format!("{pick:?}").to_lowercase()
            )));
        }
        return Ok((path.to_path_buf(), Vec::new()));
    }
    let folder = if path.join(CHECKPOINTS_DIR).is_dir() {
        path.join(CHECKPOINTS_DIR)
    } else if path.join(MANIFEST_FILE).is_file() {
        path.to_path_buf()
    } else if !path.exists() {
        return Err(bad("no such file or folder".to_owned()));
    } else {
        return Err(bad(format!(
            "it is not a run directory (no {CHECKPOINTS_DIR}/), a checkpoint folder (no {MANIFEST_FILE}) or a checkpoint (no {META_FILE}); pass a run directory that `cargo xtask train` printed"
        )));
    };
    let manager = CheckpointManager::open_read_only(&folder, RANK_METRIC, Mode::Min)?;
    let none = || {
        if CheckpointManager::in_use(&folder) {
            "it has no checkpoint yet: it is still training, and saves its first at the end of \
             its first epoch; try again then"
                .to_owned()
        } else if manager.unverified().is_empty() {
            "it has no checkpoint yet (the run stopped before its first save)".to_owned()
        } else {
            let problems: Vec<&str> = manager
                .unverified()
                .iter()
                .map(|u| u.problem.as_str())
                .collect();
            format!(
                "no checkpoint of it can be used: {}; restore the files from a backup",
                problems.join("; ")
            )
        }
    };
    let entry = match pick.unwrap_or_default() {
        Pick::Best => manager.best().ok_or_else(|| {
            bad(if manager.last().is_some() {
                format!(
                    "none of its checkpoints has a {RANK_METRIC} to rank by (NaN or missing: it stopped before its first validation); pick the last one (`--checkpoint last`)"
                )
            } else {
                none()
            })
        })?,
        Pick::Last => manager.last().ok_or_else(|| bad(none()))?,
    };
    Ok((manager.path(entry), manager.warnings().to_vec()))
}

/// One draw's settings, ready to run on a backend.
struct Draw<'a> {
    config: &'a ExperimentConfig,
    vocab: &'a xp_chem::Vocabulary,
    weights: &'a [u8],
    checkpoint: &'a Path,
    count: usize,
    temperature: f64,
    seed: u64,
    diffusion: Sampling,
    /// Batches drawn at once, each on its own thread.
    threads: usize,
}

impl Draw<'_> {
    fn on<B: Backend>(
        &self,
        device: &B::Device,
        progress: &mut impl FnMut(usize),
    ) -> Result<Vec<String>, TrainError> {
        let m = &self.config.model;
        let (vocab, hidden, layers, latent) = (
            self.vocab.len(),
            m.hidden_dim as usize,
            m.num_layers as usize,
            m.latent_dim as usize,
        );
        match m.model_type {
            ModelType::Autoregressive => self.with_model(device, progress, || {
                CharRnn::<B>::new(vocab, hidden, layers, m.dropout, device)
            }),
            ModelType::Vae => self.with_model(device, progress, || {
                SmilesVae::<B>::new(vocab, hidden, latent, layers, m.dropout, device)
            }),
            ModelType::Diffusion => {
                let max_tokens = self.config.data.max_length as usize;
                self.with_model(device, progress, || {
                    SmilesDiffusion::<B>::new(
                        vocab,
                        hidden,
                        layers,
                        m.dropout,
                        max_tokens,
                        self.diffusion,
                        device,
                    )
                })
            }
            ModelType::Gnn => self.with_model(device, progress, || {
                GraphVae::<B>::new(vocab, hidden, latent, layers, m.dropout, device)
            }),
        }
    }

    /// Builds the model `build` makes, loads the checkpoint's weights into it and draws.
    fn with_model<B: Backend, M: SmilesModel<B>>(
        &self,
        device: &B::Device,
        progress: &mut impl FnMut(usize),
        build: impl FnOnce() -> M,
    ) -> Result<Vec<String>, TrainError> {
        // Initialising draws from Burn's process-wide generator, so it happens under its lock
        // (invariant 11) although the weights are replaced at once.
        let init = Rng::derive(self.seed, Stream::Init, 0);
        let mut model = with_backend_seed::<B, _>(device, init, build);
        load_model_bytes(&mut model, self.weights, self.checkpoint)?;
        Ok(self.batches(&model, device, progress))
    }

    fn batches<B: Backend, M: SmilesModel<B>>(
        &self,
        model: &M,
        device: &B::Device,
        progress: &mut impl FnMut(usize),
    ) -> Vec<String> {
        let batch = SAMPLE_BATCH.max(self.config.training.sample_size as usize);
        let sizes: Vec<usize> = (0..self.count)
            .step_by(batch)
            .map(|start| batch.min(self.count - start))
            .collect();
        let mut out = Vec::with_capacity(self.count);
        let mut finished = 0;
        // Each batch draws from its own seed and a model's draw takes every random choice from
        // that seed alone, so batches on several threads give what they give one by one.
        for (g, group) in sizes.chunks(self.threads.max(1)).enumerate() {
            let first = g * self.threads.max(1);
            let (done, finishing) = std::sync::mpsc::channel::<usize>();
            let drawn: Vec<Vec<String>> = std::thread::scope(|scope| {
                let handles: Vec<_> = group
                    .iter()
                    .enumerate()
                    .map(|(j, &n)| {
                        let model = model.clone();
                        let seed =
                            Rng::derive(self.seed, Stream::Sampling, u64::MAX - (first + j) as u64);
                        let done = done.clone();
                        scope.spawn(move || {
                            let smiles = sample(
                                &model,
                                self.vocab,
                                n,
                                self.config.data.max_length as usize,
                                self.temperature,
                                &mut Rng::new(seed),
                                device,
                            );
                            // The receiver waits for every batch of the group.
                            let _ = done.send(n);
                            smiles
                        })
                    })
                    .collect();
                drop(done);
                // Progress as each batch finishes, in whatever order they do.
                for n in finishing {
                    finished += n;
                    progress(finished);
                }
                join_in_order(handles)
            });
            out.extend(drawn.into_iter().flatten());
        }
        out
    }
}
