//! Tokenizer and vocabulary, on the bundled MOSES fixtures and on hand-picked SMILES.

use std::path::Path;

use proptest::prelude::*;
use xp_chem::{TokenizeError, Vocabulary, tokenize};

fn fixture(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/data")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("smiles"));
    lines.map(str::to_owned).collect()
}

fn tokens(s: &str) -> Vec<&str> {
    tokenize(s).unwrap().into_iter().map(|t| t.0).collect()
}

#[test]
fn tokens_of_known_smiles() {
    assert_eq!(
        tokens("CC(=O)Oc1ccccc1C(=O)O"),
        [
            "C", "C", "(", "=", "O", ")", "O", "c", "1", "c", "c", "c", "c", "c", "1", "C", "(",
            "=", "O", ")", "O"
        ]
    );
    assert_eq!(
        tokens("c1ccc2[nH]ccc2c1"),
        [
            "c", "1", "c", "c", "c", "2", "[nH]", "c", "c", "c", "2", "c", "1"
        ]
    );
    assert_eq!(tokens("BrCCl"), ["Br", "C", "Cl"]);
    assert_eq!(tokens("C%10CC%10B"), ["C", "%10", "C", "C", "%10", "B"]);
    assert_eq!(
        tokens("[C@@H](F)(Cl)[O-].[Na+]"),
        [
            "[C@@H]", "(", "F", ")", "(", "Cl", ")", "[O-]", ".", "[Na+]"
        ]
    );
    assert_eq!(
        tokens("C/C=C\\C#N"),
        ["C", "/", "C", "=", "C", "\\", "C", "#", "N"]
    );
    assert!(tokens("").is_empty());
}

#[test]
fn bad_strings_are_errors_with_positions() {
    assert_eq!(
        tokenize("CC[nH"),
        Err(TokenizeError::UnclosedBracket { position: 2 })
    );
    assert_eq!(
        tokenize("C%1C"),
        Err(TokenizeError::BadRingLabel { position: 1 })
    );
    assert_eq!(
        tokenize("CCX"),
        Err(TokenizeError::UnexpectedChar {
            ch: 'X',
            position: 2
        })
    );
    assert_eq!(
        tokenize("C]"),
        Err(TokenizeError::UnexpectedChar {
            ch: ']',
            position: 1
        })
    );
    assert_eq!(
        tokenize("Cé"),
        Err(TokenizeError::UnexpectedChar {
            ch: 'é',
            position: 1
        })
    );
    assert!(
        tokenize("C C")
            .unwrap_err()
            .to_string()
            .contains("' ' at position 1")
    );
}

#[test]
fn every_fixture_smiles_round_trips_through_the_vocabulary() {
    let train = fixture("train.csv");
    let (vocab, rejected) = Vocabulary::build(train.iter().map(String::as_str));
    assert!(rejected.is_empty(), "{rejected:?}");
    // MOSES uses: c C ( ) 1-6 O N n = F S - s o Cl Br [nH] [H] # (see its README).
    for t in [
        "c", "C", "(", ")", "1", "6", "O", "N", "n", "=", "F", "S", "-", "s", "o", "Cl", "Br",
        "[nH]", "#",
    ] {
        assert!(vocab.id(t).is_some(), "{t} missing");
    }
    for name in ["train.csv", "val.csv", "test.csv"] {
        for s in fixture(name) {
            let joined: String = tokenize(&s).unwrap().iter().map(|t| t.0).collect();
            assert_eq!(joined, s);
            let encoded = vocab.encode(&s).unwrap();
            assert_eq!(encoded.ids[0], Vocabulary::BOS_ID);
            assert_eq!(*encoded.ids.last().unwrap(), Vocabulary::EOS_ID);
            if encoded.unknown == 0 {
                assert_eq!(vocab.decode(&encoded.ids), s, "{name}");
            }
        }
    }
    // Same data, same ids.
    let (again, _) = Vocabulary::build(train.iter().map(String::as_str));
    assert_eq!(again, vocab);
}

#[test]
fn unknown_tokens_become_unk_and_are_counted() {
    let (vocab, _) = Vocabulary::build(["CCO", "c1ccccc1"]);
    let e = vocab.encode("CC[Se]CCl").unwrap();
    assert_eq!(e.unknown, 2, "[Se] and Cl");
    assert_eq!(vocab.decode(&e.ids), "CC<unk>C<unk>");
    // Decoding stops at <eos> and skips <pad>/<bos>; ids outside the vocabulary read as <unk>.
    let c = vocab.id("C").unwrap();
    assert_eq!(
        vocab.decode(&[
            Vocabulary::BOS_ID,
            c,
            Vocabulary::PAD_ID,
            c,
            Vocabulary::EOS_ID,
            c
        ]),
        "CC"
    );
    assert_eq!(vocab.decode(&[c, 999]), "C<unk>");
    let (_, rejected) = Vocabulary::build(["CC", "C[", "CC"]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 1);
}

#[test]
fn vocabulary_serialises_and_refuses_a_broken_one() {
    let (vocab, _) = Vocabulary::build(["CC(=O)O", "c1ccccc1Br"]);
    let json = serde_json::to_string(&vocab).unwrap();
    assert!(
        json.starts_with(r#"["<pad>","<bos>","<eos>","<unk>","#),
        "{json}"
    );
    let back: Vocabulary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, vocab);
    let err = serde_json::from_str::<Vocabulary>(r#"["C","<pad>"]"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("starts with <pad>"), "{err}");
    let err = serde_json::from_str::<Vocabulary>(r#"["<pad>","<bos>","<eos>","<unk>","C","C"]"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("appears twice"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Any string: an error or tokens that join back to it; never a panic.
    #[test]
    fn tokenize_never_panics_and_loses_nothing(s in "(\\PC|[\\[\\]%0-9BCrlNOcn()=#@+\\-]){0,80}") {
        if let Ok(tokens) = tokenize(&s) {
            let joined: String = tokens.iter().map(|t| t.0).collect();
            prop_assert_eq!(joined, s);
        }
    }
}
