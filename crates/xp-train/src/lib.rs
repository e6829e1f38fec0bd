//! Training SMILES generative models on Burn: the models (`autoregressive`, `vae`), the training
//! loop, and the glue to the other xp crates. [`train`] is the one entry point; everything it
//! writes lands in one run directory (TensorBoard events, `metrics.jsonl`, checkpoints, sample
//! SMILES) plus a line in the results log.

mod data;
mod device;
mod error;
mod lstm;
mod models;
mod rng;
mod sample;
mod train;

use burn::backend::Autodiff;
use xp_config::{ExperimentConfig, ModelType};

pub use data::{LoadReport, Skipped, load_smiles};
pub use device::{CpuBackend, Target, cuda_devices, select};
pub use error::TrainError;
pub use lstm::{LstmLayer, LstmState, StackedLstm};
pub use models::{Batch, CharRnn, Loss, SmilesModel, SmilesVae};
pub use rng::{Rng, Stream, epoch_order, with_backend_seed};
pub use sample::sample;
pub use train::{
    CHECKPOINTS_DIR, Finish, MODEL_FILE, OPTIMIZER_FILE, RANK_METRIC, STATE_FILE, Timing,
    TrainOptions, TrainOutcome, clip_global_norm, kl_weight, learning_rate,
};

/// A backend and device to train on, for callers that choose it themselves (benchmarks);
/// [`train`] picks from the config's `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The CPU with Burn's Flex backend (the default CPU backend).
    Flex,
    /// The CPU with Burn's NdArray backend (faster, not bit-reproducible).
    NdArray,
    /// A CUDA device by index (needs the `cuda` feature).
    Cuda(usize),
}

/// [`train`] on an explicitly chosen backend and device.
pub fn train_with(
    config: &ExperimentConfig,
    options: &TrainOptions,
    engine: Engine,
) -> Result<TrainOutcome, TrainError> {
    match engine {
        Engine::Flex => train_on::<Autodiff<burn::backend::Flex>>(
            config,
            options,
            Default::default(),
            "cpu (Flex)".to_owned(),
        ),
        Engine::NdArray => train_on::<Autodiff<burn::backend::NdArray>>(
            config,
            options,
            Default::default(),
            "cpu (NdArray)".to_owned(),
        ),
        #[cfg(feature = "cuda")]
        Engine::Cuda(index) => {
            let n = cuda_devices().map_err(TrainError::Device)?;
            if index >= n {
                return Err(TrainError::Device(format!(
                    "no CUDA device {index} (this machine has {n})"
                )));
            }
            train_on::<Autodiff<burn::backend::Cuda>>(
                config,
                options,
                burn::backend::cuda::CudaDevice::new(index),
                format!("cuda:{index}"),
            )
        }
        #[cfg(not(feature = "cuda"))]
        Engine::Cuda(_) => Err(TrainError::Device(
            "this build has no CUDA support (build with `--features cuda`)".to_owned(),
        )),
    }
}

/// Trains (or, with `options.resume`, continues) the experiment `config` describes.
pub fn train(
    config: &ExperimentConfig,
    options: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    if matches!(
        config.model.model_type,
        ModelType::Diffusion | ModelType::Gnn
    ) {
        return Err(TrainError::ModelNotAvailable(
            config.model.model_type.to_string(),
        ));
    }
    let (target, why) = select(config.device)?;
    match target {
        Target::Cpu => train_on::<Autodiff<CpuBackend>>(config, options, Default::default(), why),
        #[cfg(feature = "cuda")]
        Target::Cuda(index) => train_on::<Autodiff<burn::backend::Cuda>>(
            config,
            options,
            burn::backend::cuda::CudaDevice::new(index),
            why,
        ),
        #[cfg(not(feature = "cuda"))]
        Target::Cuda(_) => unreachable!("select() never picks CUDA without the cuda feature"),
    }
}

fn train_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &ExperimentConfig,
    options: &TrainOptions,
    device: B::Device,
    device_name: String,
) -> Result<TrainOutcome, TrainError> {
    let m = &config.model;
    let (hidden, layers, latent) = (
        m.hidden_dim as usize,
        m.num_layers as usize,
        m.latent_dim as usize,
    );
    let dropout = m.dropout;
    match m.model_type {
        ModelType::Autoregressive => {
            train::run::<B, CharRnn<B>>(config, options, device, device_name, |vocab, d| {
                CharRnn::new(vocab, hidden, layers, dropout, d)
            })
        }
        ModelType::Vae => {
            train::run::<B, SmilesVae<B>>(config, options, device, device_name, |vocab, d| {
                SmilesVae::new(vocab, hidden, latent, layers, dropout, d)
            })
        }
        other => Err(TrainError::ModelNotAvailable(other.to_string())),
    }
}
