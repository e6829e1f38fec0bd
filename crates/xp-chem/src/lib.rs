//! Chemistry for generative models of molecules written as SMILES: the tokenizer and vocabulary
//! models train on, RDKit-compatible validity and canonical SMILES (on cosmolkit), Morgan
//! fingerprints, and MOSES's generation metrics. Molecule images are still to come.

mod metrics;
mod molecule;
mod tokenizer;
mod vocab;

pub use metrics::{GenerationMetrics, canonical_set, fingerprints, generation_metrics};
pub use molecule::{ChemError, Fingerprint, MAX_SMILES_LEN, Molecule, canonical_smiles, is_valid};

pub use tokenizer::{Token, TokenizeError, tokenize};
pub use vocab::{BOS, EOS, Encoded, PAD, UNK, Vocabulary};
