//! MOSES's medicinal-chemistry filters (moses/metrics/utils.py, `mol_passes_filters`): the
//! MCF and PAINS substructure lists shipped with MOSES, plus its element, charge and ring-size
//! rules. The `Filters` metric is the share of valid generated molecules that pass.

use std::sync::OnceLock;

use cosmolkit::QueryGraph;

use crate::molecule::{ChemError, Molecule, bit_words, guarded};

/// MOSES's medicinal-chemistry filters (MCF), verbatim from molsets 0.3.1 (MIT, see LICENSE).
const MCF_CSV: &str = include_str!("../assets/moses/mcf.csv");
/// The PAINS filters as MOSES ships them (wehi_pains.csv, no header).
const PAINS_CSV: &str = include_str!("../assets/moses/wehi_pains.csv");

/// Elements MOSES allows: C, N, S, O, F, Cl, Br, H (by atomic number).
const ALLOWED_ELEMENTS: [u8; 8] = [6, 7, 16, 8, 9, 17, 35, 1];
/// Rings of this many atoms or more fail.
const MAX_RING_SIZE: usize = 8;

/// The SMARTS column of one of MOSES's filter files.
fn smarts_column(csv_text: &str, has_header: bool, column: usize) -> Vec<String> {
    csv::ReaderBuilder::new()
        .has_headers(has_header)
        .trim(csv::Trim::All)
        .from_reader(csv_text.as_bytes())
        .records()
        .map(|record| {
            let record = record.expect("the bundled filter files are valid CSV (a unit test)");
            record[column].to_owned()
        })
        .collect()
}

/// One filter: its query and its pattern fingerprint as a screen (RDKit's PatternFingerprint:
/// a molecule that matches the query has every bit of the query's fingerprint set).
struct Pattern {
    query: QueryGraph,
    screen: Option<Vec<u64>>,
}

/// Whether every bit of `screen` is set in `target`.
fn covered(screen: &[u64], target: &[u64]) -> bool {
    screen
        .iter()
        .enumerate()
        .all(|(i, w)| w & !target.get(i).copied().unwrap_or(0) == 0)
}

/// The compiled MCF and PAINS patterns, parsed once per process.
fn patterns() -> &'static [Pattern] {
    static PATTERNS: OnceLock<Vec<Pattern>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        smarts_column(MCF_CSV, true, 1)
            .into_iter()
            .chain(smarts_column(PAINS_CSV, false, 0))
            .map(|smarts| {
                let query = cosmolkit::parse_smarts(&smarts).unwrap_or_else(|e| {
                    panic!("bundled filter SMARTS {smarts:?} does not parse: {e} (a unit test)")
                });
                // Without a fingerprint the query is simply always tried.
                let screen = cosmolkit::fingerprint_pattern_query(&query)
                    .ok()
                    .map(|fp| bit_words(&fp, 0));
                Pattern { query, screen }
            })
            .collect()
    })
}

impl Molecule {
    /// Whether the molecule passes MOSES's filters: only C, N, S, O, F, Cl, Br and H, no formal
    /// charge, no ring of 8 or more atoms, no MCF or PAINS substructure (matched with explicit
    /// hydrogens, as MOSES does), and a SMILES that round-trips.
    pub fn passes_filters(&self) -> Result<bool, ChemError> {
        let atoms = self.inner.atoms();
        if atoms.iter().any(|a| a.formal_charge() != 0) {
            return Ok(false);
        }
        if atoms
            .iter()
            .any(|a| !ALLOWED_ELEMENTS.contains(&a.atomic_number()))
        {
            return Ok(false);
        }
        let large_ring = guarded(|| {
            let rings = self.inner.symmetrized_sssr().map_err(|e| e.to_string())?;
            Ok(rings
                .atom_rings()
                .iter()
                .any(|ring| ring.len() >= MAX_RING_SIZE))
        })?;
        if large_ring {
            return Ok(false);
        }
        let hit = guarded(|| {
            let with_h = self.inner.with_hydrogens().map_err(|e| e.to_string())?;
            let target = with_h
                .fingerprint_pattern()
                .ok()
                .map(|fp| bit_words(&fp, 0));
            for pattern in patterns() {
                if let (Some(screen), Some(target)) = (&pattern.screen, &target)
                    && !covered(screen, target)
                {
                    continue;
                }
                if with_h
                    .has_substruct_match(&pattern.query)
                    .map_err(|e| e.to_string())?
                {
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        if hit {
            return Ok(false);
        }
        let smiles = self.canonical_smiles_without_stereo()?;
        Ok(!smiles.is_empty() && Molecule::parse(&smiles).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_pattern_parses() {
        assert_eq!(smarts_column(MCF_CSV, true, 1).len(), 22);
        assert_eq!(smarts_column(PAINS_CSV, false, 0).len(), 480);
        assert_eq!(patterns().len(), 22 + 480);
        // Quoted fields keep their commas; PAINS fields lose the padding after the quote.
        assert_eq!(
            smarts_column(MCF_CSV, true, 1)[3],
            "[H]C([H])([#6])[F,Cl,Br,I]"
        );
        assert!(
            smarts_column(PAINS_CSV, false, 0)
                .iter()
                .all(|s| !s.ends_with(' ') && !s.starts_with('"'))
        );
    }
}
