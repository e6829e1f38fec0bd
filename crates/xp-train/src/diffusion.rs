//! `diffusion`: a masked (absorbing-state) discrete diffusion model over SMILES tokens, as MDLM
//! (Sahoo et al., 2024) with its linear schedule. A molecule is a fixed-length row of
//! `max_length + 1` positions: its tokens, `<eos>`, then `<pad>`. Training masks each position
//! with probability `t` (`t` uniform per molecule) and a bidirectional transformer predicts the
//! masked tokens; the loss, cross-entropy on masked positions weighted by `1/t`, bounds the
//! negative log-likelihood, reported per real token like the other models'. Sampling starts from
//! all positions masked and unmasks them over `diffusion_steps` steps.

use burn::module::Module;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use xp_chem::Vocabulary;

use crate::models::{Batch, Loss, SmilesModel};
use crate::rng::Rng;
use crate::sample::{draw_token, to_host};

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
    /// Denoising steps when sampling.
    steps: usize,
}

impl<B: Backend> SmilesDiffusion<B> {
    /// A model for a vocabulary of `vocab` tokens and molecules of up to `max_tokens` tokens.
    pub fn new(
        vocab: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
        max_tokens: usize,
        steps: usize,
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
            steps: steps.max(1),
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
        let mut rows = vec![mask; n * length];
        for step in (1..=self.steps).rev() {
            let input =
                Tensor::<B, 2, Int>::from_data(TensorData::new(rows.clone(), [n, length]), device);
            let logits = self.denoise(input);
            let vocab = logits.dims()[2];
            let logits = to_host(logits);
            // From masking level step/S to (step-1)/S: each masked position is revealed with
            // probability 1/step (all at the last step).
            for (position, token) in rows.iter_mut().enumerate() {
                if *token == mask && rng.below(step as u64) == 0 {
                    let row_logits = &logits[position * vocab..(position + 1) * vocab];
                    *token = draw_token(row_logits, temperature, rng, true) as i64;
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

#[cfg(test)]
mod tests {
    use super::*;

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
