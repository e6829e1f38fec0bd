//! Molecules behind our own small API, on cosmolkit (RDKit-identical validity, canonical SMILES
//! and Morgan bits), so the engine can be swapped without touching callers.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cosmolkit::{MorganFingerprintParams, MorganGeneratorParams, SmilesWriteParams};

use crate::detached;
use crate::invalid::{InvalidKind, classify};

/// Longest SMILES accepted. The engine's cost grows about cubically with molecule size (a
/// 2,000-atom chain takes seconds); drug-like molecules are far below this.
pub const MAX_SMILES_LEN: usize = 500;

/// Why a SMILES is not a valid molecule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChemError {
    #[error("empty SMILES")]
    Empty,
    #[error(
        "SMILES of {len} characters is longer than the {MAX_SMILES_LEN} accepted (the chemistry engine slows down steeply with size)"
    )]
    TooLong { len: usize },
    /// Not a molecule; `kind` sorts the mistake, `reason` says it for people.
    #[error("invalid SMILES: {reason}")]
    Invalid { kind: InvalidKind, reason: String },
    #[error("the chemistry engine failed on this SMILES ({0}); counted as invalid")]
    EnginePanic(String),
    /// Each SMILES tried, by its index in the input, with why it could not be drawn.
    #[error("none of the first {} SMILES is a valid molecule; nothing to draw", skipped.len())]
    NothingToDraw { skipped: Vec<(usize, ChemError)> },
    #[error("cannot draw: {0}")]
    Draw(String),
}

impl ChemError {
    /// The kind of mistake, for a SMILES that is not a molecule; `None` for drawing errors.
    pub fn invalid_kind(&self) -> Option<InvalidKind> {
        match self {
            ChemError::Empty => Some(InvalidKind::Empty),
            ChemError::TooLong { .. } => Some(InvalidKind::TooLong),
            ChemError::Invalid { kind, .. } => Some(*kind),
            ChemError::EnginePanic(_) => Some(InvalidKind::Other),
            ChemError::NothingToDraw { .. } | ChemError::Draw(_) => None,
        }
    }
}

/// A parsed, sanitized molecule.
pub struct Molecule {
    pub(crate) inner: cosmolkit::Molecule,
}

/// A folded Morgan fingerprint as a dense bit set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    words: Vec<u64>,
}

/// The on-bits of an engine fingerprint as dense words: at least `n_bits` bits, more if a bit
/// lies beyond.
pub(crate) fn bit_words(fingerprint: &cosmolkit::Fingerprint, n_bits: u32) -> Vec<u64> {
    let mut words = vec![0u64; (n_bits as usize).div_ceil(64)];
    for bit in fingerprint.on_bits() {
        let word = bit as usize / 64;
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        words[word] |= 1 << (bit % 64);
    }
    words
}

/// Runs `f`, turning a panic inside the engine into an error; either message is made printable.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, ChemError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| ChemError::Invalid {
            kind: InvalidKind::Other,
            reason: printable(&e),
        }),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            Err(ChemError::EnginePanic(printable(&what)))
        }
    }
}

/// `text` with control characters escaped (`\u{0}`, `\r`): the engine quotes the offending
/// character of the input, and a NUL or a carriage return printed raw is invisible or garbles the
/// terminal.
fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

impl Molecule {
    /// Parses and sanitizes `smiles` as RDKit's `MolFromSmiles` does.
    pub fn parse(smiles: &str) -> Result<Self, ChemError> {
        check_size(smiles)?;
        guarded(|| cosmolkit::Molecule::from_smiles(smiles).map_err(|e| e.to_string()))
            .map(|inner| Molecule { inner })
            .map_err(|error| parse_error(smiles, error))
    }

    /// The canonical SMILES (RDKit's `MolToSmiles` defaults: isomeric, canonical).
    pub fn canonical_smiles(&self) -> Result<String, ChemError> {
        self.write_smiles(&SmilesWriteParams::default())
    }

    /// Canonical SMILES without isotopes and stereochemistry (`isomericSmiles=False`).
    pub fn canonical_smiles_without_stereo(&self) -> Result<String, ChemError> {
        self.write_smiles(&SmilesWriteParams {
            isomeric_smiles: false,
            ..SmilesWriteParams::default()
        })
    }

