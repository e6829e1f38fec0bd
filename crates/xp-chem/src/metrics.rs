//! Generation metrics with MOSES's definitions (moses/metrics/metrics.py): validity, unique@k,
//! novelty, internal diversity (IntDiv1, IntDiv2), similarity to a nearest neighbour (SNN, on
//! Morgan fingerprints of radius 2 folded to 1024 bits), fragment and scaffold similarity (Frag,
//! Scaf) and the share passing MOSES's filters. Parallel on all cores.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidCounts, InvalidKind};
use crate::molecule::{ChemError, Fingerprint, Molecule, canonical_smiles};

const RADIUS: u32 = 2;
pub(crate) const BITS: u32 = 1024;

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
    /// Cosine similarity of the BRICS fragment counts of the valid molecules and of the reference
    /// set.
    pub frag: Option<f64>,
    /// Cosine similarity of the Bemis-Murcko scaffold counts (scaffolds of two rings or more) of
    /// the valid molecules and of the reference set.
    pub scaf: Option<f64>,
    /// Share of valid molecules passing MOSES's filters (see [`Molecule::passes_filters`]).
    pub filters: Option<f64>,
    /// The invalid SMILES by kind of mistake (`count` = valid + `invalid.total()`).
    #[serde(default)]
    pub invalid: InvalidCounts,
}

/// One optional metric: its field name (as serialised), MOSES's label and its value.
pub struct MetricEntry {
    pub key: &'static str,
    pub label: &'static str,
    pub value: Option<f64>,
}

impl GenerationMetrics {
    /// The metrics after validity, in MOSES's order, for tables and logs.
    pub fn entries(&self) -> Vec<MetricEntry> {
        let entry = |key, label, value| MetricEntry { key, label, value };
        vec![
            entry("unique_at_1k", "unique@1k", self.unique_at_1k),
            entry("unique_at_10k", "unique@10k", self.unique_at_10k),
            entry("novelty", "Novelty", self.novelty),
            entry("int_div1", "IntDiv1", self.int_div1),
            entry("int_div2", "IntDiv2", self.int_div2),
            entry("snn", "SNN", self.snn),
            entry("frag", "Frag", self.frag),
            entry("scaf", "Scaf", self.scaf),
            entry("filters", "Filters", self.filters),
        ]
    }
}

/// What MOSES computes per valid molecule. Validity is parsing and a canonical SMILES; should
/// the engine fail on one of the other computations, the molecule stays valid and only that
/// metric leaves it out.
struct Features {
    canonical: String,
    fingerprint: Option<Fingerprint>,
    fragments: Option<Vec<String>>,
    scaffold: Option<Option<String>>,
    passes_filters: Option<bool>,
}

/// Fewer rings than this and MOSES does not count the scaffold (`compute_scaffold`, min_rings=2).
const MIN_SCAFFOLD_RINGS: usize = 2;

/// MOSES's `compute_scaffold`: the Murcko scaffold's canonical SMILES, if it has two rings or
/// more.
fn scaffold(mol: &Molecule) -> Result<Option<String>, ChemError> {
    let scaffold = mol.murcko_scaffold()?;
    let smiles = scaffold.canonical_smiles()?;
    Ok((!smiles.is_empty() && scaffold.ring_count()? >= MIN_SCAFFOLD_RINGS).then_some(smiles))
}

/// Which per-molecule features a call needs: BRICS fragments, scaffolds and the filters take
/// most of the time (about 1.5, 0.3 and 2 ms a molecule against 0.25 ms for parsing and the
/// canonical SMILES), so they are computed only where a metric uses them.
#[derive(Clone, Copy)]
struct Needs {
    /// Fragments and scaffolds, for Frag and Scaf (only with a reference set).
    reference_counts: bool,
    filters: bool,
}

/// The features of each input that is valid, or the kind of mistake (input order kept).
fn prepare(smiles: &[&str], needs: Needs) -> Vec<Result<Features, InvalidKind>> {
    let kind = |e: ChemError| e.invalid_kind().unwrap_or(InvalidKind::Other);
    smiles
        .par_iter()
        .map(|s| {
            let mol = Molecule::parse(s).map_err(kind)?;
            let counts = needs.reference_counts;
            Ok(Features {
                canonical: mol.canonical_smiles().map_err(kind)?,
                fingerprint: mol.morgan_fingerprint(RADIUS, BITS).ok(),
                fragments: counts.then(|| mol.brics_fragments().ok()).flatten(),
                scaffold: counts.then(|| scaffold(&mol).ok()).flatten(),
                passes_filters: needs.filters.then(|| mol.passes_filters().ok()).flatten(),
            })
        })
        .collect()
}

