//! SMILES tokenization as generative models use it: one token per atom, bond, branch or ring
//! label, with bracket atoms (`[nH]`, `[C@@H]`, `[O-]`), the two-letter organic atoms `Br` and
//! `Cl`, and two-digit ring labels (`%10`) kept whole. The usual regex of the SMILES-LM
//! literature, written out so that every character is either tokenized or reported.

use std::fmt;

/// Why a string could not be split into SMILES tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    #[error("unexpected character {ch:?} at position {position}")]
    UnexpectedChar { ch: char, position: usize },
    #[error("bracket atom opened at position {position} is never closed with `]`")]
    UnclosedBracket { position: usize },
    #[error("`%` at position {position} must be followed by two digits (a ring label such as %10)")]
    BadRingLabel { position: usize },
}

/// One token, borrowed from the SMILES it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token<'a>(pub &'a str);

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Single characters that are whole tokens: aromatic and one-letter organic atoms, bonds,
/// branches, ring digits and the rest of the SMILES punctuation.
const SINGLE: &str = "BCNOSPFIbcnosp().=#-+\\/:~@?>*$0123456789";

/// Splits `smiles` into tokens. The tokens concatenate back to `smiles` exactly.
pub fn tokenize(smiles: &str) -> Result<Vec<Token<'_>>, TokenizeError> {
    let bytes = smiles.as_bytes();
    let mut tokens = Vec::with_capacity(smiles.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &smiles[i..];
        let len = match bytes[i] {
            b'[' => match rest.find(']') {
                Some(end) => end + 1,
                None => return Err(TokenizeError::UnclosedBracket { position: i }),
            },
            b'B' if rest.starts_with("Br") => 2,
            b'C' if rest.starts_with("Cl") => 2,
            b'%' => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_digit)
                {
                    3
                } else {
                    return Err(TokenizeError::BadRingLabel { position: i });
                }
            }
            b if b.is_ascii() && b != b'[' && SINGLE.as_bytes().contains(&b) => 1,
            _ => {
                let ch = rest.chars().next().expect("not at the end");
                return Err(TokenizeError::UnexpectedChar { ch, position: i });
            }
        };
        tokens.push(Token(&smiles[i..i + len]));
        i += len;
    }
    Ok(tokens)
}
