//! Why a SMILES is not a molecule, sorted into the few kinds a generative model's mistakes fall
//! into, and said in words a chemist reads: a model whose invalid samples are mostly unclosed
//! rings needs different help from one that writes pentavalent carbons.

use serde::{Deserialize, Serialize};

/// The kind of mistake that makes a SMILES invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidKind {
    /// An empty string.
    Empty,
    /// Longer than [`MAX_SMILES_LEN`](crate::MAX_SMILES_LEN).
    TooLong,
    /// Grammar: an unbalanced branch or bracket, a bond with no atom after it, an unknown element.
    Syntax,
    /// A ring-bond digit opened and never closed.
    UnclosedRing,
    /// An atom with more bonds than its element allows (RDKit's "Explicit valence ... is greater
    /// than permitted").
    Valence,
    /// Aromatic atoms that admit no alternating single and double bonds, or an aromatic atom
    /// outside a ring (RDKit's "Can't kekulize mol").
    Aromaticity,
    /// Anything else, failures inside the chemistry engine included.
    Other,
}

impl InvalidKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [InvalidKind; 7] = [
        InvalidKind::Empty,
        InvalidKind::TooLong,
        InvalidKind::Syntax,
        InvalidKind::UnclosedRing,
        InvalidKind::Valence,
        InvalidKind::Aromaticity,
        InvalidKind::Other,
    ];

    /// The name in JSON and in metric tags (`unclosed_ring`).
    pub fn key(self) -> &'static str {
        match self {
            InvalidKind::Empty => "empty",
            InvalidKind::TooLong => "too_long",
            InvalidKind::Syntax => "syntax",
            InvalidKind::UnclosedRing => "unclosed_ring",
            InvalidKind::Valence => "valence",
            InvalidKind::Aromaticity => "aromaticity",
            InvalidKind::Other => "other",
        }
    }

    /// Short lower-case words for tables and logs (`unclosed ring`).
    pub fn label(self) -> &'static str {
        match self {
            InvalidKind::Empty => "empty",
            InvalidKind::TooLong => "too long",
            InvalidKind::Syntax => "syntax",
            InvalidKind::UnclosedRing => "unclosed ring",
            InvalidKind::Valence => "valence",
            InvalidKind::Aromaticity => "aromaticity",
            InvalidKind::Other => "other",
        }
    }
}

/// How many SMILES of a set were invalid, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidCounts {
    pub empty: usize,
    pub too_long: usize,
    pub syntax: usize,
    pub unclosed_ring: usize,
    pub valence: usize,
    pub aromaticity: usize,
    pub other: usize,
}

impl InvalidCounts {
    pub fn add(&mut self, kind: InvalidKind) {
        *self.count_mut(kind) += 1;
    }

    pub fn get(&self, kind: InvalidKind) -> usize {
        match kind {
            InvalidKind::Empty => self.empty,
            InvalidKind::TooLong => self.too_long,
            InvalidKind::Syntax => self.syntax,
            InvalidKind::UnclosedRing => self.unclosed_ring,
            InvalidKind::Valence => self.valence,
            InvalidKind::Aromaticity => self.aromaticity,
            InvalidKind::Other => self.other,
        }
    }

    fn count_mut(&mut self, kind: InvalidKind) -> &mut usize {
        match kind {
            InvalidKind::Empty => &mut self.empty,
            InvalidKind::TooLong => &mut self.too_long,
            InvalidKind::Syntax => &mut self.syntax,
            InvalidKind::UnclosedRing => &mut self.unclosed_ring,
            InvalidKind::Valence => &mut self.valence,
            InvalidKind::Aromaticity => &mut self.aromaticity,
            InvalidKind::Other => &mut self.other,
        }
    }

    /// All invalid SMILES counted.
    pub fn total(&self) -> usize {
        InvalidKind::ALL.iter().map(|&k| self.get(k)).sum()
    }

