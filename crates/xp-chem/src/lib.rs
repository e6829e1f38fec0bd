//! Chemistry for generative models of molecules written as SMILES. So far: the tokenizer and
//! the vocabulary models train on. Validity, canonical SMILES, generation metrics and molecule
//! images (on cosmolkit) follow.

mod tokenizer;
mod vocab;

pub use tokenizer::{Token, TokenizeError, tokenize};
pub use vocab::{BOS, EOS, Encoded, PAD, UNK, Vocabulary};
