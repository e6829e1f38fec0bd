//! Drawing molecules from a trained model with temperature, on the run's own RNG so the same
//! seed draws the same molecules.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use xp_chem::Vocabulary;

use crate::lstm::LstmState;
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
    let (state, latent) = model.start(n, device);
    decode_tokens(model, state, latent, n, max_tokens, device, |logits| {
        draw_token(logits, temperature, rng, Ends::Eos).0
    })
}

/// Token sequences from a recurrent model's `state` (and `latent`, for a VAE), one token at a
/// time, each chosen by `pick` from its logits; `<eos>` ends a sequence early.
pub(crate) fn decode_tokens<B: Backend, M: Recurrent<B>>(
    model: &M,
    mut state: LstmState<B>,
    latent: Option<Tensor<B, 2>>,
    n: usize,
    max_tokens: usize,
    device: &B::Device,
    mut pick: impl FnMut(&[f32]) -> u32,
) -> Vec<Vec<u32>> {
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
            let id = pick(row_logits);
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

/// Which of the tokens that end a molecule a draw may return (`<bos>` and `<unk>` never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ends {
    /// `<eos>`: a model that writes one token after another and stops itself.
    Eos,
    /// `<eos>` and `<pad>`: a model that fills a fixed length.
    EosOrPad,
    /// Neither: a position already known to lie inside the molecule.
    Neither,
}

/// softmax(logits / temperature) over the tokens `ends` allows, unnormalised: each allowed
/// token's `exp((logit - max) / temperature)`, 0 for the others.
pub(crate) fn token_weights(logits: &[f32], temperature: f64, ends: Ends) -> Vec<f64> {
    let allowed = |i: usize| match i as u32 {
        Vocabulary::BOS_ID | Vocabulary::UNK_ID => false,
        Vocabulary::EOS_ID => ends != Ends::Neither,
        Vocabulary::PAD_ID => ends == Ends::EosOrPad,
        _ => true,
    };
    let max = logits
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .map(|(_, &l)| l as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if allowed(i) {
                ((l as f64 - max) / temperature).exp()
            } else {
                0.0
            }
        })
        .collect()
}

/// The most likely token `ends` allows (greedy decoding); the first of equals.
pub(crate) fn likeliest_token(logits: &[f32], ends: Ends) -> u32 {
    let weights = token_weights(logits, 1.0, ends);
    let mut best = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > weights[best] {
            best = i;
        }
    }
    best as u32
}

/// One draw from softmax(logits / temperature) over the tokens `ends` allows, with the drawn
/// token's probability under that softmax.
pub(crate) fn draw_token(
    logits: &[f32],
    temperature: f64,
    rng: &mut Rng,
    ends: Ends,
) -> (u32, f64) {
    let weights = token_weights(logits, temperature, ends);
    let total: f64 = weights.iter().sum();
    let mut target = rng.next_f64() * total;
    let mut last = 0;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            last = i;
        }
        if target < *w {
            return (i as u32, w / total);
        }
        target -= w;
    }
    // Rounding left the target past the end: the last allowed token.
    (last as u32, weights[last] / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_softmax_and_skip_special_tokens() {
        // ids 0..3 are special (<pad>, <bos>, <eos>, <unk>).
        let logits = [9.0, 9.0, 0.0, 9.0, 0.0, (3f32).ln()];
        let mut rng = Rng::new(3);
        let mut draw = |temperature, ends| draw_token(&logits, temperature, &mut rng, ends);
        let mut counts = [0u32; 6];
        for _ in 0..5000 {
            let (id, p) = draw(1.0, Ends::Eos);
            counts[id as usize] += 1;
            // weights: eos 1, id4 1, id5 3.
            let expected = if id == 5 { 0.6 } else { 0.2 };
            assert!((p - expected).abs() < 1e-6, "{id}: {p}");
        }
        assert_eq!(counts[0] + counts[1] + counts[3], 0);
        assert!((900..1100).contains(&counts[2]), "{counts:?}");
        assert!((2800..3200).contains(&counts[5]), "{counts:?}");
        // A low temperature is nearly greedy.
        let greedy = (0..200).filter(|_| draw(0.05, Ends::Eos).0 == 5).count();
        assert_eq!(greedy, 200);
        // Models that fill a fixed length may also write <pad> (id 0), never <bos> or <unk>.
        let mut counts = [0u32; 6];
        for _ in 0..5000 {
            counts[draw(1.0, Ends::EosOrPad).0 as usize] += 1;
        }
        assert_eq!(counts[1] + counts[3], 0);
        assert!(counts[0] > 3000, "{counts:?}");
        // Inside a molecule neither end is drawn: id 4 against id 5, 1 to 3.
        let mut counts = [0u32; 6];
        for _ in 0..4000 {
            let (id, p) = draw(1.0, Ends::Neither);
            counts[id as usize] += 1;
            assert!((p - if id == 5 { 0.75 } else { 0.25 }).abs() < 1e-6);
        }
        assert_eq!(counts[0] + counts[1] + counts[2] + counts[3], 0);
        assert!((900..1100).contains(&counts[4]), "{counts:?}");
    }

    #[test]
    fn the_likeliest_token_skips_what_ends_forbid() {
        // <pad>, <bos> and <unk> score highest but are never chosen; then <eos> (id 2) unless
        // the position lies inside the molecule.
        let logits = [9.0, 9.0, 5.0, 9.0, 1.0, 4.0];
        assert_eq!(likeliest_token(&logits, Ends::Eos), 2);
        assert_eq!(likeliest_token(&logits, Ends::Neither), 5);
        assert_eq!(likeliest_token(&logits, Ends::EosOrPad), 0);
    }
}
