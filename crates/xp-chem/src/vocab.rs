//! The token vocabulary of a model: built from the training set, saved with checkpoints.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::tokenizer::{TokenizeError, tokenize};

pub const PAD: &str = "<pad>";
pub const BOS: &str = "<bos>";
pub const EOS: &str = "<eos>";
pub const UNK: &str = "<unk>";

/// Token <-> id. Ids 0..4 are `<pad>`, `<bos>`, `<eos>`, `<unk>`; the rest follow in order of
/// frequency in the training set (ties by token), so the same data always gives the same ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Vocabulary {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

/// An encoded SMILES and how many of its tokens were unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `<bos>`, the token ids, `<eos>`.
    pub ids: Vec<u32>,
    /// Tokens not in the vocabulary, encoded as `<unk>`.
    pub unknown: usize,
}

impl Vocabulary {
    pub const PAD_ID: u32 = 0;
    pub const BOS_ID: u32 = 1;
    pub const EOS_ID: u32 = 2;
    pub const UNK_ID: u32 = 3;

    /// The vocabulary of every token in `smiles`. Strings that do not tokenize are skipped and
    /// returned with their index, so the caller can report them.
    pub fn build<'a>(
        smiles: impl IntoIterator<Item = &'a str>,
    ) -> (Self, Vec<(usize, TokenizeError)>) {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut rejected = Vec::new();
        for (i, s) in smiles.into_iter().enumerate() {
            match tokenize(s) {
                Ok(tokens) => {
                    for t in tokens {
                        *counts.entry(t.0).or_default() += 1;
                    }
                }
                Err(e) => rejected.push((i, e)),
            }
        }
        let mut by_count: Vec<(&str, u64)> = counts.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let tokens = [PAD, BOS, EOS, UNK]
            .into_iter()
            .chain(by_count.into_iter().map(|(t, _)| t))
            .map(str::to_owned)
            .collect();
        (
            Self::from_tokens(tokens).expect("special tokens first, no duplicates"),
            rejected,
        )
    }

    fn from_tokens(tokens: Vec<String>) -> Result<Self, String> {
        if tokens.len() < 4 || tokens[..4] != [PAD, BOS, EOS, UNK] {
            return Err(format!(
                "a vocabulary starts with {PAD}, {BOS}, {EOS}, {UNK}"
            ));
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if ids.insert(t.clone(), i as u32).is_some() {
                return Err(format!("token {t:?} appears twice"));
            }
        }
        Ok(Vocabulary { tokens, ids })
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// `<bos>` + ids + `<eos>`; unknown tokens become `<unk>` and are counted.
    pub fn encode(&self, smiles: &str) -> Result<Encoded, TokenizeError> {
        let tokens = tokenize(smiles)?;
        let mut ids = Vec::with_capacity(tokens.len() + 2);
        ids.push(Self::BOS_ID);
        let mut unknown = 0;
        for t in tokens {
            ids.push(self.id(t.0).unwrap_or_else(|| {
                unknown += 1;
                Self::UNK_ID
            }));
        }
        ids.push(Self::EOS_ID);
        Ok(Encoded { ids, unknown })
    }

    /// The SMILES of `ids`: `<bos>` and `<pad>` are skipped, decoding stops at `<eos>`;
    /// `<unk>` and ids outside the vocabulary are written as `<unk>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for &id in ids {
            match id {
                Self::EOS_ID => break,
                Self::PAD_ID | Self::BOS_ID => {}
                _ => out.push_str(self.token(id).unwrap_or(UNK)),
            }
        }
        out
    }
}

impl TryFrom<Vec<String>> for Vocabulary {
    type Error = String;
    fn try_from(tokens: Vec<String>) -> Result<Self, String> {
        Self::from_tokens(tokens)
    }
}

impl From<Vocabulary> for Vec<String> {
    fn from(v: Vocabulary) -> Self {
        v.tokens
    }
}
