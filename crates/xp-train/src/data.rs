//! Training data: a CSV column of SMILES, checked and tokenised with xp-chem. Rows that do not
//! parse as molecules or are longer than `max_length` tokens are skipped and counted, with the
//! first few line numbers, so a user can find them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use xp_chem::{Vocabulary, tokenize};

use crate::error::TrainError;
use crate::gnn::EncodedGraph;

/// How many skipped rows are listed by line number.
const LISTED: usize = 5;

/// Why a row was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What reading one file found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub path: PathBuf,
    /// The column actually read (it may differ in case from the one asked for).
    pub column: String,
    pub rows: usize,
    pub kept: usize,
    pub invalid: usize,
    pub too_long: usize,
    /// Tokens not in the vocabulary (validation and test sets), encoded as `<unk>`.
    pub unknown_tokens: usize,
    /// The first few skipped rows.
    pub first_skipped: Vec<Skipped>,
}

impl LoadReport {
    /// One line for the console: `train.csv: 20000 rows, 19990 kept, 3 invalid (lines 5, 9, ..), 7 too long`.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.path.display(), self.counts())
    }

    /// The counts of [`summary`](Self::summary), without the file's name.
    fn counts(&self) -> String {
        let plural = if self.rows == 1 { "" } else { "s" };
        let mut text = format!("{} row{plural}, {} kept", self.rows, self.kept);
        if self.invalid > 0 {
            text.push_str(&format!(", {} invalid", self.invalid));
        }
        if self.too_long > 0 {
            text.push_str(&format!(", {} too long", self.too_long));
        }
        if !self.first_skipped.is_empty() {
            let lines: Vec<String> = self
                .first_skipped
                .iter()
                .map(|s| format!("line {}: {}", s.line, s.reason))
                .collect();
            text.push_str(&format!(" (first skipped: {})", lines.join("; ")));
        }
        if self.unknown_tokens > 0 {
            text.push_str(&format!(
                ", {} tokens unknown to the vocabulary",
                self.unknown_tokens
            ));
        }
        text
    }
}

/// Kept SMILES of one file, in file order.
#[derive(Debug, Clone)]
pub struct SmilesFile {
    pub smiles: Vec<String>,
    /// The graph of each kept SMILES, in the same order; empty unless asked for.
    pub graphs: Vec<EncodedGraph>,
    /// The canonical SMILES of each kept SMILES, in the same order; empty unless asked for.
    pub canonical: Vec<String>,
    pub report: LoadReport,
}

/// What [`load_molecules`] makes of each kept molecule, from the one parse that checks it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Products {
    /// Its graph (`gnn`).
    pub graphs: bool,
    /// Its canonical SMILES (the training set, for novelty).
    pub canonical: bool,
}

/// Opens a data file, decompressing it when it is gzip. Its first bytes decide, not its name: MOSES
/// ships `.csv.gz`, and a file unpacked or packed without renaming must still read as what it is.
pub fn open_data_file(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let file = File::open(path)?;
    // Opening a folder succeeds; reading it would say only "Is a directory (os error 21)".
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "it is a folder; give a file",
        ));
    }
    let mut file = BufReader::new(file);
    let gzip = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(Gzip(MultiGzDecoder::new(file)))
    } else {
        Box::new(file)
    })
}

/// A gzip stream whose errors say so: flate2's own ("incomplete deflate stream") do not.
struct Gzip<R>(MultiGzDecoder<R>);

impl<R: BufRead> Read for Gzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("the gzip data is cut short or corrupt ({e})"),
            )
        })
    }
}

