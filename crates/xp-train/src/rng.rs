//! The run's own random numbers for data order and sampling: SplitMix64, whose whole state is
//! one `u64`, so a checkpoint can hold it and a resumed run draws exactly the same numbers.
//! Every stream is derived from the config's seed and a purpose, never from a global.

use burn::nn::Dropout;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData};

/// A SplitMix64 generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng(u64);

/// What a derived stream is for; keeps streams for different purposes apart.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Order of the training set in an epoch.
    DataOrder = 1,
    /// Noise (dropout, VAE noise, diffusion masks) at one optimisation step: the backend's
    /// generator for a batch in one piece, the seeds of its slices otherwise.
    Step = 2,
    /// Molecules sampled at the end of an epoch.
    Sampling = 3,
    /// Weight initialisation.
    Init = 4,
    /// The VAE's noise during validation.
    Validation = 5,
    /// One slice of a step's batch, when the batch is split across threads.
    Slice = 6,
    /// Noise inside a model's forward pass (dropout, the VAE's reparameterisation), from the
    /// batch's own seed; see [`Noise`].
    Noise = 7,
}

/// The parts of a model that draw noise in a training forward pass. A batch with a seed
/// ([`Batch::seed`](crate::models::Batch::seed)) gives each part its own stream of it, drawn by
/// our own generator, so the slices of a batch can run on several threads at once and still
/// draw the same numbers in every run; a batch without one draws from the backend's generator
/// (on the device, for CUDA), which the caller has seeded under [`with_backend_seed`].
#[derive(Debug, Clone, Copy)]
pub enum Noise {
    /// Dropout between the layers of the first (or only) stacked LSTM.
    Lstm = 0,
    /// Dropout between the layers of a VAE's decoder.
    Decoder = 1,
    /// Dropout between the rounds of message passing of the `gnn` encoder.
    Graph = 2,
    /// The VAE's reparameterisation noise.
    Latent = 3,
}

/// Where one part of a forward pass draws its noise: our own generator, or (`None`) the
/// backend's.
pub type NoiseRng = Option<Rng>;

impl Noise {
    /// The generator of this part's noise for a batch with `batch_seed` (`None`: the
    /// backend's).
    pub fn rng(self, batch_seed: Option<u64>) -> NoiseRng {
        batch_seed.map(|seed| Rng::new(Rng::derive(seed, Stream::Noise, self as u64)))
    }
}

/// Inverted dropout as Burn's `Dropout::forward` (active only under autodiff, scaled by
/// 1/(1 - p)), its mask drawn from `rng` when there is one, else from the backend's generator.
pub fn dropout<B: Backend, const D: usize>(
    dropout: &Dropout,
    x: Tensor<B, D>,
    rng: &mut NoiseRng,
) -> Tensor<B, D> {
    let device = x.device();
    let Some(rng) = rng else {
        return dropout.forward(x);
    };
    if !B::ad_enabled(&device) || dropout.prob == 0.0 {
        return x;
    }
    let keep = 1.0 - dropout.prob;
    let scale = (1.0 / keep) as f32;
    let shape = x.shape();
    let mask: Vec<f32> = (0..shape.num_elements())
        .map(|_| if rng.next_f64() < keep { scale } else { 0.0 })
        .collect();
    x * Tensor::from_data(TensorData::new(mask, shape), &device)
}

/// A tensor of independent standard normal draws from `rng` when there is one, else from the
/// backend's generator.
pub fn standard_normal<B: Backend, const D: usize>(
    shape: [usize; D],
    rng: &mut NoiseRng,
    device: &B::Device,
) -> Tensor<B, D> {
    let Some(rng) = rng else {
        return Tensor::random(shape, Distribution::Normal(0.0, 1.0), device);
    };
    let n = shape.iter().product::<usize>();
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        // Box-Muller: two uniforms give two independent normals.
        let radius = (-2.0 * (1.0 - rng.next_f64()).ln()).sqrt();
        let angle = std::f64::consts::TAU * rng.next_f64();
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(n);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Burn's backends keep one random generator per process. Every use of it (initialisation,
/// dropout, VAE noise) happens under this lock, right after seeding it for that use, so runs
/// sharing a process (tests, sweeps) cannot disturb each other's numbers.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with the backend's generator seeded with `seed`, alone.
pub fn with_backend_seed<B: burn::tensor::backend::Backend, R>(
    device: &B::Device,
    seed: u64,
    f: impl FnOnce() -> R,
) -> R {
    let _alone = BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(device, seed);
    f()
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A seed for `stream` at `index` (an epoch or a step), independent of every other pair.
    pub fn derive(seed: u64, stream: Stream, index: u64) -> u64 {
        let mut rng = Rng(seed ^ (stream as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        let mut rng = Rng(rng.next_u64() ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB));
        rng.next_u64()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The order of `n` training examples in `epoch`: a function of the seed and epoch only, so a
/// resumed run sees the same order.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(Rng::derive(seed, Stream::DataOrder, epoch)).shuffle(&mut order);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        assert_eq!(epoch_order(7, 3, 50), epoch_order(7, 3, 50));
        assert_ne!(epoch_order(7, 3, 50), epoch_order(7, 4, 50));
        assert_ne!(epoch_order(7, 3, 50), epoch_order(8, 3, 50));
        let mut sorted = epoch_order(7, 3, 50);
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(
            Rng::derive(1, Stream::Step, 5),
            Rng::derive(1, Stream::Sampling, 5)
        );
    }

    #[test]
    fn model_noise_is_seeded_and_shaped() {
        type B = burn::backend::Autodiff<burn::backend::Flex>;
        let device = Default::default();
        let x = Tensor::<B, 2>::ones([64, 100], &device);
        let layer = burn::nn::DropoutConfig::new(0.25).init();
        let dropped =
            |seed| dropout(&layer, x.clone(), &mut Noise::Lstm.rng(Some(seed))).into_data();
        assert_eq!(dropped(3), dropped(3));
        assert_ne!(dropped(3), dropped(4));
        let values = dropped(3).to_vec::<f32>().unwrap();
        let kept = values.iter().filter(|&&v| v != 0.0).count() as f64 / values.len() as f64;
        assert!((kept - 0.75).abs() < 0.03, "kept {kept}");
        assert!(
            values
                .iter()
                .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6)
        );
        // Without autodiff (validation, sampling) dropout does nothing, as Burn's.
        let plain = Tensor::<burn::backend::Flex, 2>::ones([4, 4], &device);
        let same = dropout(&layer, plain.clone(), &mut Some(Rng::new(1)));
        assert_eq!(same.into_data(), plain.into_data());

        let normal = standard_normal::<B, 2>([101, 99], &mut Noise::Latent.rng(Some(5)), &device)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(normal.len(), 101 * 99);
        let mean = normal.iter().map(|&v| v as f64).sum::<f64>() / normal.len() as f64;
        let var = normal
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / normal.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "mean {mean}, var {var}"
        );
    }

    #[test]
    fn uniform_draws_cover_their_range() {
        let mut rng = Rng::new(1);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            seen[rng.below(6) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (850..1150).contains(&c)), "{seen:?}");
        assert!(
            (0..1000)
                .map(|_| rng.next_f64())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }
}
