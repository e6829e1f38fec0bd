//! Validity, canonical SMILES, fingerprints and metrics on hand-picked molecules. (Agreement
//! with RDKit on a larger sample is the oracle check in `cargo xtask test`.)

use std::collections::HashSet;

use proptest::prelude::*;
use xp_chem::{
    ChemError, GenerationMetrics, InvalidCounts, InvalidKind, MAX_SMILES_LEN, Molecule,
    ReferenceSet, canonical_smiles, generation_metrics, is_valid, quick_metrics,
};

#[test]
fn valid_and_invalid_smiles() {
    for s in [
        "CCO",
        "c1ccccc1",
        "C1CC1",
        "[nH]1cccc1",
        "CC(=O)O",
        "[Na+].[Cl-]",
    ] {
        assert!(is_valid(s), "{s}");
    }
    for s in [
        "C1CC",
        "C(C)(C)(C)(C)C",
        "c1cccc1",
        "CC(",
        "C)C",
        "Xx",
        "C==C",
    ] {
        assert!(!is_valid(s), "{s}");
        assert!(
            matches!(canonical_smiles(s), Err(ChemError::Invalid { .. })),
            "{s}"
        );
    }
    assert_eq!(canonical_smiles(""), Err(ChemError::Empty));
    let long = "C".repeat(MAX_SMILES_LEN + 1);
    assert_eq!(
        canonical_smiles(&long),
        Err(ChemError::TooLong {
            len: MAX_SMILES_LEN + 1
        })
    );
}

#[test]
fn an_invalid_smiles_says_which_kind_of_mistake_and_where() {
    use InvalidKind::*;
    let long = "C".repeat(MAX_SMILES_LEN + 1);
    // Where a SMILES has two mistakes, the one RDKit reports (its parser meets branches first,
    // then closes rings label by label, pairing each label's atoms left to right).
    let cases: [(&str, InvalidKind, &str); 17] = [
        ("", Empty, "empty SMILES"),
        (&long, TooLong, "longer than the 500 accepted"),
        ("CC(C", Syntax, "syntax error at the end: unclosed branch"),
        (
            "CC)C",
            Syntax,
            "syntax error at character 3: unmatched branch close",
        ),
        ("CC==C", Syntax, "syntax error at character 4"),
        (
            "C[Xx]C",
            Syntax,
            "syntax error at character 2: no atom can be read from `[Xx]C`",
        ),
        (
            "CC@C",
            Syntax,
            "syntax error at character 3: unexpected '@'",
        ),
        (
            "C1CC",
            UnclosedRing,
            "ring bond 1 is opened but never closed",
        ),
        (
            "C%12CC",
            UnclosedRing,
            "ring bond %12 is opened but never closed",
        ),
        (
            "C(C)(C)(C)(C)C",
            Valence,
            "Explicit valence for atom # 0 C, 5, is greater than permitted",
        ),
        (
            "c1cccc1",
            Aromaticity,
            "aromatic atoms 0, 1, 2, 3, 4 (0-based) admit no alternating",
        ),
        ("Cc1ccccc1C1cccC1", Aromaticity, "cannot kekulize"),
        (
            "CcC",
            Aromaticity,
            "aromatic atom 1 (0-based) is not in a ring",
        ),
        ("C(C1CC", Syntax, "syntax error at the end: unclosed branch"),
        (
            "Cc1n1oc(C)c1C",
            Syntax,
            "character 5: ring bond 1 duplicates the bond between atoms 1 and 2",
        ),
        (
            "O=C1c22cccc2C1",
            Syntax,
            "character 7: ring bond 2 joins atom 2 (0-based) to itself",
        ),
        (
            "O=C(CScsnc2c2c(Cl)ccc2o1)N1CCCC1",
            UnclosedRing,
            "ring bonds 1 and 2 are opened but never closed",
        ),
    ];
    let mut counts = InvalidCounts::default();
    for (smiles, kind, says) in cases {
        let error = Molecule::parse(smiles).err().unwrap();
        let message = error.to_string();
        assert_eq!(error.invalid_kind(), Some(kind), "{smiles}: {message}");
        assert!(message.contains(says), "{smiles}: {message}");
        assert!(!message.contains("AtomId"), "{smiles}: {message}");
        counts.add(kind);
    }
    let refs: Vec<&str> = cases.iter().map(|c| c.0).chain(["CCO"]).collect();
    let metrics = quick_metrics(&refs, None);
    assert_eq!(metrics.invalid, counts);
    assert_eq!(metrics.invalid.total() + 1, metrics.count);
}

