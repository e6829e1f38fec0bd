//! The training and reference sets of [`generation_metrics`](crate::generation_metrics), computed
//! once and saved: MOSES's 1.6M training molecules and 176k test molecules take minutes to parse,
//! fingerprint and fragment, and every evaluation against them would pay that again (MOSES ships
//! its test statistics precomputed for the same reason).
//!
//! The file is two lines of JSON: a small header (format, version, engine, counts), read and
//! checked first so that a file of another version is refused with a clear message before its
//! body is parsed, then the body.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::metrics::{BITS, ReferenceSet};
use crate::molecule::Fingerprint;

/// The header's `format`: what marks a prepared-sets file.
const FORMAT: &str = "xp-chem prepared sets";
/// The longest header line read.
const HEADER_LIMIT: u64 = 64 * 1024;
/// Bumped whenever the body's layout changes.
const VERSION: u32 = 1;
/// What computed the sets: a file from another engine or other fingerprint settings would give
/// numbers that differ from a fresh computation, so it is refused. The engine's version must
/// follow the workspace's pin (a test checks it).
pub(crate) const ENGINE: &str =
    "cosmolkit 0.6.1; Morgan fingerprints of radius 2 folded to 1024 bits; scaffolds of 2+ rings";

/// The sets [`generation_metrics`](crate::generation_metrics) compares with: the canonical
/// training set (novelty) and the reference set (SNN, Frag, Scaf), either optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreparedSets {
    /// Canonical SMILES of the training set ([`canonical_set`](crate::canonical_set)).
    pub train: Option<HashSet<String>>,
    pub reference: Option<ReferenceSet>,
    /// Free text kept in the header: where the sets came from, for whoever reads the file later.
    pub description: String,
}

/// Why a prepared-sets file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PreparedSetsError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The first line is not a prepared-sets header.
    #[error("not a prepared-sets file ({0})")]
    NotPrepared(String),
    #[error(
        "a prepared-sets file of format version {found}, and this build reads version {VERSION}"
    )]
    Version { found: u32 },
    #[error("prepared with another engine (`{found}`); this build uses `{ENGINE}`")]
    Engine { found: String },
    /// The header is fine and the body is not: a file cut short or edited.
    #[error("damaged body: {0}")]
    Body(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    engine: String,
    /// Molecules in each set, for a reader who looks at the file.
    train_molecules: Option<usize>,
    reference_molecules: Option<usize>,
    description: String,
}

#[derive(Serialize, Deserialize)]
struct Body {
    /// Sorted, so the same input writes the same file.
    train: Option<Vec<String>>,
    reference: Option<ReferenceBody>,
}

#[derive(Serialize, Deserialize)]
struct ReferenceBody {
    /// Each fingerprint's 64-bit words as 16 hex digits each, lowest word first.
    fingerprints: Vec<String>,
    fragments: BTreeMap<String, usize>,
    scaffolds: BTreeMap<String, usize>,
}