    /// The kinds that occurred, most frequent first (ties in [`InvalidKind::ALL`]'s order).
    pub fn most_frequent(&self) -> Vec<(InvalidKind, usize)> {
        let mut seen: Vec<(InvalidKind, usize)> = InvalidKind::ALL
            .iter()
            .map(|&k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
            .collect();
        seen.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        seen
    }

    /// How many, and why: `12 (7 unclosed ring, 5 syntax)`, or `0`.
    pub fn summary(&self) -> String {
        let kinds = self.most_frequent();
        if kinds.is_empty() {
            return "0".to_owned();
        }
        let parts: Vec<String> = kinds
            .iter()
            .map(|(k, n)| format!("{n} {}", k.label()))
            .collect();
        format!("{} ({})", self.total(), parts.join(", "))
    }
}

/// The kind of a parse failure and a message for people, from the engine's message (cosmolkit
/// 0.6.1's wording; the chemistry oracle checks the kinds against RDKit's on every broken SMILES
/// of its sample).
pub(crate) fn classify(smiles: &str, engine: &str) -> (InvalidKind, String) {
    if let Some(parse) = engine.strip_prefix("SMILES parsing failed: ") {
        if let Some(digits) = parse.strip_prefix("unclosed ring index ") {
            // RDKit's grammar fails first on a branch left open, and its ring closing on a ring
            // bond that joins atoms already bonded; the engine reaches the unclosed ring first.
            let open = match grammar_problem(smiles) {
                Some(Grammar::Syntax(problem)) => return (InvalidKind::Syntax, problem),
                Some(Grammar::Unclosed(labels)) => labels,
                None => vec![
                    digits
                        .parse()
                        .map_or_else(|_| digits.to_owned(), ring_label),
                ],
            };
            let reason = match open.as_slice() {
                [one] => format!("ring bond {one} is opened but never closed"),
                [init @ .., last] => format!(
                    "ring bonds {} and {last} are opened but never closed",
                    init.join(", ")
                ),
                [] => format!("ring bond {digits} is opened but never closed"),
            };
            return (InvalidKind::UnclosedRing, reason);
        }
        return (InvalidKind::Syntax, syntax_message(smiles, parse));
    }
    if let Some((_, atoms)) = engine.split_once("could not kekulize molecule; remaining atoms: ") {
        let indices: Vec<&str> = atoms
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .collect();
        let (atoms, admit) = if indices.len() == 1 {
            ("atom", "admits")
        } else {
            ("atoms", "admit")
        };
        return (
            InvalidKind::Aromaticity,
            format!(
                "cannot kekulize: aromatic {atoms} {} (0-based) {admit} no alternating single and double bonds",
                indices.join(", ")
            ),
        );
    }
    if let Some((_, rest)) = engine.split_once("aromatic atom ")
        && let Some(index) = rest.strip_suffix(" is not in a ring")
    {
        return (
            InvalidKind::Aromaticity,
            format!("aromatic atom {index} (0-based) is not in a ring"),
        );
    }
    if let Some((_, rdkit)) = engine.split_once("Explicit valence for atom") {
        return (
            InvalidKind::Valence,
            format!("valence: Explicit valence for atom{rdkit}"),
        );
    }
    (InvalidKind::Other, engine.to_owned())
}

/// `syntax error at character 5: unclosed branch`, from the parser's `... at byte 4: ...`.
fn syntax_message(smiles: &str, parse: &str) -> String {
    let Some((before, after)) = parse.split_once(" at byte ") else {
        return format!("syntax error: {parse}");
    };
    let digits = after
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after.len());
    let Ok(byte) = after[..digits].parse::<usize>() else {
        return format!("syntax error: {parse}");
    };
    let detail = after[digits..].trim_start_matches(':').trim();
    let place = if byte >= smiles.len() {
        "at the end".to_owned()
    } else {
        // 1-based, in characters as an editor counts them.
        let character = smiles.get(..byte).map_or(byte, |head| head.chars().count()) + 1;
        format!("at character {character}")
    };
    let what = if let Some(token) = before.strip_prefix("unsupported SMILES token ") {
        format!("unexpected {token}")
    } else if before == "invalid atom" {
        let start: String = smiles.get(byte..).unwrap_or("").chars().take(8).collect();
        format!("no atom can be read from `{start}`")
    } else {
        detail.to_owned()
    };
    format!("syntax error {place}: {what}")
}

/// A ring label as written in a SMILES: two-digit labels take a `%`.
fn ring_label(label: u32) -> String {
    if label >= 10 {
        format!("%{label}")
    } else {
        label.to_string()
    }
}