#[test]
fn an_error_shows_control_characters_escaped() {
    // (A tab or a space ends the SMILES, as in RDKit: what follows is the molecule's name.)
    for (smiles, shown) in [("C\0C", "\\u{0}"), ("C\rC", "\\r"), ("C\nC", "\\n")] {
        let message = canonical_smiles(smiles).unwrap_err().to_string();
        assert!(message.contains(shown), "{smiles:?}: {message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
}

#[test]
fn canonical_forms_agree_across_spellings() {
    assert_eq!(
        canonical_smiles("OCC").unwrap(),
        canonical_smiles("CCO").unwrap()
    );
    assert_eq!(canonical_smiles("C1=CC=CC=C1").unwrap(), "c1ccccc1");
    let c = canonical_smiles("O=C(O)c1ccccc1").unwrap();
    assert_eq!(
        canonical_smiles(&c).unwrap(),
        c,
        "canonical SMILES are a fixed point"
    );
}

#[test]
fn fingerprints_and_tanimoto() {
    let fp = |s: &str| {
        Molecule::parse(s)
            .unwrap()
            .morgan_fingerprint(2, 1024)
            .unwrap()
    };
    let (ethanol, ethanol2, benzene) = (fp("CCO"), fp("OCC"), fp("c1ccccc1"));
    assert_eq!(ethanol, ethanol2);
    assert_eq!(ethanol.tanimoto(&ethanol), 1.0);
    let t = ethanol.tanimoto(&benzene);
    assert!((0.0..1.0).contains(&t));
    assert_eq!(t, benzene.tanimoto(&ethanol));
    assert!(ethanol.count_ones() > 0);
}

#[test]
fn metrics_follow_moses_definitions() {
    let generated = ["CCO", "OCC", "c1ccccc1", "C1CC"];
    let train: HashSet<String> = ["CCO".to_owned()].into();
    let fp = |s: &str| {
        Molecule::parse(s)
            .unwrap()
            .morgan_fingerprint(2, 1024)
            .unwrap()
    };
    let reference = ReferenceSet::new(&["c1ccccc1O", "not a molecule"]);
    assert_eq!(reference.len(), 1, "invalid reference SMILES are skipped");
    let m = generation_metrics(&generated, Some(&train), Some(&reference));
    assert_eq!(m.count, 4);
    assert_eq!(m.validity, 0.75);
    assert_eq!(
        m.unique_at_1k,
        Some(2.0 / 3.0),
        "CCO twice among three valid"
    );
    assert_eq!(
        m.novelty,
        Some(0.5),
        "of {{CCO, c1ccccc1}} only benzene is new"
    );
    // Fingerprints [A, A, B]: nine ordered pairs, self-pairs included (as MOSES).
    let t = fp("CCO").tanimoto(&fp("c1ccccc1"));
    let mean = (5.0 + 4.0 * t) / 9.0;
    assert!((m.int_div1.unwrap() - (1.0 - mean)).abs() < 1e-12);
    let mean_sq = (5.0 + 4.0 * t * t) / 9.0;
    assert!((m.int_div2.unwrap() - (1.0 - mean_sq.sqrt())).abs() < 1e-12);
    let phenol = fp("c1ccccc1O");
    let snn = (2.0 * fp("CCO").tanimoto(&phenol) + fp("c1ccccc1").tanimoto(&phenol)) / 3.0;
    assert!((m.snn.unwrap() - snn).abs() < 1e-12);
    assert_eq!(m.scaf, None, "no scaffold of two rings on either side");
    assert_eq!(m.filters, Some(1.0));
    let empty = generation_metrics(&["nope"], None, None);
    assert_eq!(
        (
            empty.validity,
            empty.unique_at_1k,
            empty.int_div1,
            empty.novelty
        ),
        (0.0, None, None, None)
    );
}

#[test]
fn quick_metrics_are_the_cheap_subset_with_the_same_values() {
    // Valid, duplicate, invalid, a PAINS-flagged azo dye (fails the filters) and two ring systems.
    let generated = [
        "CCO",
        "OCC",
        "C1CC",
        "c1ccc(N=Nc2ccccc2)cc1",
        "c1ccc(Cc2ccc3ccccc3c2)cc1",
    ];
    let train: HashSet<String> = ["CCO".to_owned()].into();
    let reference = ReferenceSet::new(&["c1ccc(Cc2ccccc2)cc1", "c1ccc2ccccc2c1"]);
    let all = generation_metrics(&generated, Some(&train), Some(&reference));
    let quick = quick_metrics(&generated, Some(&train));
    assert!(all.snn.is_some() && all.frag.is_some() && all.scaf.is_some());
    assert!(all.filters.is_some_and(|f| f < 1.0), "{all:?}");
    assert_eq!(
        quick,
        GenerationMetrics {
            snn: None,
            frag: None,
            scaf: None,
            filters: None,
            ..all
        }
    );
}

#[test]
fn scaffolds_are_murcko_frameworks() {
    let scaffold = |s: &str| {
        let mol = Molecule::parse(s).unwrap().murcko_scaffold().unwrap();
        (mol.canonical_smiles().unwrap(), mol.ring_count().unwrap())
    };
    // Answers of RDKit's MurckoScaffold.GetScaffoldForMol.
    let expect = |s: &str, n| (s.to_owned(), n);
    assert_eq!(
        scaffold("CCc1ccc(Cc2ccccc2O)cc1"),
        expect("c1ccc(Cc2ccccc2)cc1", 2)
    );
    assert_eq!(scaffold("CC(=O)N1CCCC1"), expect("C1CCNC1", 1));
    assert_eq!(
        scaffold("O=C1CCCN1CC"),
        expect("O=C1CCCN1", 1),
        "exocyclic =O stays"
    );
    assert_eq!(scaffold("CCO"), expect("", 0));
}

#[test]
fn scaf_is_the_cosine_similarity_of_scaffold_counts() {
    // Scaffolds: diphenylmethane twice, naphthalene once; benzene has one ring and is not counted.
    let generated = [
        "c1ccc(Cc2ccccc2)cc1",
        "Cc1ccc(Cc2ccccc2)cc1",
        "Oc1ccc2ccccc2c1",
        "c1ccccc1",
    ];
    let reference = ReferenceSet::new(&["OCc1ccc(Cc2ccccc2)cc1", "c1ccc2ccccc2c1", "CCO"]);
    let m = generation_metrics(&generated, None, Some(&reference));
    let expected = (2.0 * 1.0 + 1.0 * 1.0) / (5.0f64.sqrt() * 2.0f64.sqrt());
    assert!((m.scaf.unwrap() - expected).abs() < 1e-12, "{:?}", m.scaf);
    let m = generation_metrics(&["CCO"], None, Some(&reference));
    assert_eq!(m.scaf, None, "no generated scaffold: MOSES gives NaN");
}

#[test]
fn filters_follow_moses_rules() {
    let passes = |s: &str| Molecule::parse(s).unwrap().passes_filters().unwrap();
    assert!(passes("CCO"));
    assert!(passes("C1CCCCCC1"), "a 7-ring is allowed");
    assert!(!passes("C1CCCCCCC1"), "rings of 8 atoms or more are not");
    assert!(!passes("CC[NH3+]"), "no formal charges");
    assert!(!passes("C[Si](C)(C)C"), "only C, N, S, O, F, Cl, Br, H");
    assert!(!passes("CCCl"), "MCF4: primary alkyl halide");
    assert!(!passes("C=CC#N"), "MCF1: acrylonitrile");
    let m = generation_metrics(&["CCO", "CCCl", "CC[NH3+]", "CCN", "bad"], None, None);
    assert_eq!(m.filters, Some(0.5), "over valid molecules only");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Random and mutated strings: an answer, never a panic that escapes.
    #[test]
    fn parsing_never_panics(s in "[CNOcnos()=#123%\\[\\]@+\\-H.]{0,120}") {
        let _ = canonical_smiles(&s);
    }
}

/// MOSES molecules from the bundled fixtures, the seeds of the mutation fuzzing below.
fn fixture_smiles() -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data/test.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .take(500)
        .map(str::to_owned)
        .collect()
}

/// One edit of a SMILES: delete, insert or replace one character with a SMILES character.
fn mutate(smiles: &str, edits: &[(usize, u8, usize)]) -> String {
    const ALPHABET: &[u8] = b"CNOScnos()[]=#123456789%@+-H.Brl/\\";
    let mut bytes: Vec<u8> = smiles.as_bytes().to_vec();
    for &(kind, ch, at) in edits {
        let c = ALPHABET[ch as usize % ALPHABET.len()];
        let at = if bytes.is_empty() {
            0
        } else {
            at % (bytes.len() + 1)
        };
        match kind % 3 {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, c),
            _ if at < bytes.len() => bytes[at] = c,
            _ => bytes.push(c),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The canonical SMILES through a whole engine molecule, the path `canonical_smiles` shortens.
fn engine_canonical(smiles: &str) -> Result<String, ChemError> {
    Molecule::parse(smiles)?.canonical_smiles()
}

/// `canonical_smiles` and `is_valid` skip building a molecule and, without stereo marks, stereo
/// perception: their answers (verdict, error, text) must be the whole molecule's, here on MOSES
/// molecules, each also broken by an edit, and on stereo and explicit-hydrogen cases.
#[test]
fn the_short_path_answers_as_a_whole_molecule() {
    let mut inputs: Vec<String> = [
        "C[C@H](N)O",
        "C[C@@H]1CCCN1",
        "F/C=C/F",
        "F/C=C\\F",
        "C/C=C/C(/F)=C/Cl",
        "N[C@@H](C)C(=O)O",
        "C[C@H]1CC[C@@H](C)CC1",
        "[2H]C([2H])([2H])O",
        "[H]C([H])([H])[H]",
        "[H][H]",
        "[H+]",
        "C[C@H]([2H])O",
        "CCO ethanol",
        "C1=CC=CC=C1 |$;;;;;$|",
        "c1ccccc1\tbenzene",
        "CCO\u{a0}ethanol",
        "CCO\u{b}ethanol",
        "F/C=C/",
        "C[C@H]",
        "C[C@](F)(Cl)(Br)I",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let seeds = fixture_smiles();
    for (i, seed) in seeds.iter().enumerate() {
        inputs.push(seed.clone());
        inputs.push(mutate(seed, &[(i % 3, (i * 7) as u8, i * 13)]));
    }
    let (mut valid, mut stereo_valid) = (0, 0);
    for s in &inputs {
        let answer = canonical_smiles(s);
        assert_eq!(answer, engine_canonical(s), "{s}");
        assert_eq!(is_valid(s), Molecule::parse(s).is_ok(), "{s}");
        if answer.is_ok() {
            valid += 1;
            stereo_valid += usize::from(s.contains(['@', '/', '\\']));
        }
    }
    // Both paths and both verdicts were exercised.
    assert!(
        valid > seeds.len() && valid < inputs.len(),
        "{valid} of {}",
        inputs.len()
    );
    assert!(stereo_valid >= 8, "{stereo_valid} valid with stereo marks");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Real molecules with a few random edits (the engine's hard cases: broken rings, charges,
    /// aromaticity): every one gets an answer, none a panic, and a valid answer is canonical.
    #[test]
    fn mutated_molecules_never_panic(
        which in 0usize..500,
        edits in proptest::collection::vec((0usize..3, any::<u8>(), any::<usize>()), 1..6),
    ) {
        let seeds = fixture_smiles();
        let smiles = mutate(&seeds[which % seeds.len()], &edits);
        let answer = canonical_smiles(&smiles);
        prop_assert_eq!(&answer, &engine_canonical(&smiles));
        if let Ok(canonical) = answer {
            prop_assert_eq!(canonical_smiles(&canonical).unwrap(), canonical);
        }
    }

    /// Very long strings never reach the engine, whose cost grows about cubically with size:
    /// anything over MAX_SMILES_LEN is refused by its length alone, so the work per input is
    /// bounded and a file's total time stays linear in its size.
    #[test]
    fn long_inputs_are_refused_before_parsing(
        unit in "[CNOc1()=]{1,8}",
        repeat in 100usize..20_000,
    ) {
        let long = unit.repeat(repeat);
        prop_assume!(long.len() > xp_chem::MAX_SMILES_LEN);
        prop_assert_eq!(
            xp_chem::Molecule::parse(&long).err(),
            Some(xp_chem::ChemError::TooLong { len: long.len() })
        );
        // The tokenizer is one pass and accepts any length (it has no engine behind it).
        let plain = long.replace(['(', ')', '='], "C");
        prop_assert!(xp_chem::tokenize(&plain).is_ok());
    }
}

#[test]
fn nothing_in_common_scores_plus_zero() {
    // Two ring systems each side, none shared: Scaf is 0, and +0 (tables print it as "0.000").
    let reference = ReferenceSet::new(&["c1ccc(Cc2ccccc2)cc1"]);
    let m = generation_metrics(&["c1ccc2ccccc2c1"], None, Some(&reference));
    let scaf = m.scaf.expect("both sides have a scaffold of two rings");
    assert!(scaf == 0.0 && scaf.is_sign_positive(), "Scaf {scaf:?}");
}

#[test]
fn brics_fragments_as_rdkit() {
    let fragments = |s: &str| {
        let mut f = Molecule::parse(s).unwrap().brics_fragments().unwrap();
        f.sort();
        f
    };
    // RDKit's Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(m)).split('.'), sorted.
    assert_eq!(
        fragments("CCCOCCC(=O)c1ccccc1"),
        ["[16*]c1ccccc1", "[3*]O[3*]", "[4*]CCC", "[4*]CCC([6*])=O"]
    );
    assert_eq!(
        fragments("C=CC(=O)N[C@@H](C)c1ccncc1"),
        [
            "[1*]C(=O)C=C",
            "[16*]c1ccncc1",
            "[4*][C@H]([8*])C",
            "[5*]N[5*]"
        ]
    );
    assert_eq!(
        fragments("Cn1cc(-c2ccccc2)cn1"),
        ["[16*]c1ccccc1", "[16*]c1cnn(C)c1"]
    );
    assert_eq!(fragments("CCO"), ["CCO"]);
}

#[test]
fn frag_is_the_cosine_similarity_of_fragment_counts() {
    let reference = ReferenceSet::new(&["c1ccccc1NC(=O)C"]);
    // Generated: [16*]c1ccccc1, [3*]O[3*], [4*]CCC, [4*]CCC([6*])=O; reference: [1*]C(C)=O,
    // [16*]c1ccccc1, [5*]N[5*]. One fragment in common, once on each side.
    let m = generation_metrics(&["CCCOCCC(=O)c1ccccc1"], None, Some(&reference));
    let expected = 1.0 / (4.0f64.sqrt() * 3.0f64.sqrt());
    assert!((m.frag.unwrap() - expected).abs() < 1e-12, "{:?}", m.frag);
    assert_eq!(generation_metrics(&["CCO"], None, None).frag, None);
}

#[test]
fn metrics_do_not_depend_on_the_number_of_threads() {
    // SNN and IntDiv add up hundreds of similarities in parallel; the order of a float sum
    // changes its last bits, so the work must be split the same way on any machine.
    let smiles = fixture_smiles();
    let generated: Vec<&str> = smiles[..300].iter().map(String::as_str).collect();
    let reference: Vec<&str> = smiles[300..].iter().map(String::as_str).collect();
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let reference = ReferenceSet::new(&reference);
            generation_metrics(&generated, None, Some(&reference))
        })
    };
    let alone = on(1);
    assert!(alone.snn.is_some() && alone.int_div2.is_some());
    for threads in [2, 3, 4, 7] {
        let other = on(threads);
        let bits =
            |m: &GenerationMetrics| [m.snn, m.int_div1, m.int_div2].map(|v| v.map(f64::to_bits));
        assert_eq!(bits(&other), bits(&alone), "{threads} threads");
        assert_eq!(other, alone, "{threads} threads");
    }
}
