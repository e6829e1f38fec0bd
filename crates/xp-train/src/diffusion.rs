//! `diffusion`: a masked (absorbing-state) discrete diffusion model over SMILES tokens, as MDLM
//! (Sahoo et al., 2024) with its linear schedule. A molecule is a fixed-length row of
//! `max_length + 1` positions: its tokens, `<eos>`, then `<pad>`. Training masks each position
//! with probability `t` (`t` uniform per molecule) and a bidirectional transformer predicts the
//! masked tokens; the loss, cross-entropy on masked positions weighted by `1/t`, bounds the
//! negative log-likelihood, reported per real token like the other models'. Sampling starts from
//! all positions masked and unmasks them over `diffusion_steps` steps, in the order
//! `diffusion_order` names: the model's most confident positions first once the length is drawn
//! (as MaskGIT), or at random (MDLM's ancestral sampler).

use burn::module::Module;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use xp_chem::Vocabulary;
use xp_config::DiffusionOrder;

use crate::models::{Batch, Loss, SmilesModel};
use crate::rng::Rng;
use crate::sample::{Ends, draw_token, to_host, token_weights};

/// Smallest masking probability drawn in training: the `1/t` weight stays bounded.
const MIN_T: f64 = 1e-3;

/// Attention heads for a model `hidden` wide: 8 when each head gets at least 16 dimensions,
/// else fewer, always dividing `hidden`.
pub fn attention_heads(hidden: usize) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|&h| hidden.is_multiple_of(h) && hidden / h >= 16)
        .unwrap_or(1)
}

/// The denoiser: token and position embeddings, a pre-norm transformer encoder, a final norm and
/// a linear head over the vocabulary. Token id `vocab` is the mask.
#[derive(Module, Debug)]
pub struct SmilesDiffusion<B: Backend> {
    pub embedding: Embedding<B>,
    pub position: Embedding<B>,
    pub encoder: TransformerEncoder<B>,
    pub norm: LayerNorm<B>,
    pub head: Linear<B>,
    #[module(skip)]
    sampling: Sampling,
}

/// How a diffusion model samples: how many denoising steps, and which positions each reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    pub steps: usize,
    pub order: DiffusionOrder,
}

impl<B: Backend> SmilesDiffusion<B> {
    /// A model for a vocabulary of `vocab` tokens and molecules of up to `max_tokens` tokens.
    pub fn new(
        vocab: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
        max_tokens: usize,
        sampling: Sampling,
        device: &B::Device,
    ) -> Self {
        SmilesDiffusion {
            embedding: EmbeddingConfig::new(vocab + 1, hidden).init(device),
            position: EmbeddingConfig::new(max_tokens + 1, hidden).init(device),
            encoder: TransformerEncoderConfig::new(
                hidden,
                4 * hidden,
                attention_heads(hidden),
                layers,
            )
            .with_dropout(dropout)
            .with_norm_first(true)
            .init(device),
            norm: LayerNormConfig::new(hidden).init(device),
            head: LinearConfig::new(hidden, vocab).init(device),
            sampling: Sampling {
                steps: sampling.steps.max(1),
                ..sampling
            },
        }
    }

    /// Positions per molecule: `max_tokens + 1` (room for `<eos>`).
    fn length(&self) -> usize {
        self.position.weight.dims()[0]
    }

    fn mask_id(&self) -> i64 {
        self.head.weight.dims()[1] as i64
    }

    /// Logits `[n, L, vocab]` for the partly masked rows `tokens` `[n, L]`.
    fn denoise(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [n, length] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<B, 1, Int>::arange(0..length as i64, &device)
            .reshape([1, length])
            .expand([n, length]);
        let x = self.embedding.forward(tokens) + self.position.forward(positions);
        let y = self.encoder.forward(TransformerEncoderInput::new(x));
        self.head.forward(self.norm.forward(y))
    }
}

impl<B: Backend> SmilesModel<B> for SmilesDiffusion<B> {
    const BACKEND_NOISE: bool = true;

