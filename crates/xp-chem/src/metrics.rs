//! Generation metrics with MOSES's definitions (moses/metrics/metrics.py): validity, unique@k,
//! novelty, internal diversity (IntDiv1, IntDiv2) and similarity to a nearest neighbour (SNN),
//! on Morgan fingerprints of radius 2 folded to 1024 bits. Parallel on all cores.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::molecule::{Fingerprint, Molecule};

const RADIUS: u32 = 2;
const BITS: u32 = 1024;

/// The metrics of a set of generated SMILES. `None` where the input does not allow the metric
/// (no valid molecule; no training or reference set given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationMetrics {
    /// Generated SMILES.
    pub count: usize,
    /// Share of generated SMILES that are valid molecules.
    pub validity: f64,
    /// Share of distinct canonical SMILES among the first 1,000 valid molecules.
    pub unique_at_1k: Option<f64>,
    /// Share of distinct canonical SMILES among the first 10,000 valid molecules.
    pub unique_at_10k: Option<f64>,
    /// Share of distinct valid molecules not in the training set.
    pub novelty: Option<f64>,
    /// 1 - mean pairwise Tanimoto similarity of the valid molecules.
    pub int_div1: Option<f64>,
    /// 1 - root mean square pairwise Tanimoto similarity.
    pub int_div2: Option<f64>,
    /// Mean, over valid molecules, of the highest Tanimoto similarity to the reference set.
    pub snn: Option<f64>,
}

/// Canonical SMILES and fingerprint of each input that is valid (input order kept).
fn prepare(smiles: &[&str]) -> Vec<Option<(String, Fingerprint)>> {
    smiles
        .par_iter()
        .map(|s| {
            let mol = Molecule::parse(s).ok()?;
            Some((
                mol.canonical_smiles().ok()?,
                mol.morgan_fingerprint(RADIUS, BITS).ok()?,
            ))
        })
        .collect()
}

/// Canonical SMILES of the valid inputs: the training set as novelty compares against it.
pub fn canonical_set(smiles: &[&str]) -> HashSet<String> {
    smiles
        .par_iter()
        .filter_map(|s| Molecule::parse(s).ok()?.canonical_smiles().ok())
        .collect()
}

/// Fingerprints of the valid inputs: the reference set of SNN.
pub fn fingerprints(smiles: &[&str]) -> Vec<Fingerprint> {
    smiles
        .par_iter()
        .filter_map(|s| {
            Molecule::parse(s)
                .ok()?
                .morgan_fingerprint(RADIUS, BITS)
                .ok()
        })
        .collect()
}

fn unique_at(canonical: &[&str], k: usize) -> Option<f64> {
    let first = &canonical[..canonical.len().min(k)];
    if first.is_empty() {
        return None;
    }
    let distinct: HashSet<&&str> = first.iter().collect();
    Some(distinct.len() as f64 / first.len() as f64)
}

/// MOSES's `internal_diversity`: over all ordered pairs, the molecule with itself included.
fn internal_diversity(fps: &[Fingerprint], p: i32) -> Option<f64> {
    if fps.is_empty() {
        return None;
    }
    let total: f64 = fps
        .par_iter()
        .map(|a| fps.iter().map(|b| a.tanimoto(b).powi(p)).sum::<f64>())
        .sum();
    let mean = total / (fps.len() as f64 * fps.len() as f64);
    Some(1.0 - mean.powf(1.0 / f64::from(p)))
}

/// The metrics of `generated`, with novelty against `train` (canonical SMILES, see
/// [`canonical_set`]) and SNN against `reference` fingerprints, when given.
pub fn generation_metrics(
    generated: &[&str],
    train: Option<&HashSet<String>>,
    reference: Option<&[Fingerprint]>,
) -> GenerationMetrics {
    let prepared = prepare(generated);
    let valid: Vec<&(String, Fingerprint)> = prepared.iter().flatten().collect();
    let canonical: Vec<&str> = valid.iter().map(|(s, _)| s.as_str()).collect();
    let fps: Vec<Fingerprint> = valid.iter().map(|(_, f)| f.clone()).collect();
    let distinct: HashSet<&str> = canonical.iter().copied().collect();
    let novelty = train.filter(|_| !distinct.is_empty()).map(|train| {
        distinct.iter().filter(|s| !train.contains(**s)).count() as f64 / distinct.len() as f64
    });
    let snn = reference
        .filter(|r| !r.is_empty() && !fps.is_empty())
        .map(|reference| {
            let total: f64 = fps
                .par_iter()
                .map(|a| reference.iter().map(|b| a.tanimoto(b)).fold(0.0, f64::max))
                .sum();
            total / fps.len() as f64
        });
    GenerationMetrics {
        count: generated.len(),
        validity: if generated.is_empty() {
            0.0
        } else {
            valid.len() as f64 / generated.len() as f64
        },
        unique_at_1k: unique_at(&canonical, 1_000),
        unique_at_10k: unique_at(&canonical, 10_000),
        novelty,
        int_div1: internal_diversity(&fps, 1),
        int_div2: internal_diversity(&fps, 2),
        snn,
    }
}