/// The set generated molecules are compared with (MOSES: its test set): fingerprints for SNN,
/// fragment counts for Frag and scaffold counts for Scaf, computed once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferenceSet {
    pub(crate) fingerprints: Vec<Fingerprint>,
    pub(crate) fragments: HashMap<String, usize>,
    pub(crate) scaffolds: HashMap<String, usize>,
}

fn count<I: IntoIterator<Item = String>>(counts: &mut HashMap<String, usize>, items: I) {
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
}

impl ReferenceSet {
    /// The reference features of the valid molecules among `smiles` (invalid ones are skipped;
    /// should the engine fail on one feature of a molecule, only that feature is left out).
    pub fn new(smiles: &[&str]) -> Self {
        type Parts = (Option<Fingerprint>, Option<Vec<String>>, Option<String>);
        let features: Vec<Parts> = smiles
            .par_iter()
            .filter_map(|s| {
                let mol = Molecule::parse(s).ok()?;
                Some((
                    mol.morgan_fingerprint(RADIUS, BITS).ok(),
                    mol.brics_fragments().ok(),
                    scaffold(&mol).ok().flatten(),
                ))
            })
            .collect();
        let mut reference = ReferenceSet::default();
        for (fingerprint, fragments, scaffold) in features {
            reference.fingerprints.extend(fingerprint);
            count(&mut reference.fragments, fragments.into_iter().flatten());
            count(&mut reference.scaffolds, scaffold);
        }
        reference
    }

    /// The number of reference molecules with a fingerprint (all the valid ones, but for an
    /// engine failure).
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

/// MOSES's `cos_similarity` of two count vectors; `None` (MOSES: NaN) when either is empty.
fn cosine_similarity(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    // Exact integer sums: a map's order changes from run to run, and float sums of large counts
    // would then differ in their last bits. Two sets with nothing in common score +0.0.
    let norm = |m: &HashMap<String, usize>| m.values().map(|&v| (v as u128).pow(2)).sum::<u128>();
    let dot: u128 = a
        .iter()
        .filter_map(|(k, &v)| Some(v as u128 * *b.get(k)? as u128))
        .sum();
    Some(dot as f64 / (norm(a) as f64 * norm(b) as f64).sqrt())
}

/// Canonical SMILES of the valid inputs: the training set as novelty compares against it.
pub fn canonical_set(smiles: &[&str]) -> HashSet<String> {
    smiles
        .par_iter()
        .filter_map(|s| canonical_smiles(s).ok())
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

/// Words of a fingerprint folded to [`BITS`] bits.
const WORDS: usize = BITS as usize / 64;

/// A [`BITS`]-bit fingerprint laid out for the pair loops of SNN and IntDiv, which take most of
/// the metrics' time on large sets (30,000 generated against MOSES's 176,000 test molecules are
/// 5.3 billion pairs): words of a fixed count, which the compiler unrolls, and the bit count kept,
/// so a pair costs one popcount a word (|a ∪ b| = |a| + |b| - |a ∩ b|). Its similarity is
/// exactly [`Fingerprint::tanimoto`]'s (the same two integers divided).
#[derive(Clone, Copy)]
struct Packed {
    words: [u64; WORDS],
    ones: u32,
}

impl Packed {
    fn new(fingerprint: &Fingerprint) -> Self {
        // Every fingerprint here is folded to BITS bits (`morgan_fingerprint(RADIUS, BITS)`, or
        // read back from a prepared file, which checks the length).
        debug_assert_eq!(fingerprint.words().len(), WORDS);
        let mut words = [0; WORDS];
        for (word, &value) in words.iter_mut().zip(fingerprint.words()) {
            *word = value;
        }
        Packed {
            words,
            ones: words.iter().map(|w| w.count_ones()).sum(),
        }
    }

    /// Wrapping sums, which cannot wrap (at most 1024 bits each): the overflow checks of the
    /// debug build `cargo xtask` runs would keep the word loop from being unrolled (4x slower).
    #[inline(always)]
    fn tanimoto(&self, other: &Packed) -> f64 {
        let both = self
            .words
            .iter()
            .zip(&other.words)
            .fold(0u32, |n, (a, b)| n.wrapping_add((a & b).count_ones()));
        let either = self.ones.wrapping_add(other.ones).wrapping_sub(both);
        if either == 0 {
            1.0
        } else {
            f64::from(both) / f64::from(either)
        }
    }
}

// The pair loops run through `pulp::Arch::dispatch`, which compiles them once more for the CPU's
// best instruction set and picks at run time: with the POPCNT instruction (absent from the
// baseline x86-64 that builds target), a pair of 1024-bit fingerprints took 4.0 ns instead of
// 11.5, and 42 before `Packed` (one core, the debug build `cargo xtask` runs), without building
// the whole program for newer CPUs only.

/// The highest similarity of `query` to any fingerprint of `reference` (SNN's term).
struct Nearest<'a> {
    query: &'a Packed,
    reference: &'a [Packed],
}

impl pulp::WithSimd for Nearest<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
        self.reference
            .iter()
            .map(|other| self.query.tanimoto(other))
            .fold(0.0, f64::max)
    }
}