/// Reads `column` of the CSV at `path` (gzip-compressed or not, see [`open_data_file`]). A column
/// whose name differs only in case is accepted (the MOSES files say `SMILES`, ours `smiles`).
/// Returns the column's actual name and its `(line, value)` rows; a value that is not UTF-8 text
/// is an `Err` saying so (the row is skipped as invalid; other columns may hold any bytes).
pub fn read_column(path: &Path, column: &str) -> Result<(String, Vec<Row>), TrainError> {
    let file_error = |problem: String| TrainError::Data {
        path: path.to_path_buf(),
        problem,
    };
    let input = open_data_file(path).map_err(|e| file_error(format!("cannot open: {e}")))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| file_error(format!("cannot read the header row: {e}")))?
        .clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(file_error(
            "the file is empty; expected a header row naming a SMILES column".to_owned(),
        ));
    }
    let index = headers
        .iter()
        .position(|h| h == column)
        .or_else(|| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(column))
        })
        .ok_or_else(|| {
            let have: Vec<&str> = headers.iter().collect();
            file_error(format!(
                "no column `{column}` (the header has: {}); set data.smiles_column",
                have.join(", ")
            ))
        })?;
    let mut rows = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::Io(io) => file_error(format!("cannot read: {io}")),
            _ => file_error(format!("bad CSV: {e}")),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let value = std::str::from_utf8(record.get(index).unwrap_or_default())
            .map(|text| text.trim().to_owned())
            .map_err(|e| {
                format!(
                    "not UTF-8 text (a bad byte at position {} of the SMILES)",
                    e.valid_up_to() + 1
                )
            });
        rows.push((line, value));
    }
    Ok((headers[index].to_owned(), rows))
}

/// One data row: its 1-based line number and its SMILES, or why that field is unreadable.
type Row = (u64, Result<String, String>);

/// Reads, checks and filters one file, on `workers` threads (0: the calling thread).
pub fn load_smiles(
    path: &Path,
    column: &str,
    max_length: usize,
    workers: usize,
) -> Result<SmilesFile, TrainError> {
    load_molecules(
        path,
        column,
        max_length,
        workers,
        Products::default(),
        &AtomicBool::new(false),
    )
}

/// [`load_smiles`], and each kept molecule's `products` too, from the one parse that checks it
/// (parsing is most of the load). Once `stop` is set (Ctrl-C), the remaining rows are passed
/// over and the load ends with [`TrainError::Stopped`].
pub(crate) fn load_molecules(
    path: &Path,
    column: &str,
    max_length: usize,
    workers: usize,
    products: Products,
    stop: &AtomicBool,
) -> Result<SmilesFile, TrainError> {
    let (headers_column, rows) = read_column(path, column)?;
    // A kept row's verdict: its graph and canonical SMILES, those asked for.
    type Verdict = Result<(Option<EncodedGraph>, Option<String>), (bool, Skipped)>;
    let check = |(line, smiles): &Row| -> Verdict {
        if stop.load(Ordering::Relaxed) {
            // Thrown away below.
            return Err((
                false,
                Skipped {
                    line: *line,
                    reason: String::new(),
                },
            ));
        }
        let skip = |too_long, reason: String| {
            Err((
                too_long,
                Skipped {
                    line: *line,
                    reason,
                },
            ))
        };
        let smiles = match smiles {
            Ok(smiles) => smiles,
            Err(why) => return skip(false, why.clone()),
        };
        if smiles.is_empty() {
            return skip(false, "empty".to_owned());
        }
        match tokenize(smiles) {
            Err(e) => return skip(false, e.to_string()),
            // `<bos>` and `<eos>` are added to every sequence.
            Ok(tokens) if tokens.len() + 1 > max_length => {
                return skip(
                    true,
                    format!(
                        "{} tokens, more than data.max_length = {max_length}",
                        tokens.len() + 1
                    ),
                );
            }
            Ok(_) => {}
        }
        if !products.graphs && products.canonical {
            // Checked and written in one go, without building the engine's molecule.
            return match xp_chem::canonical_smiles(smiles) {
                Ok(canonical) => Ok((None, Some(canonical))),
                Err(e) => skip(false, e.to_string()),
            };
        }
        let molecule = match xp_chem::Molecule::parse(smiles) {
            Ok(molecule) => molecule,
            Err(e) => return skip(false, e.to_string()),
        };
        let graph = match products.graphs.then(|| molecule.graph()) {
            None => None,
            Some(Ok(graph)) => Some(EncodedGraph::new(&graph)),
            Some(Err(e)) => return skip(false, format!("cannot read its graph: {e}")),
        };
        let canonical = match products.canonical.then(|| molecule.canonical_smiles()) {
            None => None,
            Some(Ok(canonical)) => Some(canonical),
            Some(Err(e)) => return skip(false, format!("cannot write its canonical SMILES: {e}")),
        };
        Ok((graph, canonical))
    };
    let verdicts: Vec<Verdict> = if workers == 0 {
        rows.iter().map(check).collect()
    } else {
        pool(workers)?.install(|| rows.par_iter().map(check).collect())
    };
    if stop.load(Ordering::Relaxed) {
        return Err(TrainError::Stopped);
    }
    let mut report = LoadReport {
        path: path.to_path_buf(),
        column: headers_column,
        rows: rows.len(),
        ..LoadReport::default()
    };
    let mut smiles = Vec::with_capacity(rows.len());
    let mut graphs = Vec::new();
    let mut canonical = Vec::new();
    for ((_, text), verdict) in rows.into_iter().zip(verdicts) {
        match verdict {
            // A kept row's text is always readable.
            Ok((graph, canonical_text)) => {
                smiles.extend(text.ok());
                graphs.extend(graph);
                canonical.extend(canonical_text);
            }
            Err((too_long, skipped)) => {
                if too_long {
                    report.too_long += 1;
                } else {
                    report.invalid += 1;
                }
                if report.first_skipped.len() < LISTED {
                    report.first_skipped.push(skipped);
                }
            }
        }
    }
    report.kept = smiles.len();
    if smiles.is_empty() {
        return Err(TrainError::Data {
            path: path.to_path_buf(),
            problem: format!("no usable rows: {}", report.counts()),
        });
    }
    Ok(SmilesFile {
        smiles,
        graphs,
        canonical,
        report,
    })
}