    fn write_smiles(&self, params: &SmilesWriteParams) -> Result<String, ChemError> {
        guarded(|| {
            let text = self
                .inner
                .to_smiles_with_params(params)
                .map_err(|e| e.to_string())?;
            String::from_utf8(text.as_ref().to_vec()).map_err(|e| e.to_string())
        })
    }

    /// The Bemis-Murcko scaffold as RDKit's `MurckoScaffold.GetScaffoldForMol` (which MOSES
    /// uses): ring systems and the linkers between them, with exocyclic double bonds kept. Empty
    /// for a molecule without rings.
    pub fn murcko_scaffold(&self) -> Result<Molecule, ChemError> {
        guarded(|| self.inner.murcko_decompose().map_err(|e| e.to_string()))
            .map(|inner| Molecule { inner })
    }

    /// The number of rings (RDKit's `RingInfo.NumRings`, the symmetrized SSSR).
    pub fn ring_count(&self) -> Result<usize, ChemError> {
        guarded(|| {
            self.inner
                .symmetrized_sssr()
                .map(|rings| rings.num_rings())
                .map_err(|e| e.to_string())
        })
    }

    /// The Morgan fingerprint of `radius` folded to `bits` bits (MOSES: radius 2, 1024 bits).
    pub fn morgan_fingerprint(&self, radius: u32, bits: u32) -> Result<Fingerprint, ChemError> {
        guarded(|| {
            let params = MorganFingerprintParams::from(MorganGeneratorParams {
                radius,
                fp_size: bits,
                ..MorganGeneratorParams::default()
            });
            let fp = self
                .inner
                .fingerprint_morgan_with_params(&params, None)
                .map_err(|e| e.to_string())?;
            Ok(Fingerprint {
                words: bit_words(&fp, bits),
            })
        })
    }
}

impl Molecule {
    /// A 2D depiction as a standalone SVG document of `width` x `height` pixels.
    pub fn to_svg(&self, width: u32, height: u32) -> Result<String, ChemError> {
        guarded(|| self.inner.to_svg(width, height).map_err(|e| e.to_string()))
    }
}

/// Rejects what the engine is not given: nothing, or a SMILES too long to parse quickly.
fn check_size(smiles: &str) -> Result<(), ChemError> {
    if smiles.is_empty() {
        return Err(ChemError::Empty);
    }
    if smiles.len() > MAX_SMILES_LEN {
        return Err(ChemError::TooLong { len: smiles.len() });
    }
    Ok(())
}

/// A parse failure sorted by kind, with a message for people (which may quote the input, control
/// characters and all).
fn parse_error(smiles: &str, error: ChemError) -> ChemError {
    match error {
        ChemError::Invalid { reason, .. } => {
            let (kind, reason) = classify(smiles, &reason);
            ChemError::Invalid {
                kind,
                reason: printable(&reason),
            }
        }
        other => other,
    }
}

/// Whether `smiles` is a valid molecule: the verdict of [`Molecule::parse`], without building
/// one.
pub fn is_valid(smiles: &str) -> bool {
    check_size(smiles).is_ok() && guarded(|| detached::sanitize(smiles)).is_ok()
}

/// The canonical SMILES of `smiles`, or why it has none: the answer of [`Molecule::parse`] and
/// [`Molecule::canonical_smiles`], without building a molecule and, for a SMILES with no stereo
/// marks, without perceiving stereochemistry (see `detached`): about 1.3x faster.
pub fn canonical_smiles(smiles: &str) -> Result<String, ChemError> {
    check_size(smiles)?;
    let molecule =
        guarded(|| detached::sanitize(smiles)).map_err(|error| parse_error(smiles, error))?;
    guarded(|| detached::canonical_smiles(&molecule))
}

impl Fingerprint {
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    pub(crate) fn from_words(words: Vec<u64>) -> Self {
        Fingerprint { words }
    }

    /// Tanimoto similarity: |a ∧ b| / |a ∨ b| (1 for two empty fingerprints, as RDKit).
    pub fn tanimoto(&self, other: &Fingerprint) -> f64 {
        let (mut both, mut either) = (0u32, 0u32);
        for (a, b) in self.words.iter().zip(&other.words) {
            both += (a & b).count_ones();
            either += (a | b).count_ones();
        }
        if either == 0 {
            1.0
        } else {
            f64::from(both) / f64::from(either)
        }
    }

    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
}