/// The sum of the similarities of `query` to each of `others`, and the sum of their squares.
struct SimilaritySums<'a> {
    query: &'a Packed,
    others: &'a [Packed],
}

impl pulp::WithSimd for SimilaritySums<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> (f64, f64) {
        self.others.iter().fold((0.0, 0.0), |(s, s2), other| {
            let t = self.query.tanimoto(other);
            (s + t, s2 + t * t)
        })
    }
}

/// Terms per parallel task in [`ordered_sum`].
const SUM_CHUNK: usize = 64;

/// The sums of `term(0) .. term(n - 1)`, computed in parallel but always added in the same
/// order: rayon's own `sum` splits the work by the number of threads and by stealing, and a
/// float sum's last bits depend on its order, so SNN and IntDiv would differ between machines.
fn ordered_sum(n: usize, term: impl Fn(usize) -> (f64, f64) + Sync) -> (f64, f64) {
    let add = |x: (f64, f64), y: (f64, f64)| (x.0 + y.0, x.1 + y.1);
    let chunks: Vec<(f64, f64)> = (0..n.div_ceil(SUM_CHUNK))
        .into_par_iter()
        .map(|c| {
            (c * SUM_CHUNK..n.min((c + 1) * SUM_CHUNK))
                .map(&term)
                .fold((0.0, 0.0), add)
        })
        .collect();
    chunks.into_iter().fold((0.0, 0.0), add)
}

/// MOSES's `internal_diversity` for p = 1 and p = 2 (IntDiv1, IntDiv2): over all ordered pairs,
/// each molecule with itself included. Tanimoto is symmetric and 1 on the diagonal, so one pass
/// over the pairs i < j gives both.
fn internal_diversity(fps: &[Packed], arch: pulp::Arch) -> Option<(f64, f64)> {
    if fps.is_empty() {
        return None;
    }
    let (sum, sum_sq) = ordered_sum(fps.len(), |i| {
        arch.dispatch(SimilaritySums {
            query: &fps[i],
            others: &fps[i + 1..],
        })
    });
    let n = fps.len() as f64;
    let pairs = n * n;
    let mean = (n + 2.0 * sum) / pairs;
    let mean_sq = (n + 2.0 * sum_sq) / pairs;
    Some((1.0 - mean, 1.0 - mean_sq.sqrt()))
}

/// The metrics of `generated`, with novelty against `train` (canonical SMILES, see
/// [`canonical_set`]) and SNN, Frag and Scaf against `reference`, when given.
pub fn generation_metrics(
    generated: &[&str],
    train: Option<&HashSet<String>>,
    reference: Option<&ReferenceSet>,
) -> GenerationMetrics {
    let needs = Needs {
        reference_counts: reference.is_some(),
        filters: true,
    };
    metrics_of(generated, train, reference, needs)
}

/// The metrics cheap enough to watch every epoch: validity, unique@k, novelty against `train`
/// and IntDiv, about a tenth of [`generation_metrics`]'s time. SNN, Frag, Scaf and Filters are
/// left `None`.
pub fn quick_metrics(generated: &[&str], train: Option<&HashSet<String>>) -> GenerationMetrics {
    let needs = Needs {
        reference_counts: false,
        filters: false,
    };
    metrics_of(generated, train, None, needs)
}

