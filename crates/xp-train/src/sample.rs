//! Drawing molecules from a trained model with temperature, on the run's own RNG so the same
//! seed draws the same molecules.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use xp_chem::Vocabulary;

use crate::models::{Recurrent, SmilesModel};
use crate::rng::Rng;

/// Samples `n` SMILES of at most `max_tokens` tokens each.
pub fn sample<B: Backend, M: SmilesModel<B>>(
    model: &M,
    vocab: &Vocabulary,
    n: usize,
    max_tokens: usize,
    temperature: f64,
    rng: &mut Rng,
    device: &B::Device,
) -> Vec<String> {
    model
        .draw(n, max_tokens, temperature, rng, device)
        .iter()
        .map(|ids| vocab.decode(ids))
        .collect()
}

/// Token sequences from a recurrent model, one token at a time (`<eos>` ends one early).
pub(crate) fn one_token_at_a_time<B: Backend, M: Recurrent<B>>(
    model: &M,
    n: usize,
    max_tokens: usize,
    temperature: f64,
    rng: &mut Rng,
    device: &B::Device,
) -> Vec<Vec<u32>> {
    let (mut state, latent) = model.start(n, device);
    let mut current = vec![Vocabulary::BOS_ID as i64; n];
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut done = vec![false; n];
    for _ in 0..max_tokens {
        let tokens: Tensor<B, 2, Int> =
            Tensor::from_data(TensorData::new(current.clone(), [n, 1]), device);
        let (logits, next) = model.step(tokens, state, latent.as_ref());
        state = next;
        let vocab_size = logits.dims()[1];
        let logits = to_host(logits);
        for (row, row_logits) in logits.chunks(vocab_size).enumerate() {
            if done[row] {
                current[row] = Vocabulary::PAD_ID as i64;
                continue;
            }
            let id = draw_token(row_logits, temperature, rng, false);
            if id == Vocabulary::EOS_ID {
                done[row] = true;
            } else {
                out[row].push(id);
            }
            current[row] = id as i64;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    out
}

/// A float tensor's values on the host, row-major, for drawing tokens there.
pub(crate) fn to_host<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("a float tensor converted to f32 holds f32")
}

/// One draw from softmax(logits / temperature). Special tokens other than `<eos>` (and `<pad>`
/// with `allow_pad`, for models that fill a fixed length) are excluded.
pub(crate) fn draw_token(logits: &[f32], temperature: f64, rng: &mut Rng, allow_pad: bool) -> u32 {
    let allowed = |i: usize| match i as u32 {
        Vocabulary::BOS_ID | Vocabulary::UNK_ID => false,
        Vocabulary::PAD_ID => allow_pad,
        _ => true,
    };
    let max = logits
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .map(|(_, &l)| l as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if allowed(i) {
                ((l as f64 - max) / temperature).exp()
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut target = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return i as u32;
        }
        target -= w;
    }
    Vocabulary::EOS_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_softmax_and_skip_special_tokens() {
        // ids 0..3 are special; 2 is <eos>.
        let logits = [9.0, 9.0, 0.0, 9.0, 0.0, (3f32).ln()];
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 6];
        for _ in 0..5000 {
            counts[draw_token(&logits, 1.0, &mut rng, false) as usize] += 1;
        }
        assert_eq!(counts[0] + counts[1] + counts[3], 0);
        // weights: eos 1, id4 1, id5 3.
        assert!((900..1100).contains(&counts[2]), "{counts:?}");
        assert!((2800..3200).contains(&counts[5]), "{counts:?}");
        // A low temperature is nearly greedy.
        let greedy = (0..200)
            .filter(|_| draw_token(&logits, 0.05, &mut rng, false) == 5)
            .count();
        assert_eq!(greedy, 200);
        // Models that fill a fixed length may also write <pad> (id 0), never <bos> or <unk>.
        let mut counts = [0u32; 6];
        for _ in 0..5000 {
            counts[draw_token(&logits, 1.0, &mut rng, true) as usize] += 1;
        }
        assert_eq!(counts[1] + counts[3], 0);
        assert!(counts[0] > 3000, "{counts:?}");
    }
}