/// What RDKit's parser makes of a SMILES the engine finds a ring left open in.
enum Grammar {
    /// The mistake it reports first.
    Syntax(String),
    /// No earlier mistake: the ring labels left open, as written.
    Unclosed(Vec<String>),
}

/// The grammar mistake RDKit's parser reports where the engine reports an unclosed ring, if any:
/// a branch closed that was never opened or never closed, or, with rings closed as RDKit's
/// `CloseMolRings` does (labels in ascending order, each label's atoms paired left to right,
/// stopping at the first problem), a ring bond joining an atom to itself or to an atom it is
/// already bonded to before any ring is left open.
fn grammar_problem(smiles: &str) -> Option<Grammar> {
    // A SMILES our tokenizer cannot split (`%(123)` labels) is left to the engine.
    let tokens = crate::tokenize(smiles).ok()?;
    let mut atoms = 0usize;
    let mut previous: Option<usize> = None;
    let mut branches: Vec<Option<usize>> = Vec::new();
    // Per ring label: the atoms it follows, with where each occurrence is in the SMILES.
    let mut rings: std::collections::BTreeMap<u32, Vec<(usize, usize)>> = Default::default();
    let mut bonds: std::collections::HashSet<(usize, usize)> = Default::default();
    let mut characters_before = 0usize;
    for token in tokens {
        let text = token.0;
        let character = characters_before + 1;
        characters_before += text.chars().count();
        let first = text.as_bytes()[0];
        if first == b'[' || first.is_ascii_alphabetic() || first == b'*' {
            if let Some(p) = previous {
                bonds.insert((p, atoms));
            }
            previous = Some(atoms);
            atoms += 1;
        } else if text == "(" {
            branches.push(previous);
        } else if text == ")" {
            let Some(p) = branches.pop() else {
                return Some(Grammar::Syntax(format!(
                    "syntax error at character {character}: unmatched branch close"
                )));
            };
            previous = p;
        } else if text == "." {
            previous = None;
        } else if let Ok(label) = text.trim_start_matches('%').parse::<u32>() {
            rings.entry(label).or_default().push((previous?, character));
        }
    }
    if !branches.is_empty() {
        return Some(Grammar::Syntax(
            "syntax error at the end: unclosed branch".to_owned(),
        ));
    }
    let open: Vec<String> = rings
        .iter()
        .filter(|(_, occurrences)| occurrences.len() % 2 == 1)
        .map(|(&label, _)| ring_label(label))
        .collect();
    for (label, occurrences) in rings {
        let shown = ring_label(label);
        for pair in occurrences.chunks(2) {
            let [(a, _), (b, character)] = pair else {
                // Left open: RDKit reports the unclosed ring here.
                return Some(Grammar::Unclosed(open));
            };
            let (low, high) = ((*a).min(*b), (*a).max(*b));
            if low == high {
                return Some(Grammar::Syntax(format!(
                    "syntax error at character {character}: ring bond {shown} joins atom {low} (0-based) to itself"
                )));
            }
            if !bonds.insert((low, high)) {
                return Some(Grammar::Syntax(format!(
                    "syntax error at character {character}: ring bond {shown} duplicates the bond between atoms {low} and {high} (0-based)"
                )));
            }
        }
    }
    // Every ring pairs up in RDKit's reading; the engine's message stands.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_list_the_most_frequent_first() {
        let mut counts = InvalidCounts::default();
        assert_eq!(counts.summary(), "0");
        for kind in [
            InvalidKind::Syntax,
            InvalidKind::UnclosedRing,
            InvalidKind::UnclosedRing,
            InvalidKind::Valence,
        ] {
            counts.add(kind);
        }
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.summary(), "4 (2 unclosed ring, 1 syntax, 1 valence)");
        // Keys are the serialised names, here and in InvalidCounts' fields.
        let fields = serde_json::to_value(counts).unwrap();
        for kind in InvalidKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.key());
            assert_eq!(fields[kind.key()], counts.get(kind), "{kind:?}");
        }
        for kind in InvalidKind::ALL {
            let before = counts.get(kind);
            counts.add(kind);
            assert_eq!(counts.get(kind), before + 1, "{kind:?}");
        }
    }
}