fn metrics_of(
    generated: &[&str],
    train: Option<&HashSet<String>>,
    reference: Option<&ReferenceSet>,
    needs: Needs,
) -> GenerationMetrics {
    let prepared = prepare(generated, needs);
    let mut invalid = InvalidCounts::default();
    let mut valid: Vec<&Features> = Vec::with_capacity(prepared.len());
    for features in &prepared {
        match features {
            Ok(features) => valid.push(features),
            Err(kind) => invalid.add(*kind),
        }
    }
    let canonical: Vec<&str> = valid.iter().map(|f| f.canonical.as_str()).collect();
    let fps: Vec<Fingerprint> = valid.iter().filter_map(|f| f.fingerprint.clone()).collect();
    let (mut fragments, mut scaffolds) = (HashMap::new(), HashMap::new());
    for f in &valid {
        count(&mut fragments, f.fragments.iter().flatten().cloned());
        count(&mut scaffolds, f.scaffold.clone().flatten());
    }
    let distinct: HashSet<&str> = canonical.iter().copied().collect();
    let novelty = train.filter(|_| !distinct.is_empty()).map(|train| {
        distinct.iter().filter(|s| !train.contains(**s)).count() as f64 / distinct.len() as f64
    });
    let arch = pulp::Arch::new();
    let fps: Vec<Packed> = fps.iter().map(Packed::new).collect();
    let snn = reference
        .filter(|r| !r.is_empty() && !fps.is_empty())
        .map(|reference| {
            let reference: Vec<Packed> = reference.fingerprints.iter().map(Packed::new).collect();
            let (total, _) = ordered_sum(fps.len(), |i| {
                let nearest = arch.dispatch(Nearest {
                    query: &fps[i],
                    reference: &reference,
                });
                (nearest, 0.0)
            });
            total / fps.len() as f64
        });
    let int_div = internal_diversity(&fps, arch);
    let frag = reference.and_then(|r| cosine_similarity(&r.fragments, &fragments));
    let scaf = reference.and_then(|r| cosine_similarity(&r.scaffolds, &scaffolds));
    let verdicts: Vec<bool> = valid.iter().filter_map(|f| f.passes_filters).collect();
    let filters = (!verdicts.is_empty())
        .then(|| verdicts.iter().filter(|&&p| p).count() as f64 / verdicts.len() as f64);
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
        int_div1: int_div.map(|d| d.0),
        int_div2: int_div.map(|d| d.1),
        snn,
        frag,
        scaf,
        filters,
        invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_pairs_give_exactly_the_fingerprint_similarities_on_every_instruction_set() {
        let smiles = [
            "CCO",
            "c1ccccc1",
            "CC(=O)Nc1ccccc1",
            "[Na+]",
            "O=C(O)c1ccc2[nH]ccc2c1",
            "CN1CCC(CC1)c1ccccc1",
        ];
        let mut all: Vec<Fingerprint> = smiles
            .iter()
            .map(|s| {
                Molecule::parse(s)
                    .unwrap()
                    .morgan_fingerprint(RADIUS, BITS)
                    .unwrap()
            })
            .collect();
        // Two empty fingerprints are alike (1, as RDKit says).
        all.push(Fingerprint::from_words(vec![0; WORDS]));
        all.push(Fingerprint::from_words(vec![0; WORDS]));
        let packed: Vec<Packed> = all.iter().map(Packed::new).collect();
        for arch in [pulp::Arch::new(), pulp::Arch::Scalar] {
            for (a, query) in all.iter().zip(&packed) {
                for (b, other) in all.iter().zip(&packed) {
                    assert_eq!(query.tanimoto(other).to_bits(), a.tanimoto(b).to_bits());
                }
                let reference = &packed[1..];
                let nearest = arch.dispatch(Nearest { query, reference });
                let expected = all[1..].iter().map(|b| a.tanimoto(b)).fold(0.0, f64::max);
                assert_eq!(nearest.to_bits(), expected.to_bits());
                let sums = arch.dispatch(SimilaritySums {
                    query,
                    others: &packed,
                });
                let naive = all
                    .iter()
                    .map(|b| a.tanimoto(b))
                    .fold((0.0, 0.0), |(s, s2), t| (s + t, s2 + t * t));
                assert_eq!(sums, naive);
            }
        }
        assert_eq!(all[6].tanimoto(&all[7]), 1.0);
    }

    #[test]
    fn cosine_similarity_does_not_depend_on_the_order_of_the_counts() {
        // Counts this large have squares beyond f64's exact integers, where a float sum's value
        // depends on the order it adds them in, and a map's order changes with each map.
        let counts = |count: &dyn Fn(usize) -> usize| -> HashMap<String, usize> {
            (0..2000).map(|i| (format!("f{i}"), count(i))).collect()
        };
        let a = counts(&|i| 100_000_000 + 7919 * i);
        let b = counts(&|i| 100_000_000 * (1 + i % 3) + 13);
        let first = cosine_similarity(&a, &b).unwrap();
        for _ in 0..20 {
            // The same counts, each map with its own random order.
            let (a2, b2): (HashMap<_, _>, HashMap<_, _>) = (
                a.clone().into_iter().collect(),
                b.clone().into_iter().collect(),
            );
            assert_eq!(
                cosine_similarity(&a2, &b2).unwrap().to_bits(),
                first.to_bits()
            );
        }
        assert!(first > 0.5 && first < 1.0, "{first}");
    }
}