    fn loss(&self, batch: &Batch<B>, _kl_beta: f64) -> Loss<B> {
        let device = batch.targets.device();
        let [n, steps] = batch.targets.dims();
        let length = self.length();
        assert!(
            steps <= length,
            "a batch of {steps} tokens exceeds the model's {length} positions"
        );
        // The clean rows: tokens, <eos>, then <pad> up to the model's length.
        let clean = if steps < length {
            Tensor::cat(
                vec![
                    batch.targets.clone(),
                    Tensor::full([n, length - steps], Vocabulary::PAD_ID as i64, &device),
                ],
                1,
            )
        } else {
            batch.targets.clone()
        };
        // One masking level per molecule, spread evenly over (0, 1] from a random offset, which
        // lowers the loss's variance against drawing each independently.
        let offset: Tensor<B, 2> = Tensor::random([1, 1], Distribution::Uniform(0.0, 1.0), &device);
        let spread: Tensor<B, 2> = Tensor::from_data(
            TensorData::new(
                (0..n).map(|i| i as f32 / n as f32).collect::<Vec<_>>(),
                [n, 1],
            ),
            &device,
        );
        let level = spread + offset.expand([n, 1]);
        let t = (level.clone() - level.floor()).clamp_min(MIN_T);
        let draws: Tensor<B, 2> =
            Tensor::random([n, length], Distribution::Uniform(0.0, 1.0), &device);
        let masked = draws.lower(t.clone().expand([n, length]));
        let noisy = clean.clone().mask_fill(masked.clone(), self.mask_id());
        let nll = log_softmax(self.denoise(noisy), 2)
            .gather(2, clean.unsqueeze_dim(2))
            .squeeze_dim::<2>(2)
            .neg();
        let weight = masked.float() / t.expand([n, length]);
        let loss = (nll * weight).sum().div_scalar(batch.tokens.max(1) as f64);
        Loss {
            total: loss.clone(),
            reconstruction: loss,
            kl: None,
        }
    }

    fn draw(
        &self,
        n: usize,
        max_tokens: usize,
        temperature: f64,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Vec<Vec<u32>> {
        let length = self.length().min(max_tokens + 1);
        let mask = self.mask_id();
        let steps = self.sampling.steps;
        let mut rows = vec![mask; n * length];
        for step in (1..=steps).rev() {
            // Only rows with a masked position left go through the model: rows do not see each
            // other, and in the confidence order a row of k tokens is done after k steps.
            let active: Vec<usize> = (0..n)
                .filter(|&r| rows[r * length..(r + 1) * length].contains(&mask))
                .collect();
            if active.is_empty() {
                break;
            }
            let input: Vec<i64> = active
                .iter()
                .flat_map(|&r| rows[r * length..(r + 1) * length].iter().copied())
                .collect();
            let input = Tensor::<B, 2, Int>::from_data(
                TensorData::new(input, [active.len(), length]),
                device,
            );
            let logits = self.denoise(input);
            let vocab = logits.dims()[2];
            let logits = to_host(logits);
            for (&r, row_logits) in active.iter().zip(logits.chunks(length * vocab)) {
                let row = &mut rows[r * length..(r + 1) * length];
                let position = |i: usize| &row_logits[i * vocab..(i + 1) * vocab];
                match self.sampling.order {
                    DiffusionOrder::Random => reveal_at_random(
                        row,
                        mask,
                        step,
                        |i, rng| draw_token(position(i), temperature, rng, Ends::EosOrPad).0,
                        rng,
                    ),
                    DiffusionOrder::Confidence => {
                        if step == steps {
                            place_end(row, temperature, rng, position);
                        }
                        reveal_most_confident(
                            row,
                            mask,
                            step,
                            |i, rng| draw_token(position(i), temperature, rng, Ends::Neither),
                            rng,
                        );
                    }
                }
            }
        }
        rows.chunks(length)
            .map(|row| {
                row.iter()
                    .take_while(|&&id| {
                        id != Vocabulary::EOS_ID as i64 && id != Vocabulary::PAD_ID as i64
                    })
                    .map(|&id| id as u32)
                    .collect()
            })
            .collect()
    }
}

/// From masking level `step/S` to `(step-1)/S`: each masked position is revealed with
/// probability `1/step` (all at the last step), with a token `draw` gives it.
fn reveal_at_random(
    row: &mut [i64],
    mask: i64,
    step: usize,
    mut draw: impl FnMut(usize, &mut Rng) -> u32,
    rng: &mut Rng,
) {
    for (i, token) in row.iter_mut().enumerate() {
        if *token == mask && rng.below(step as u64) == 0 {
            *token = draw(i, rng) as i64;
        }
    }
}

/// Draws where the molecule ends, from the fully masked row's `<eos>` probability at each
/// position (a molecule holds at least one token), and writes `<eos>` there and `<pad>` after.
fn place_end<'a>(
    row: &mut [i64],
    temperature: f64,
    rng: &mut Rng,
    position: impl Fn(usize) -> &'a [f32],
) {
    if row.len() < 2 {
        return;
    }
    // P(<eos>) at each position, under the softmax the random order draws from.
    let weights: Vec<f64> = (1..row.len())
        .map(|i| {
            let w = token_weights(position(i), temperature, Ends::EosOrPad);
            w[Vocabulary::EOS_ID as usize] / w.iter().sum::<f64>()
        })
        .collect();
    let mut target = rng.next_f64() * weights.iter().sum::<f64>();
    let end = 1 + weights
        .iter()
        .position(|&w| {
            let hit = target < w;
            target -= w;
            hit
        })
        .unwrap_or(weights.len() - 1);
    row[end] = Vocabulary::EOS_ID as i64;
    row[end + 1..].fill(Vocabulary::PAD_ID as i64);
}

