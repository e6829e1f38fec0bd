//! Training SMILES generative models on Burn: the models (`autoregressive`, `vae`, `diffusion`,
//! `gnn`), the training loop, and the glue to the other xp crates. [`train`] is the entry point
//! for training; everything it writes lands in one run directory (TensorBoard events,
//! `metrics.jsonl`, checkpoints, sample SMILES) plus a line in the results log. [`generate`] draws molecules from
//! a run's checkpoint afterwards (or while it trains).

mod data;
mod device;
mod diffusion;
mod error;
mod generate;
mod gnn;
mod lstm;
mod models;
mod rng;
mod sample;
mod train;

use burn::backend::Autodiff;
use xp_config::{Device, ExperimentConfig, ModelType};

pub use data::{LoadReport, Skipped, load_smiles, open_data_file};
pub use device::{Engine, cuda_devices, select};
pub use diffusion::{Sampling, SmilesDiffusion, attention_heads};
pub use error::TrainError;
pub use generate::{GenerateOptions, Generated, Pick, SAMPLE_BATCH, generate};
pub use gnn::{ATOM_FEATURES, BOND_KINDS, EncodedGraph, GraphBatch, GraphLayer, GraphVae};
pub use lstm::{LstmLayer, LstmState, StackedLstm};
pub use models::{Batch, CharRnn, Loss, SmilesModel, SmilesVae};
pub use rng::{
    Noise, NoiseRng, Rng, Stream, dropout, epoch_order, standard_normal, with_backend_seed,
};
pub use sample::sample;
pub use train::{
    CHECKPOINTS_DIR, EPOCHS_TRAINED_METRIC, Finish, MODEL_FILE, OPTIMIZER_FILE, RANK_METRIC,
    STATE_FILE, Timing, TrainOptions, TrainOutcome, clip_global_norm, is_final_record, kl_weight,
    learning_rate,
};

/// [`train`] on an explicitly chosen backend and device.
pub fn train_with(
    config: &ExperimentConfig,
    options: &TrainOptions,
    engine: Engine,
) -> Result<TrainOutcome, TrainError> {
    let name = match engine {
        Engine::Cuda(index) => select(Device::Cuda(Some(index as u32)))?.1,
        cpu => cpu.to_string(),
    };
    run_on(config, options, engine, name)
}

/// Trains (or, with `options.resume`, continues) the experiment `config` describes. A failure
/// once the run directory exists is a [`TrainError::InRun`] naming it: its checkpoints are kept,
/// and a resume goes on from the last one (or, when every epoch ran, only evaluates and logs).
pub fn train(
    config: &ExperimentConfig,
    options: &TrainOptions,
) -> Result<TrainOutcome, TrainError> {
    let (engine, why) = select(config.device)?;
    run_on(config, options, engine, why)
}

fn run_on(
    config: &ExperimentConfig,
    options: &TrainOptions,
    engine: Engine,
    name: String,
) -> Result<TrainOutcome, TrainError> {
    match engine {
        Engine::Flex => train_on::<Autodiff<burn::backend::Flex>>(
            config,
            options,
            Default::default(),
            name,
            true,
        ),
        Engine::NdArray => train_on::<Autodiff<burn::backend::NdArray>>(
            config,
            options,
            Default::default(),
            name,
            true,
        ),
        #[cfg(feature = "cuda")]
        Engine::Cuda(index) => train_on::<Autodiff<burn::backend::Cuda>>(
            config,
            options,
            burn::backend::cuda::CudaDevice::new(index),
            name,
            false,
        ),
        #[cfg(not(feature = "cuda"))]
        Engine::Cuda(_) => Err(TrainError::Device(
            "this build has no CUDA support (build with `--features cuda`)".to_owned(),
        )),
    }
}

fn train_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &ExperimentConfig,
    options: &TrainOptions,
    device: B::Device,
    device_name: String,
    on_cpu: bool,
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
            train::run::<B, CharRnn<B>>(config, options, device, device_name, on_cpu, |vocab, d| {
                CharRnn::new(vocab, hidden, layers, dropout, d)
            })
        }
        ModelType::Vae => train::run::<B, SmilesVae<B>>(
            config,
            options,
            device,
            device_name,
            on_cpu,
            |vocab, d| SmilesVae::new(vocab, hidden, latent, layers, dropout, d),
        ),
        ModelType::Diffusion => {
            let max_tokens = config.data.max_length as usize;
            let sampling = Sampling {
                steps: m.diffusion_steps as usize,
                order: m.diffusion_order,
            };
            train::run::<B, SmilesDiffusion<B>>(
                config,
                options,
                device,
                device_name,
                on_cpu,
                |vocab, d| {
                    SmilesDiffusion::new(vocab, hidden, layers, dropout, max_tokens, sampling, d)
                },
            )
        }
        ModelType::Gnn => train::run::<B, GraphVae<B>>(
            config,
            options,
            device,
            device_name,
            on_cpu,
            |vocab, d| GraphVae::new(vocab, hidden, latent, layers, dropout, d),
        ),
    }
}
