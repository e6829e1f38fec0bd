//! The run's own random numbers for data order and sampling: SplitMix64, whose whole state is
//! one `u64`, so a checkpoint can hold it and a resumed run draws exactly the same numbers.
//! Every stream is derived from the config's seed and a purpose, never from a global.

/// A SplitMix64 generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng(u64);

/// What a derived stream is for; keeps streams for different purposes apart.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Order of the training set in an epoch.
    DataOrder = 1,
    /// Backend RNG (dropout, VAE noise) at one optimisation step.
    Step = 2,
    /// Molecules sampled at the end of an epoch.
    Sampling = 3,
    /// Weight initialisation.
    Init = 4,
    /// The VAE's noise during validation.
    Validation = 5,
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