pub(crate) fn pool(workers: usize) -> Result<rayon::ThreadPool, TrainError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| TrainError::Other(format!("cannot start {workers} loader threads: {e}")))
}

/// Encodes every SMILES (`<bos>` ... `<eos>`), counting unknown tokens into `report`.
pub fn encode_all(vocab: &Vocabulary, file: &mut SmilesFile) -> Vec<Vec<u32>> {
    let mut unknown = 0;
    let encoded = file
        .smiles
        .iter()
        .map(|s| {
            let e = vocab.encode(s).expect("kept SMILES tokenize");
            unknown += e.unknown;
            e.ids
        })
        .collect();
    file.report.unknown_tokens = unknown;
    encoded
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_folder_is_not_opened_as_a_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_data_file(dir.path()).err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::IsADirectory);
        assert_eq!(err.to_string(), "it is a folder; give a file");
    }

    #[test]
    fn a_data_file_is_decompressed_by_its_content_not_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let csv = "smiles\nCCO\nc1ccccc1\n";
        let files = [
            ("packed.csv.gz", gzip(csv)),
            ("packed_but_named.csv", gzip(csv)),
            ("unpacked_but_named.csv.gz", csv.as_bytes().to_vec()),
        ];
        for (name, bytes) in files {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let (column, rows) = read_column(&path, "smiles").unwrap();
            assert_eq!(column, "smiles", "{name}");
            let smiles: Vec<_> = rows.into_iter().map(|(_, s)| s.unwrap()).collect();
            assert_eq!(smiles, ["CCO", "c1ccccc1"], "{name}");
        }
    }

    #[test]
    fn a_cut_short_gzip_file_is_an_error_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let rows: String = (0..2000)
            .map(|i| format!("C{}O\n", "C".repeat(i % 40)))
            .collect();
        let packed = gzip(&format!("smiles\n{rows}"));
        let path = dir.path().join("cut.csv.gz");
        std::fs::write(&path, &packed[..packed.len() / 2]).unwrap();
        let message = read_column(&path, "smiles").unwrap_err().to_string();
        assert!(message.contains("cut.csv.gz"), "{message}");
        assert!(
            message.contains("gzip data is cut short or corrupt"),
            "{message}"
        );
        assert!(!message.contains("bad CSV"), "{message}");
    }

    #[test]
    fn graphs_loaded_with_the_molecules_line_up_with_the_kept_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.csv");
        // Kept rows between an unclosed ring, a valence error and one too long.
        let rows = [
            "CCO",
            "C1CC",
            "c1ccncc1",
            "FC(F)(F)(F)F",
            "CCCCCCCCCCCCCCCCCCCC",
            "[NH4+]",
        ];
        std::fs::write(&path, format!("smiles\n{}\n", rows.join("\n"))).unwrap();
        let load = |workers, graphs, canonical| {
            let products = Products { graphs, canonical };
            load_molecules(
                &path,
                "smiles",
                14,
                workers,
                products,
                &AtomicBool::new(false),
            )
            .unwrap()
        };
        for workers in [0, 2] {
            let loaded = load(workers, true, false);
            assert_eq!(loaded.smiles, ["CCO", "c1ccncc1", "[NH4+]"]);
            assert!(loaded.canonical.is_empty());
            let from_own_parse: Vec<_> = loaded
                .smiles
                .iter()
                .map(|s| EncodedGraph::from_smiles(s).unwrap())
                .collect();
            assert_eq!(loaded.graphs, from_own_parse);
            assert_eq!((loaded.report.invalid, loaded.report.too_long), (2, 1));
            let plain = load_smiles(&path, "smiles", 14, workers).unwrap();
            assert_eq!(plain.smiles, loaded.smiles);
            assert!(plain.graphs.is_empty());
            // Canonical SMILES from the checking parse, with or without graphs: the same rows
            // kept for the same reasons, each beside its canonical text.
            for graphs in [false, true] {
                let both = load(workers, graphs, true);
                assert_eq!(both.smiles, loaded.smiles);
                assert_eq!(both.report, loaded.report);
                assert_eq!(both.graphs.len(), if graphs { 3 } else { 0 });
                assert_eq!(both.canonical, ["CCO", "c1ccncc1", "[NH4+]"]);
            }
        }
    }

    #[test]
    fn canonical_smiles_from_the_load_match_the_engine_s() {
        // The bundled validation set (already canonical, as MOSES ships it) after SMILES that
        // are not: Kekulé rings, other atom orders, stereo marks, charges, invalid rows.
        let val = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data/val.csv"),
        )
        .unwrap();
        let own =
            "OCC\nC1=CC=CC=C1\nF/C=C/F\nN[C@@H](C)C(=O)O\nC(=O)([O-])C.[Na+]\nC1CC\nc1cccc1\n";
        let mut lines = val.lines();
        let header = lines.next().unwrap();
        let body: Vec<&str> = lines.collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.csv");
        std::fs::write(&path, format!("{header}\n{own}{}\n", body.join("\n"))).unwrap();
        let products = Products {
            graphs: false,
            canonical: true,
        };
        let loaded =
            load_molecules(&path, "smiles", 100, 2, products, &AtomicBool::new(false)).unwrap();
        let plain = load_smiles(&path, "smiles", 100, 2).unwrap();
        assert_eq!(loaded.smiles, plain.smiles);
        assert_eq!(loaded.report, plain.report);
        assert_eq!(loaded.report.invalid, 2);
        let engine: Vec<String> = loaded
            .smiles
            .iter()
            .map(|s| {
                xp_chem::Molecule::parse(s)
                    .unwrap()
                    .canonical_smiles()
                    .unwrap()
            })
            .collect();
        assert_eq!(loaded.canonical, engine);
        assert_eq!(loaded.canonical[..2], ["CCO", "c1ccccc1"]);
        assert_eq!(loaded.canonical.len(), body.len() + 5);
    }
}
