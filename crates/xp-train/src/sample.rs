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
    let (state, latent) = model.start(n, rng, device);
    decode_tokens(model, state, latent, n, max_tokens, device, |logits| {
        draw_token(logits, temperature, rng, Ends::Eos).0
    })
}

/// Token sequences from a recurrent model's `state` (and `latent`, for a VAE), one token at a
/// time, each chosen by `pick` from its logits; `<eos>` ends a sequence early.
///
/// A finished sequence leaves the batch (its rows of the state are dropped), so the model's
/// steps shrink with the sequences still being written: about half the work of running every
/// row to the longest one's end. `pick` sees the unfinished sequences in order at every step,
/// as it would if they all stayed.
pub(crate) fn decode_tokens<B: Backend, M: Recurrent<B>>(
    model: &M,
    mut state: LstmState<B>,
    mut latent: Option<Tensor<B, 2>>,
    n: usize,
    max_tokens: usize,
    device: &B::Device,
    mut pick: impl FnMut(&[f32]) -> u32,
) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); n];
    // The sequences still being written, in order, and the token each was last given.
    let mut active: Vec<usize> = (0..n).collect();
    let mut current = vec![Vocabulary::BOS_ID as i64; n];
    for _ in 0..max_tokens {
        if active.is_empty() {
            break;
        }
        let tokens: Tensor<B, 2, Int> =
            Tensor::from_data(TensorData::new(current, [active.len(), 1]), device);
        let (logits, next) = model.step(tokens, state, latent.as_ref());
        state = next;
        let vocab_size = logits.dims()[1];
        let logits = to_host(logits);
        let mut kept = Vec::with_capacity(active.len());
        current = Vec::with_capacity(active.len());
        for (position, row_logits) in logits.chunks(vocab_size).enumerate() {
            let id = pick(row_logits);
            if id != Vocabulary::EOS_ID {
                out[active[position]].push(id);
                kept.push(position);
                current.push(id as i64);
            }
        }
        if kept.len() < active.len() && !kept.is_empty() {
            let rows: Tensor<B, 1, Int> = Tensor::from_data(
                TensorData::new(
                    kept.iter().map(|&p| p as i64).collect::<Vec<_>>(),
                    [kept.len()],
                ),
                device,
            );
            state = state.select(rows.clone());
            latent = latent.map(|z| z.select(0, rows));
        }
        active = kept.into_iter().map(|position| active[position]).collect();
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

    /// A toy recurrent model: each row's hidden state holds how many tokens it must write, its
    /// cell how many it has; it writes token `4 + length` until done, then `<eos>`.
    struct Countdown;

    impl Recurrent<burn::backend::Flex> for Countdown {
        fn start(
            &self,
            _n: usize,
            _rng: &mut Rng,
            _device: &burn::backend::flex::FlexDevice,
        ) -> (
            LstmState<burn::backend::Flex>,
            Option<Tensor<burn::backend::Flex, 2>>,
        ) {
            unreachable!("the test gives decode_tokens its state")
        }

        fn step(
            &self,
            tokens: Tensor<burn::backend::Flex, 2, Int>,
            state: LstmState<burn::backend::Flex>,
            _latent: Option<&Tensor<burn::backend::Flex, 2>>,
        ) -> (
            Tensor<burn::backend::Flex, 2>,
            LstmState<burn::backend::Flex>,
        ) {
            let length = to_host(state.hidden[0].clone());
            let written = to_host(state.cell[0].clone());
            assert_eq!(
                tokens.dims()[0],
                length.len(),
                "one token per row still writing"
            );
            let mut logits = vec![0f32; length.len() * 12];
            for (row, (&want, &done)) in length.iter().zip(&written).enumerate() {
                let id = if done >= want {
                    Vocabulary::EOS_ID
                } else {
                    4 + want as u32
                };
                logits[row * 12 + id as usize] = 50.0;
            }
            let device = Default::default();
            let next = LstmState {
                hidden: state.hidden,
                cell: vec![state.cell[0].clone().add_scalar(1.0)],
            };
            let logits = Tensor::from_data(TensorData::new(logits, [length.len(), 12]), &device);
            (logits, next)
        }
    }

    #[test]
    fn finished_rows_leave_the_batch_and_the_others_keep_their_state() {
        let device = Default::default();
        let lengths = [3f32, 0.0, 5.0, 1.0, 7.0, 2.0];
        let n = lengths.len();
        let column = |values: Vec<f32>| {
            Tensor::<burn::backend::Flex, 2>::from_data(TensorData::new(values, [n, 1]), &device)
        };
        let state = LstmState {
            hidden: vec![column(lengths.to_vec())],
            cell: vec![column(vec![0.0; n])],
        };
        let out = decode_tokens(&Countdown, state, None, n, 6, &device, |logits| {
            likeliest_token(logits, Ends::Eos)
        });
        for (row, &length) in lengths.iter().enumerate() {
            // At most 6 tokens: the 7-token row is cut there.
            let expected = vec![4 + length as u32; (length as usize).min(6)];
            assert_eq!(out[row], expected, "row {row}");
        }
    }

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
