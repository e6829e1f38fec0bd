//! The SMILES models, generic over the Burn backend: a token-level language model
//! (`autoregressive`) and a recurrent VAE (`vae`), whose decoder the graph VAE (`gnn`) shares.
//! They read the same [`Batch`] and expose the same one-token step, so training, validation and
//! sampling are shared.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::gnn::{EncodedGraph, GraphBatch};
use crate::lstm::{LstmState, StackedLstm};
use crate::rng::{Noise, NoiseRng, Rng, standard_normal};
use crate::sample::{Ends, decode_tokens, likeliest_token, one_token_at_a_time};

/// A padded batch on the device. Sequence `i` has `lengths[i]` targets: its tokens then `<eos>`.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// `<bos>` then the tokens, padded: `[B, T]`.
    pub inputs: Tensor<B, 2, Int>,
    /// The tokens then `<eos>`, padded: `[B, T]`.
    pub targets: Tensor<B, 2, Int>,
    /// 1 where a target is real, 0 on padding: `[B, T]`.
    pub mask: Tensor<B, 2>,
    pub lengths: Vec<usize>,
    /// Real target tokens in the batch (the sum of `lengths`).
    pub tokens: usize,
    /// The molecules' graphs, for models that read them ([`SmilesModel::READS_GRAPHS`]).
    pub graphs: Option<GraphBatch<B>>,
    /// Seed of the noise a model draws in a training forward pass on this batch (dropout, the
    /// VAE's reparameterisation), each part from its own stream ([`Noise`]); `None`: from the
    /// backend's generator, seeded by the caller.
    pub seed: Option<u64>,
}

impl<B: Backend> Batch<B> {
    /// Builds a batch from encoded SMILES (`<bos>` ... `<eos>`, as `Vocabulary::encode` gives).
    pub fn new(sequences: &[&[u32]], pad: u32, device: &B::Device) -> Self {
        let steps = sequences.iter().map(|s| s.len() - 1).max().unwrap_or(1);
        let batch = sequences.len();
        let mut inputs = vec![pad as i64; batch * steps];
        let mut targets = vec![pad as i64; batch * steps];
        let mut mask = vec![0f32; batch * steps];
        let mut lengths = Vec::with_capacity(batch);
        for (row, seq) in sequences.iter().enumerate() {
            let n = seq.len() - 1;
            for t in 0..n {
                inputs[row * steps + t] = seq[t] as i64;
                targets[row * steps + t] = seq[t + 1] as i64;
                mask[row * steps + t] = 1.0;
            }
            lengths.push(n);
        }
        Batch {
            inputs: Tensor::from_data(TensorData::new(inputs, [batch, steps]), device),
            targets: Tensor::from_data(TensorData::new(targets, [batch, steps]), device),
            mask: Tensor::from_data(TensorData::new(mask, [batch, steps]), device),
            tokens: lengths.iter().sum(),
            lengths,
            graphs: None,
            seed: None,
        }
    }

    /// The batch with its molecules' graphs, in the order of its sequences.
    pub fn with_graphs(self, graphs: &[&EncodedGraph], device: &B::Device) -> Self {
        debug_assert_eq!(graphs.len(), self.size());
        Batch {
            graphs: Some(GraphBatch::new(graphs, device)),
            ..self
        }
    }

    pub fn size(&self) -> usize {
        self.lengths.len()
    }

    /// The batch with `seed` for its forward pass's noise, drawn by our own generator.
    pub fn with_seed(self, seed: u64) -> Self {
        Batch {
            seed: Some(seed),
            ..self
        }
    }
}

/// A model's loss on one batch.
#[derive(Debug, Clone)]
pub struct Loss<B: Backend> {
    /// What is minimised: reconstruction plus, for the VAE, beta times KL.
    pub total: Tensor<B, 1>,
    /// Mean cross-entropy per target token.
    pub reconstruction: Tensor<B, 1>,
    /// Mean KL divergence per molecule (VAE only).
    pub kl: Option<Tensor<B, 1>>,
}

/// What the training loop needs of a model.
pub trait SmilesModel<B: Backend>: Module<B> {
    /// Whether the model reads each molecule's graph (`gnn`): only then do batches carry one.
    const READS_GRAPHS: bool = false;
    /// Whether a training forward pass draws from the backend's process-wide generator (the
    /// diffusion model: its masking and Burn's transformer dropout) and not only from
    /// [`Batch::seed`]. Such passes take turns when a batch's slices run on several threads.
    const BACKEND_NOISE: bool = false;