impl PreparedSets {
    /// Whether `first_line` is a prepared-sets header (of any version): to tell a user who
    /// passed such a file where SMILES were expected.
    pub fn is_header(first_line: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(first_line.trim_ascii())
            .is_ok_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(FORMAT))
    }

    /// Writes the header line and the body line.
    pub fn write_to(&self, mut out: impl Write) -> Result<(), PreparedSetsError> {
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            engine: ENGINE.to_owned(),
            train_molecules: self.train.as_ref().map(HashSet::len),
            reference_molecules: self.reference.as_ref().map(ReferenceSet::len),
            description: self.description.clone(),
        };
        let body = Body {
            train: self.train.as_ref().map(|set| {
                let mut sorted: Vec<String> = set.iter().cloned().collect();
                sorted.sort_unstable();
                sorted
            }),
            reference: self.reference.as_ref().map(|r| ReferenceBody {
                fingerprints: r.fingerprints.iter().map(to_hex).collect(),
                fragments: r.fragments.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                scaffolds: r.scaffolds.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            }),
        };
        serde_json::to_writer(&mut out, &header).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        serde_json::to_writer(&mut out, &body).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }

    /// Reads what [`write_to`](Self::write_to) wrote, refusing another format version or engine.
    pub fn read_from(mut input: impl BufRead) -> Result<Self, PreparedSetsError> {
        // A header is a few hundred bytes: a file with no line break early on (a binary file
        // passed by mistake) is not read whole to find one.
        let mut first = Vec::new();
        input
            .by_ref()
            .take(HEADER_LIMIT)
            .read_until(b'\n', &mut first)?;
        let header: Header = serde_json::from_slice(&first).map_err(|e| {
            PreparedSetsError::NotPrepared(if Self::is_header(&first) {
                format!("its header does not read: {e}")
            } else {
                "its first line is not the header `cargo xtask chem prepare` writes".to_owned()
            })
        })?;
        if header.format != FORMAT {
            return Err(PreparedSetsError::NotPrepared(format!(
                "its header says format `{}`",
                header.format
            )));
        }
        if header.version != VERSION {
            return Err(PreparedSetsError::Version {
                found: header.version,
            });
        }
        if header.engine != ENGINE {
            return Err(PreparedSetsError::Engine {
                found: header.engine,
            });
        }
        // Parsing from memory is several times faster than serde_json's reader.
        let mut text = Vec::new();
        input.read_to_end(&mut text)?;
        let body: Body = serde_json::from_slice(&text).map_err(|e| {
            PreparedSetsError::Body(if e.is_eof() {
                "it ends too soon (a file cut short?)".to_owned()
            } else {
                e.to_string()
            })
        })?;
        drop(text);
        let reference = match body.reference {
            Some(r) => Some(ReferenceSet {
                fingerprints: r
                    .fingerprints
                    .iter()
                    .enumerate()
                    .map(|(i, hex)| {
                        from_hex(hex).ok_or_else(|| {
                            PreparedSetsError::Body(format!(
                                "reference fingerprint {} is not {BITS} bits in hex: `{}`",
                                i + 1,
                                hex.chars().take(40).collect::<String>()
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                fragments: r.fragments.into_iter().collect(),
                scaffolds: r.scaffolds.into_iter().collect(),
            }),
            None => None,
        };
        let sets = PreparedSets {
            train: body.train.map(|t| t.into_iter().collect()),
            reference,
            description: header.description,
        };
        let counts = (
            sets.train.as_ref().map(HashSet::len),
            sets.reference.as_ref().map(ReferenceSet::len),
        );
        if counts != (header.train_molecules, header.reference_molecules) {
            return Err(PreparedSetsError::Body(format!(
                "the header counts {:?} training and {:?} reference molecules, the body {:?} and {:?}",
                header.train_molecules, header.reference_molecules, counts.0, counts.1
            )));
        }
        Ok(sets)
    }
}

fn to_hex(fingerprint: &Fingerprint) -> String {
    fingerprint
        .words()
        .iter()
        .map(|w| format!("{w:016x}"))
        .collect()
}

/// A fingerprint of exactly [`BITS`] bits, from [`to_hex`]'s text.
fn from_hex(hex: &str) -> Option<Fingerprint> {
    if hex.len() != BITS as usize / 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let words = (0..hex.len())
        .step_by(16)
        .map(|at| u64::from_str_radix(&hex[at..at + 16], 16).ok())
        .collect::<Option<Vec<u64>>>()?;
    Some(Fingerprint::from_words(words))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{canonical_set, generation_metrics};

    const TRAIN: &[&str] = &[
        "CCO",
        "OCC",
        "c1ccccc1",
        "CC(=O)Nc1ccccc1",
        "not a molecule",
    ];
    const REFERENCE: &[&str] = &[
        "c1ccc2ccccc2c1",
        "CC(=O)Oc1ccccc1C(=O)O",
        "O=C(O)c1ccc2[nH]ccc2c1",
        "C1CCC(CC1)c1ccccc1",
        "CN1CCC(CC1)c1ccccc1",
    ];

    fn sets() -> PreparedSets {
        PreparedSets {
            train: Some(canonical_set(TRAIN)),
            reference: Some(ReferenceSet::new(REFERENCE)),
            description: "from the test's lists".to_owned(),
        }
    }

    fn written(sets: &PreparedSets) -> Vec<u8> {
        let mut out = Vec::new();
        sets.write_to(&mut out).unwrap();
        out
    }

    fn read(bytes: &[u8]) -> Result<PreparedSets, PreparedSetsError> {
        PreparedSets::read_from(bytes)
    }

    #[test]
    fn sets_read_back_as_written_and_score_the_same() {
        let sets = sets();
        assert_eq!(sets.train.as_ref().unwrap().len(), 3);
        assert_eq!(sets.reference.as_ref().unwrap().len(), 5);
        let bytes = written(&sets);
        // Two lines, the header first; the same sets write the same bytes.
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(PreparedSets::is_header(
            bytes.split(|&b| b == b'\n').next().unwrap()
        ));
        assert_eq!(bytes, written(&sets));
        let back = read(&bytes).unwrap();
        assert_eq!(back, sets);
        let generated = ["CCO", "c1ccc2ccccc2c1", "C1CCC(CC1)c1ccccc1", "CCN", "C1CC"];
        let fresh = generation_metrics(&generated, sets.train.as_ref(), sets.reference.as_ref());
        let from_file =
            generation_metrics(&generated, back.train.as_ref(), back.reference.as_ref());
        assert_eq!(fresh, from_file);
        assert!(fresh.snn.is_some() && fresh.novelty.is_some() && fresh.scaf.is_some());
        // Either set alone.
        for alone in [
            PreparedSets {
                reference: None,
                ..sets.clone()
            },
            PreparedSets {
                train: None,
                ..sets.clone()
            },
        ] {
            assert_eq!(read(&written(&alone)).unwrap(), alone);
        }
    }

    /// `bytes` with its header's JSON changed by `edit`.
    fn with_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let split = bytes.iter().position(|&b| b == b'\n').unwrap();
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[..split]).unwrap();
        edit(&mut header);
        let mut out = serde_json::to_vec(&header).unwrap();
        out.extend_from_slice(&bytes[split..]);
        out
    }

    #[test]
    fn other_files_versions_and_engines_are_refused_by_name() {
        let bytes = written(&sets());
        let err = |bytes: &[u8]| read(bytes).unwrap_err().to_string();
        assert_eq!(
            err(b"smiles\nCCO\n"),
            "not a prepared-sets file (its first line is not the header `cargo xtask chem prepare` writes)"
        );
        assert!(!PreparedSets::is_header(b"smiles"));
        // A long file without a line break is not read whole.
        let mut endless = std::io::repeat(b'x').take(1 << 40);
        let mut reader = std::io::BufReader::new(&mut endless);
        assert!(matches!(
            PreparedSets::read_from(&mut reader),
            Err(PreparedSetsError::NotPrepared(_))
        ));
        assert_eq!(
            err(b""),
            "not a prepared-sets file (its first line is not the header `cargo xtask chem prepare` writes)"
        );
        let newer = with_header(&bytes, |h| h["version"] = 2.into());
        assert_eq!(
            err(&newer),
            "a prepared-sets file of format version 2, and this build reads version 1"
        );
        let other = with_header(&bytes, |h| h["engine"] = "rdkit 2025.03".into());
        assert_eq!(
            err(&other),
            format!("prepared with another engine (`rdkit 2025.03`); this build uses `{ENGINE}`")
        );
        let unlike = with_header(&bytes, |h| h["format"] = "something else".into());
        assert_eq!(
            err(&unlike),
            "not a prepared-sets file (its header says format `something else`)"
        );
        let missing = with_header(&bytes, |h| {
            h.as_object_mut().unwrap().remove("engine");
        });
        assert!(
            err(&missing).starts_with(
                "not a prepared-sets file (its header does not read: missing field `engine`"
            ),
            "{}",
            err(&missing)
        );
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_smaller_set() {
        let bytes = written(&sets());
        let err = |bytes: &[u8]| read(bytes).unwrap_err().to_string();
        // Cut short anywhere in the body.
        let split = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        for cut in [split, split + 1, bytes.len() / 2, bytes.len() - 3] {
            assert_eq!(
                err(&bytes[..cut]),
                "damaged body: it ends too soon (a file cut short?)",
                "cut at {cut}"
            );
        }
        // A fingerprint edited.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let fingerprint = text.split("\"fingerprints\":[\"").nth(1).unwrap();
        let first = &fingerprint[..BITS as usize / 4];
        let short = &first[..first.len() - 2];
        for bad in [
            format!("zz{}", &first[2..]),
            format!("+0{}", &first[2..]),
            short.to_owned(),
        ] {
            let edited = text.replacen(first, &bad, 1);
            assert!(
                err(edited.as_bytes())
                    .starts_with("damaged body: reference fingerprint 1 is not 1024 bits in hex"),
                "{bad}: {}",
                err(edited.as_bytes())
            );
        }
        // A training molecule dropped, so the counts disagree.
        let canonical = text.split("\"train\":[\"").nth(1).unwrap();
        let end = canonical.find("\",\"").unwrap();
        let dropped = text.replacen(&format!("\"{}\",", &canonical[..end]), "", 1);
        assert_eq!(
            err(dropped.as_bytes()),
            "damaged body: the header counts Some(3) training and Some(5) reference molecules, the body Some(2) and Some(5)"
        );
    }

    #[test]
    fn the_engine_named_in_files_is_the_one_the_workspace_pins() {
        let manifest = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml"),
        )
        .unwrap();
        let pin = manifest
            .lines()
            .find(|l| l.starts_with("cosmolkit ="))
            .expect("the workspace pins cosmolkit");
        let version = pin.split('"').nth(1).unwrap().trim_start_matches('=');
        assert!(
            ENGINE.starts_with(&format!("cosmolkit {version};")),
            "{pin} vs {ENGINE}"
        );
    }
}
