//! A stacked LSTM with PyTorch's parameter layout (`weight_ih` [4H, in], `weight_hh` [4H, H],
//! two biases, gates in the order input, forget, cell, output), so saved weights load into
//! `torch.nn.LSTM` by renaming only. Unlike `burn::nn::Lstm` (eight matmuls and a
//! `slice_assign` per step), each step is one `[B, in + H] x [in + H, 4H]` product, and time
//! steps travel as separate tensors so the backward pass stays linear in sequence length.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Int, Tensor};

use crate::rng::{NoiseRng, dropout};

/// One LSTM layer.
#[derive(Module, Debug)]
pub struct LstmLayer<B: Backend> {
    pub weight_ih: Param<Tensor<B, 2>>,
    pub weight_hh: Param<Tensor<B, 2>>,
    pub bias_ih: Param<Tensor<B, 1>>,
    pub bias_hh: Param<Tensor<B, 1>>,
}

/// One layer's `(hidden, cell)` state, each `[B, H]`.
type LayerState<B> = (Tensor<B, 2>, Tensor<B, 2>);

/// Hidden and cell state of every layer, each `[batch, hidden]`.
#[derive(Debug, Clone)]
pub struct LstmState<B: Backend> {
    pub hidden: Vec<Tensor<B, 2>>,
    pub cell: Vec<Tensor<B, 2>>,
}

impl<B: Backend> LstmState<B> {
    /// The state of the sequences `rows` only, in that order.
    pub fn select(self, rows: Tensor<B, 1, Int>) -> Self {
        let pick = |tensors: Vec<Tensor<B, 2>>| {
            tensors
                .into_iter()
                .map(|t| t.select(0, rows.clone()))
                .collect()
        };
        LstmState {
            hidden: pick(self.hidden),
            cell: pick(self.cell),
        }
    }
}

impl<B: Backend> LstmLayer<B> {
    /// PyTorch's initialisation: every parameter uniform in ±1/sqrt(hidden).
    pub fn new(input: usize, hidden: usize, device: &B::Device) -> Self {
        let k = 1.0 / (hidden as f64).sqrt();
        let uniform = Distribution::Uniform(-k, k);
        LstmLayer {
            weight_ih: Param::from_tensor(Tensor::random([4 * hidden, input], uniform, device)),
            weight_hh: Param::from_tensor(Tensor::random([4 * hidden, hidden], uniform, device)),
            bias_ih: Param::from_tensor(Tensor::random([4 * hidden], uniform, device)),
            bias_hh: Param::from_tensor(Tensor::random([4 * hidden], uniform, device)),
        }
    }

    fn hidden_size(&self) -> usize {
        self.weight_hh.dims()[1]
    }

    /// Runs the layer over the time steps `inputs` (each `[B, in]`) from state `(h, c)`.
    ///
    /// Steps are kept as separate tensors: slicing one `[B, T, *]` tensor per step would make
    /// the backward pass build a full-size gradient for every slice (quadratic in T).
    fn forward(
        &self,
        inputs: Vec<Tensor<B, 2>>,
        (mut h, mut c): LayerState<B>,
    ) -> (Vec<Tensor<B, 2>>, LayerState<B>) {
        // One [in + H, 4H] weight: each step is a single matmul of [x_t, h_{t-1}].
        let weight = Tensor::cat(vec![self.weight_ih.val(), self.weight_hh.val()], 1).transpose();
        let bias = (self.bias_ih.val() + self.bias_hh.val()).unsqueeze::<2>();
        let mut outputs = Vec::with_capacity(inputs.len());
        for x in inputs {
            let gates = Tensor::cat(vec![x, h], 1).matmul(weight.clone()) + bias.clone();
            let [i, f, g, o]: [Tensor<B, 2>; 4] = gates
                .chunk(4, 1)
                .try_into()
                .expect("four gates of equal width");
            c = sigmoid(f) * c + sigmoid(i) * g.tanh();
            h = sigmoid(o) * c.clone().tanh();
            outputs.push(h.clone());
        }
        (outputs, (h, c))
    }
}

/// `num_layers` LSTM layers with dropout between them (not after the last), as `torch.nn.LSTM`.
#[derive(Module, Debug)]
pub struct StackedLstm<B: Backend> {
    pub layers: Vec<LstmLayer<B>>,
    dropout: Dropout,
}

impl<B: Backend> StackedLstm<B> {
    pub fn new(
        input: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
        device: &B::Device,
    ) -> Self {
        StackedLstm {
            layers: (0..layers)
                .map(|l| LstmLayer::new(if l == 0 { input } else { hidden }, hidden, device))
                .collect(),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.layers[0].hidden_size()
    }

    /// A zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize, device: &B::Device) -> LstmState<B> {
        let zeros = || {
            (0..self.layers.len())
                .map(|_| Tensor::zeros([batch, self.hidden_size()], device))
                .collect()
        };
        LstmState {
            hidden: zeros(),
            cell: zeros(),
        }
    }

    /// Runs every layer over the time steps `inputs` (each `[B, in]`); returns the top layer's
    /// output at each step (`[B, H]`) and the final state. Dropout (training only) draws its
    /// masks from `noise`, or from the backend's generator when that is `None`.
    pub fn forward(
        &self,
        inputs: Vec<Tensor<B, 2>>,
        state: LstmState<B>,
        noise: &mut NoiseRng,
    ) -> (Vec<Tensor<B, 2>>, LstmState<B>) {
        let mut x = inputs;
        let mut out = LstmState {
            hidden: Vec::with_capacity(self.layers.len()),
            cell: Vec::with_capacity(self.layers.len()),
        };
        let last = self.layers.len() - 1;
        for (l, ((layer, h), c)) in self
            .layers
            .iter()
            .zip(state.hidden)
            .zip(state.cell)
            .enumerate()
        {
            let (y, (h, c)) = layer.forward(x, (h, c));
            out.hidden.push(h);
            out.cell.push(c);
            x = if l < last {
                y.into_iter()
                    .map(|t| dropout(&self.dropout, t, noise))
                    .collect()
            } else {
                y
            };
        }
        (x, out)
    }
}