    /// Loss on `batch`; `kl_beta` weights the VAE's KL term (ignored by other models).
    fn loss(&self, batch: &Batch<B>, kl_beta: f64) -> Loss<B>;
    /// Draws `n` token sequences of at most `max_tokens` tokens each (no `<bos>`, no `<eos>`),
    /// every random choice taken from `rng`, none from the backend's generator: batches of a
    /// [`generate`](crate::generate) run are drawn on several threads at once.
    fn draw(
        &self,
        n: usize,
        max_tokens: usize,
        temperature: f64,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Vec<Vec<u32>>;

    /// For a VAE: each molecule of `batch` decoded greedily (the likeliest token at each step,
    /// at most `max_tokens`) from the mean of its code, without `<bos>` and `<eos>`. A model
    /// without an encoder has nothing to reconstruct: `None`.
    fn reconstruct(&self, _batch: &Batch<B>, _max_tokens: usize) -> Option<Vec<Vec<u32>>> {
        None
    }
}

/// A model that writes a SMILES one token at a time (the LSTM models): sampled by
/// [`crate::sample::one_token_at_a_time`].
pub trait Recurrent<B: Backend> {
    /// State for generating `n` molecules: the LSTM state and, for the VAE, the latent code
    /// (drawn from `rng`).
    fn start(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &B::Device,
    ) -> (LstmState<B>, Option<Tensor<B, 2>>);
    /// Logits `[n, vocab]` of the next token after `tokens` `[n, 1]`, and the new state.
    fn step(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: LstmState<B>,
        latent: Option<&Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, LstmState<B>);
}

/// The embedding of each time step of `tokens` `[B, T]`, as `T` tensors `[B, E]`.
fn embed_steps<B: Backend>(
    embedding: &Embedding<B>,
    tokens: &Tensor<B, 2, Int>,
) -> Vec<Tensor<B, 2>> {
    let [batch, steps] = tokens.dims();
    (0..steps)
        .map(|t| {
            let e = embedding.forward(tokens.clone().narrow(1, t, 1));
            let width = e.dims()[2];
            e.reshape([batch, width])
        })
        .collect()
}

/// Mean negative log-likelihood per real target of `logits` `[B, T, V]`.
fn token_nll<B: Backend>(logits: Tensor<B, 3>, batch: &Batch<B>) -> Tensor<B, 1> {
    let picked = log_softmax(logits, 2)
        .gather(2, batch.targets.clone().unsqueeze_dim(2))
        .squeeze_dim::<2>(2);
    (picked * batch.mask.clone())
        .sum()
        .neg()
        .div_scalar(batch.tokens.max(1) as f64)
}

/// `autoregressive`: embedding, stacked LSTM, linear head over the vocabulary.
#[derive(Module, Debug)]
pub struct CharRnn<B: Backend> {
    pub embedding: Embedding<B>,
    pub lstm: StackedLstm<B>,
    pub head: Linear<B>,
}

impl<B: Backend> CharRnn<B> {
    pub fn new(
        vocab: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        CharRnn {
            embedding: EmbeddingConfig::new(vocab, hidden).init(device),
            lstm: StackedLstm::new(hidden, hidden, layers, dropout, device),
            head: LinearConfig::new(hidden, vocab).init(device),
        }
    }
}

impl<B: Backend> SmilesModel<B> for CharRnn<B> {
    fn loss(&self, batch: &Batch<B>, _kl_beta: f64) -> Loss<B> {
        let device = batch.inputs.device();
        let x = embed_steps(&self.embedding, &batch.inputs);
        let (y, _) = self.lstm.forward(
            x,
            self.lstm.zero_state(batch.size(), &device),
            &mut Noise::Lstm.rng(batch.seed),
        );
        let nll = token_nll(self.head.forward(Tensor::stack(y, 1)), batch);
        Loss {
            total: nll.clone(),
            reconstruction: nll,
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
        one_token_at_a_time(self, n, max_tokens, temperature, rng, device)
    }
}

impl<B: Backend> Recurrent<B> for CharRnn<B> {
    fn start(
        &self,
        n: usize,
        _rng: &mut Rng,
        device: &B::Device,
    ) -> (LstmState<B>, Option<Tensor<B, 2>>) {
        (self.lstm.zero_state(n, device), None)
    }

