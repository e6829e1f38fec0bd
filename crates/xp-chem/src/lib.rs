//! Chemistry for generative models of molecules written as SMILES: the tokenizer and vocabulary
//! models train on, RDKit-compatible validity and canonical SMILES (on cosmolkit), Morgan
//! fingerprints, MOSES's generation metrics and molecule grid images.
//!
//! Speed: parsing and writing SMILES allocate many small objects, and glibc's malloc takes about a
//! third of that time. A binary that sets a faster global allocator gains about 1.3x; `xtask`
//! uses `mimalloc` (with its `v2` feature).
//!
//! Ctrl-C: cosmolkit's substructure search (the filters, BRICS), as RDKit's, installs its own
//! SIGINT handler around every match and puts back the one it found. When matches run on several
//! threads at once, its own handler can be what is put back, and it stays: a Ctrl-C then only
//! cuts the running matches short (wrong Filters and Frag values) and never reaches the program's
//! handler. A program that handles Ctrl-C should block SIGINT in every thread and wait for it on
//! one (`sigwait` or a signalfd, as `xtask` does) rather than install a handler.

mod detached;
mod filters;
mod fragments;
mod graph;
mod grid;
mod invalid;
mod metrics;
mod molecule;
mod prepared;
mod tokenizer;
mod vocab;

pub use graph::{BondKind, GraphAtom, GraphBond, MolecularGraph};
pub use grid::{GridImage, GridOptions, grid_image};
pub use invalid::{InvalidCounts, InvalidKind};
pub use metrics::{
    GenerationMetrics, MetricEntry, ReferenceSet, canonical_set, generation_metrics, quick_metrics,
};
pub use molecule::{ChemError, Fingerprint, MAX_SMILES_LEN, Molecule, canonical_smiles, is_valid};
pub use prepared::{PreparedSets, PreparedSetsError};

pub use tokenizer::{Token, TokenizeError, tokenize};
pub use vocab::{BOS, EOS, Encoded, PAD, UNK, Vocabulary};