/// Reveals `1/step` of the row's masked positions (rounded up; all at the last step): those
/// whose drawn token the model gave the highest probability, earlier positions first on ties.
fn reveal_most_confident(
    row: &mut [i64],
    mask: i64,
    step: usize,
    mut draw: impl FnMut(usize, &mut Rng) -> (u32, f64),
    rng: &mut Rng,
) {
    let mut drawn: Vec<(usize, u32, f64)> = (0..row.len())
        .filter(|&i| row[i] == mask)
        .map(|i| {
            let (token, p) = draw(i, rng);
            (i, token, p)
        })
        .collect();
    let reveal = drawn.len().div_ceil(step);
    drawn.sort_by(|a, b| b.2.total_cmp(&a.2));
    for &(i, token, _) in &drawn[..reveal] {
        row[i] = token as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: i64 = 99;
    const EOS: i64 = Vocabulary::EOS_ID as i64;
    const PAD: i64 = Vocabulary::PAD_ID as i64;

    /// Logits over 6 tokens at each of `length` positions: `<eos>` likely at `likely_end` only.
    fn eos_logits(length: usize, likely_end: usize) -> Vec<Vec<f32>> {
        (0..length)
            .map(|i| {
                let mut l = vec![0.0; 6];
                l[EOS as usize] = if i == likely_end { 12.0 } else { -12.0 };
                l
            })
            .collect()
    }

    #[test]
    fn the_end_is_drawn_where_the_model_expects_it_and_padded_after() {
        let mut rng = Rng::new(1);
        let logits = eos_logits(8, 5);
        let mut row = vec![MASK; 8];
        place_end(&mut row, 1.0, &mut rng, |i| &logits[i]);
        assert_eq!(row, [MASK, MASK, MASK, MASK, MASK, EOS, PAD, PAD]);
        // Never at position 0, even where the model puts it: a molecule has a token.
        let logits = eos_logits(8, 0);
        for _ in 0..50 {
            let mut row = vec![MASK; 8];
            place_end(&mut row, 1.0, &mut rng, |i| &logits[i]);
            let end = row.iter().position(|&t| t == EOS).unwrap();
            assert!(end >= 1, "{row:?}");
            assert!(row[end + 1..].iter().all(|&t| t == PAD), "{row:?}");
            assert!(row[..end].iter().all(|&t| t == MASK), "{row:?}");
        }
    }

    #[test]
    fn each_step_reveals_its_share_of_the_surest_positions() {
        let mut rng = Rng::new(2);
        // Position i's token is 10 + i, drawn with probability (i % 5) / 10.
        let draw = |i: usize, _: &mut Rng| (10 + i as u32, (i % 5) as f64 / 10.0);
        let mut row = vec![MASK; 10];
        row[9] = EOS;
        // 9 masked over 4 steps: 3 now (ceil 9/4), the surest ones (p 0.4 at 4, then 0.3 at 3
        // and 8, earlier first).
        reveal_most_confident(&mut row, MASK, 4, draw, &mut rng);
        let revealed: Vec<usize> = (0..10).filter(|&i| row[i] != MASK && i != 9).collect();
        assert_eq!(revealed, [3, 4, 8]);
        assert_eq!((row[3], row[4], row[8]), (13, 14, 18));
        reveal_most_confident(&mut row, MASK, 3, draw, &mut rng);
        assert_eq!(row.iter().filter(|&&t| t == MASK).count(), 4);
        // The last step reveals everything left.
        reveal_most_confident(&mut row, MASK, 1, draw, &mut rng);
        assert_eq!(row, [10, 11, 12, 13, 14, 15, 16, 17, 18, EOS]);
    }

    #[test]
    fn the_random_order_reveals_about_one_in_step_and_all_at_the_last() {
        let mut rng = Rng::new(3);
        let mut row = vec![MASK; 4000];
        reveal_at_random(&mut row, MASK, 4, |i, _| i as u32 % 7, &mut rng);
        let revealed = row.iter().filter(|&&t| t != MASK).count();
        assert!((900..1100).contains(&revealed), "{revealed}");
        reveal_at_random(&mut row, MASK, 1, |i, _| i as u32 % 7, &mut rng);
        assert!(row.iter().enumerate().all(|(i, &t)| t == (i % 7) as i64));
    }

    #[test]
    fn heads_divide_the_width_with_at_least_16_dimensions_each() {
        assert_eq!(attention_heads(128), 8);
        assert_eq!(attention_heads(512), 8);
        assert_eq!(attention_heads(64), 4);
        assert_eq!(attention_heads(32), 2);
        assert_eq!(attention_heads(100), 4);
        assert_eq!(attention_heads(33), 1);
        for hidden in 32..300 {
            let heads = attention_heads(hidden);
            assert!(hidden.is_multiple_of(heads), "{hidden}");
        }
    }
}