    fn step(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: LstmState<B>,
        _latent: Option<&Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, LstmState<B>) {
        let (mut y, state) =
            self.lstm
                .forward(embed_steps(&self.embedding, &tokens), state, &mut None);
        (self.head.forward(y.remove(0)), state)
    }
}

/// `vae`: an LSTM encoder reads the SMILES to the mean and log-variance of `z`; an LSTM decoder,
/// started from `z` and fed `z` at every step, reconstructs it with teacher forcing.
#[derive(Module, Debug)]
pub struct SmilesVae<B: Backend> {
    pub embedding: Embedding<B>,
    pub encoder: StackedLstm<B>,
    pub to_mean: Linear<B>,
    pub to_log_var: Linear<B>,
    pub latent_to_hidden: Linear<B>,
    pub decoder: StackedLstm<B>,
    pub head: Linear<B>,
}

impl<B: Backend> SmilesVae<B> {
    pub fn new(
        vocab: usize,
        hidden: usize,
        latent: usize,
        layers: usize,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        SmilesVae {
            embedding: EmbeddingConfig::new(vocab, hidden).init(device),
            encoder: StackedLstm::new(hidden, hidden, layers, dropout, device),
            to_mean: LinearConfig::new(hidden, latent).init(device),
            to_log_var: log_var_head(hidden, latent, device),
            latent_to_hidden: LinearConfig::new(latent, hidden).init(device),
            decoder: StackedLstm::new(hidden + latent, hidden, layers, dropout, device),
            head: LinearConfig::new(hidden, vocab).init(device),
        }
    }

    fn latent_decoder(&self) -> LatentDecoder<'_, B> {
        LatentDecoder {
            embedding: &self.embedding,
            latent_to_hidden: &self.latent_to_hidden,
            decoder: &self.decoder,
            head: &self.head,
        }
    }

    /// The mean and log-variance of `z` `[B, latent]` for each molecule of `batch`: the
    /// encoder's output at its `<eos>`.
    pub fn encode(&self, batch: &Batch<B>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let device = batch.inputs.device();
        let n = batch.size();
        let x = embed_steps(&self.embedding, &batch.targets);
        let (y, _) = self.encoder.forward(
            x,
            self.encoder.zero_state(n, &device),
            &mut Noise::Lstm.rng(batch.seed),
        );
        let y: Tensor<B, 3> = Tensor::stack(y, 1);
        // The encoder's output at each sequence's `<eos>`.
        let [_, steps, hidden] = y.dims();
        let mut last = vec![0f32; n * steps];
        for (row, &len) in batch.lengths.iter().enumerate() {
            last[row * steps + len - 1] = 1.0;
        }
        let pick: Tensor<B, 3> =
            Tensor::<B, 2>::from_data(TensorData::new(last, [n, steps]), &device).unsqueeze_dim(2);
        let summary = (y * pick).sum_dim(1).reshape([n, hidden]);
        (
            self.to_mean.forward(summary.clone()),
            self.to_log_var.forward(summary),
        )
    }
}

/// The starting log-variance of every code dimension: `exp(-4 / 2)`, a standard deviation of
/// 0.14. Started at 0 (a standard deviation of 1), the reparameterisation noise drowns the
/// encoder's small early means, the decoder learns to ignore `z`, and the code collapses: on the
/// default experiment's `vae` after 8 epochs (kl_weight 0.0014), the code carried 11 nats from 0
/// and 15.5 from -4, and the validation loss was 0.58 against 0.52 (README, "Training").
const INITIAL_LOG_VAR: f64 = -4.0;

/// The linear layer from an encoder's summary to the log-variance of `z`: Burn's initial
/// weights, and every bias at [`INITIAL_LOG_VAR`].
pub(crate) fn log_var_head<B: Backend>(
    input: usize,
    latent: usize,
    device: &B::Device,
) -> Linear<B> {
    let mut head = LinearConfig::new(input, latent).init(device);
    head.bias = Some(Param::from_tensor(Tensor::full(
        [latent],
        INITIAL_LOG_VAR,
        device,
    )));
    head
}

/// The decoder both VAEs share (`vae`, `gnn`): an LSTM started from `tanh(W z)` and fed `z`
/// beside each token, borrowed from the model's own fields so its weights keep their names.
pub(crate) struct LatentDecoder<'a, B: Backend> {
    pub embedding: &'a Embedding<B>,
    pub latent_to_hidden: &'a Linear<B>,
    pub decoder: &'a StackedLstm<B>,
    pub head: &'a Linear<B>,
}

impl<B: Backend> LatentDecoder<'_, B> {
    /// The decoder's starting state: `tanh(W z)` as every layer's hidden state, zero cells.
    fn state(&self, z: &Tensor<B, 2>) -> LstmState<B> {
        let [n, _] = z.dims();
        let mut state = self.decoder.zero_state(n, &z.device());
        let h = self.latent_to_hidden.forward(z.clone()).tanh();
        for layer in state.hidden.iter_mut() {
            *layer = h.clone();
        }
        state
    }

    /// Decoder outputs `[B, T, H]` for `tokens` `[B, T]`, each step fed `z` beside its token;
    /// dropout (training only) from `noise`.
    fn decode(
        &self,
        tokens: &Tensor<B, 2, Int>,
        z: &Tensor<B, 2>,
        state: LstmState<B>,
        noise: &mut NoiseRng,
    ) -> (Tensor<B, 3>, LstmState<B>) {
        let x = embed_steps(self.embedding, tokens)
            .into_iter()
            .map(|e| Tensor::cat(vec![e, z.clone()], 1))
            .collect();
        let (y, state) = self.decoder.forward(x, state, noise);
        (Tensor::stack(y, 1), state)
    }

    /// The VAE loss once an encoder has given `z`'s `mean` and `log_var` for `batch`: `z` drawn
    /// by reparameterisation, reconstruction with teacher forcing, plus `kl_beta` times KL.
    pub fn loss(
        &self,
        batch: &Batch<B>,
        mean: Tensor<B, 2>,
        log_var: Tensor<B, 2>,
        kl_beta: f64,
    ) -> Loss<B> {
        let n = batch.size();
        let noise = standard_normal(
            mean.dims(),
            &mut Noise::Latent.rng(batch.seed),
            &mean.device(),
        );
        let z = mean.clone() + noise * log_var.clone().mul_scalar(0.5).exp();
        let (y, _) = self.decode(
            &batch.inputs,
            &z,
            self.state(&z),
            &mut Noise::Decoder.rng(batch.seed),
        );
        let reconstruction = token_nll(self.head.forward(y), batch);
        let kl = (log_var.clone().add_scalar(1.0) - mean.powi_scalar(2) - log_var.exp())
            .sum()
            .mul_scalar(-0.5 / n as f64);
        Loss {
            total: reconstruction.clone() + kl.clone().mul_scalar(kl_beta),
            reconstruction,
            kl: Some(kl),
        }
    }

    /// The SMILES tokens of each code of `z` `[n, latent]`, the likeliest token at each step.
    pub fn greedy(&self, z: Tensor<B, 2>, max_tokens: usize) -> Vec<Vec<u32>> {
        let [n, _] = z.dims();
        let device = z.device();
        decode_tokens(
            self,
            self.state(&z),
            Some(z),
            n,
            max_tokens,
            &device,
            |logits| likeliest_token(logits, Ends::Eos),
        )
    }
}

impl<B: Backend> Recurrent<B> for LatentDecoder<'_, B> {
    /// Sampling starts from `z` drawn from the prior, with `rng`.
    fn start(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &B::Device,
    ) -> (LstmState<B>, Option<Tensor<B, 2>>) {
        let latent = self.latent_to_hidden.weight.dims()[0];
        let z = standard_normal([n, latent], &mut Some(Rng::new(rng.next_u64())), device);
        (self.state(&z), Some(z))
    }

    fn step(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: LstmState<B>,
        latent: Option<&Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, LstmState<B>) {
        let z = latent.expect("a VAE samples from a latent code");
        let (y, state) = self.decode(&tokens, z, state, &mut None);
        let [n, _, hidden] = y.dims();
        (self.head.forward(y.reshape([n, hidden])), state)
    }
}

impl<B: Backend> SmilesModel<B> for SmilesVae<B> {
    fn loss(&self, batch: &Batch<B>, kl_beta: f64) -> Loss<B> {
        let (mean, log_var) = self.encode(batch);
        self.latent_decoder().loss(batch, mean, log_var, kl_beta)
    }

    fn reconstruct(&self, batch: &Batch<B>, max_tokens: usize) -> Option<Vec<Vec<u32>>> {
        let (mean, _) = self.encode(batch);
        Some(self.latent_decoder().greedy(mean, max_tokens))
    }

    fn draw(
        &self,
        n: usize,
        max_tokens: usize,
        temperature: f64,
        rng: &mut Rng,
        device: &B::Device,
    ) -> Vec<Vec<u32>> {
        one_token_at_a_time(self, n, max_tokens, temperature, rng, device)
    }
}

impl<B: Backend> Recurrent<B> for SmilesVae<B> {
    fn start(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &B::Device,
    ) -> (LstmState<B>, Option<Tensor<B, 2>>) {
        self.latent_decoder().start(n, rng, device)
    }

    fn step(
        &self,
        tokens: Tensor<B, 2, Int>,
        state: LstmState<B>,
        latent: Option<&Tensor<B, 2>>,
    ) -> (Tensor<B, 2>, LstmState<B>) {
        self.latent_decoder().step(tokens, state, latent)
    }
}
