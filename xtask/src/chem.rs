//! `cargo xtask chem canon|metrics|prepare|draw`: the chemistry from the terminal.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use rayon::prelude::*;
use xp_chem::InvalidKind;

use crate::oracle::as_strs;

#[derive(Subcommand)]
pub enum ChemCommand {
    /// Canonical SMILES of each line of standard input; an empty line for an invalid one.
    Canon {
        /// Say on standard error why each invalid line is invalid.
        #[arg(long)]
        why: bool,
    },
    /// MOSES generation metrics of the SMILES in a file (one per line, or a CSV with a `smiles`
    /// column in any case; gzip-compressed files are decompressed).
    Metrics {
        /// The generated SMILES to score (from `cargo xtask sample -o`, for one).
        #[arg(long)]
        generated: PathBuf,
        /// Training set, for novelty.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Reference set (MOSES: its test split), for SNN, Frag and Scaf.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// The training and reference sets from `chem prepare`, read in seconds instead of
        /// computed again.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["train", "reference"])]
        prepared: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Computes the training and reference sets of `metrics` once and saves them for
    /// `metrics --prepared FILE` (MOSES's splits take minutes to compute, and seconds to read).
    #[command(group(clap::ArgGroup::new("sets").required(true).multiple(true).args(["train", "reference"])))]
    Prepare {
        /// Training set, for novelty.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Reference set (MOSES: its test split), for SNN, Frag and Scaf.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// Where to write them; gzip-compressed when the name ends in `.gz`.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
    },
    /// A grid image (PNG) of the first 16 SMILES of standard input, invalid ones skipped, as
    /// RDKit's MolsToGridImage draws them.
    Draw {
        /// Where to write the PNG.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        /// Write each SMILES under its molecule.
        #[arg(long)]
        legends: bool,
        /// Molecules per row.
        #[arg(long, default_value_t = 4)]
        per_row: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// SMILES of a file (gzip-compressed or not, whatever its name: `xp_train::open_data_file`): one
/// per line, a `smiles` header line skipped, or a CSV whose header has a `smiles` column (any
/// case). A SMILES never holds a comma, so a first line with one is a CSV header. A SMILES that is
/// not UTF-8 text is kept as an invalid one (its bad bytes replaced), with a warning naming its
/// line, so validity still counts it.
fn read_smiles(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut bytes = Vec::new();
    xp_train::open_data_file(path)
        .and_then(|mut input| input.read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    // (1-based line, field) of every SMILES.
    let mut fields: Vec<(u64, &[u8])> = Vec::new();
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    if xp_chem::PreparedSets::is_header(first_line) {
        bail!(
            "{} holds prepared sets from `chem prepare`, not SMILES: pass it as `--prepared {}`",
            path.display(),
            path.display()
        );
    }
    let first = String::from_utf8_lossy(first_line);
    if !first.contains(',') {
        let skip_header = first.trim().eq_ignore_ascii_case("smiles");
        // An empty file has no line; a final newline ends the last line.
        if !bytes.is_empty() {
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            fields.extend(
                (1..)
                    .zip(body.split(|&b| b == b'\n'))
                    .skip(usize::from(skip_header)),
            );
        }
        return Ok(texts(path, &fields));
    }
    let mut csv = csv::Reader::from_reader(bytes.as_slice());
    let header = csv
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .clone();
    let Some(column) = header
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case("smiles"))
    else {
        bail!(
            "{}: no `smiles` column (the header has: {})",
            path.display(),
            header.iter().collect::<Vec<_>>().join(", ")
        );
    };
    let rows: Vec<csv::ByteRecord> = csv
        .byte_records()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    fields.extend(rows.iter().map(|row| {
        (
            row.position().map_or(0, |p| p.line()),
            row.get(column).unwrap_or_default(),
        )
    }));
    Ok(texts(path, &fields))
}

/// The canonical training set of `path`, for novelty; an empty one is refused, as novelty 1
/// against nothing would mean nothing.
fn train_set(path: &Path) -> anyhow::Result<std::collections::HashSet<String>> {
    let set = xp_chem::canonical_set(&as_strs(&read_smiles(path)?));
    if set.is_empty() {
        bail!(
            "{}: no valid SMILES in the training set, so novelty would mean nothing",
            path.display()
        );
    }
    Ok(set)
}

/// The reference set of `path`, for SNN, Frag and Scaf; an empty one is refused.
fn reference_set(path: &Path) -> anyhow::Result<xp_chem::ReferenceSet> {
    let set = xp_chem::ReferenceSet::new(&as_strs(&read_smiles(path)?));
    if set.is_empty() {
        bail!(
            "{}: no valid SMILES in the reference set, so SNN, Frag and Scaf would mean nothing",
            path.display()
        );
    }
    Ok(set)
}

/// The sets `chem prepare` wrote to `path` (gzip-compressed or not, whatever its name).
fn read_prepared(path: &Path) -> anyhow::Result<xp_chem::PreparedSets> {
    let input =
        xp_train::open_data_file(path).with_context(|| format!("reading {}", path.display()))?;
    xp_chem::PreparedSets::read_from(std::io::BufReader::new(input)).map_err(|err| {
        let fix = match err {
            xp_chem::PreparedSetsError::Io(_) => "",
            xp_chem::PreparedSetsError::NotPrepared(_) => {
                "; make one with `cargo xtask chem prepare --train T --reference R -o FILE`"
            }
            _ => "; make it again with `cargo xtask chem prepare`",
        };
        anyhow::anyhow!("{}: {err}{fix}", path.display())
    })
}

/// The trimmed text of each field, a field that is not UTF-8 decoded lossily (so it is an invalid
/// SMILES) and reported on standard error.
fn texts(path: &Path, fields: &[(u64, &[u8])]) -> Vec<String> {
    let mut unreadable = Vec::new();
    let texts = fields
        .iter()
        .map(|&(line, field)| match line_text(field) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                unreadable.push(line);
                String::from_utf8_lossy(field).trim().to_owned()
            }
        })
        .collect();
    if let Some(first) = unreadable.first() {
        eprintln!(
            "warning: {}: {} SMILES not UTF-8 text (the first on line {first}), counted as invalid",
            path.display(),
            unreadable.len()
        );
    }
    texts
}

/// One input line as trimmed text, or why it is not text.
fn line_text(line: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(line).map(str::trim).map_err(|e| {
        format!(
            "not UTF-8 text (a bad byte at column {})",
            e.valid_up_to() + 1
        )
    })
}

/// Standard input's lines, each as text or why it is not.
fn stdin_lines() -> impl Iterator<Item = std::io::Result<Result<String, String>>> {
    std::io::stdin()
        .lock()
        .split(b'\n')
        .map(|line| line.map(|bytes| line_text(&bytes).map(str::to_owned)))
}

pub fn run(command: ChemCommand) -> anyhow::Result<()> {
    match command {
        ChemCommand::Prepare {
            train,
            reference,
            out,
        } => {
            let file = crate::sample::replacement_for(&out, "moses.sets.gz")?;
            let mut made_from = Vec::new();
            for (flag, path) in [("--train", &train), ("--reference", &reference)] {
                if let Some(path) = path {
                    made_from.push(format!("{flag} {}", path.display()));
                }
            }
            let sets = xp_chem::PreparedSets {
                train: train.as_deref().map(train_set).transpose()?,
                reference: reference.as_deref().map(reference_set).transpose()?,
                description: format!("cargo xtask chem prepare {}", made_from.join(" ")),
            };
            let mut bytes = Vec::new();
            if out.extension().is_some_and(|e| e == "gz") {
                let mut gz = flate2::write::GzEncoder::new(&mut bytes, flate2::Compression::fast());
                sets.write_to(&mut gz)?;
                gz.finish()?;
            } else {
                sets.write_to(&mut bytes)?;
            }
            crate::sample::write_whole(file, &out, &bytes)?;
            let count = |n: Option<usize>, what| n.map(|n| format!("{n} {what}"));
            let counts: Vec<String> = [
                count(
                    sets.train.as_ref().map(|t| t.len()),
                    "distinct training molecules",
                ),
                count(
                    sets.reference.as_ref().map(|r| r.len()),
                    "reference molecules",
                ),
            ]
            .into_iter()
            .flatten()
            .collect();
            eprintln!(
                "wrote {} ({}; {:.1} MB): score against it with `cargo xtask chem metrics --generated FILE --prepared {}`",
                out.display(),
                counts.join(", "),
                bytes.len() as f64 / 1e6,
                out.display()
            );
            Ok(())
        }
        ChemCommand::Draw {
            out,
            legends,
            per_row,
        } => {
            if per_row == 0 {
                bail!("--per-row must be at least 1");
            }
            // Made first, so that an output that cannot be written fails before the work; the
            // image goes through it and a rename, so a full disk or a Ctrl-C never leaves a
            // truncated image in place of an earlier one.
            let file = crate::sample::replacement_for(&out, "grid.png")?;
            // (1-based input line, SMILES or why it is not text) of the non-empty lines.
            let mut lines: Vec<(usize, Result<String, String>)> = Vec::new();
            for (i, line) in stdin_lines().enumerate() {
                match line.context("reading standard input")? {
                    Ok(text) if text.is_empty() => {}
                    text => lines.push((i + 1, text)),
                }
            }
            if lines.is_empty() {
                bail!("no SMILES on standard input (give one per line)");
            }
            // A line that is not text is drawn as an invalid SMILES, so it is skipped and said to be.
            let smiles: Vec<&str> = lines
                .iter()
                .map(|(_, text)| text.as_deref().unwrap_or("\u{fffd}"))
                .collect();
            let options = xp_chem::GridOptions {
                mols_per_row: per_row,
                ..xp_chem::GridOptions::default()
            };
            let say_skipped = |i: usize, why: &dyn std::fmt::Display| match &lines[i] {
                (line, Err(not_text)) => eprintln!("skipped line {line}: {not_text}"),
                (line, Ok(_)) => eprintln!("skipped line {line}: {why}"),
            };
            let grid = match xp_chem::grid_image(&smiles, legends.then_some(&smiles[..]), &options)
            {
                Ok(grid) => grid,
                Err(err) => {
                    if let xp_chem::ChemError::NothingToDraw { skipped } = &err {
                        for (i, why) in skipped {
                            say_skipped(*i, why);
                        }
                    }
                    return Err(err.into());
                }
            };
            for (i, why) in &grid.skipped {
                say_skipped(*i, why);
            }
            crate::sample::write_whole(file, &out, &grid.to_png()?)?;
            eprintln!(
                "wrote {} ({}x{}, {} molecule{})",
                out.display(),
                grid.width,
                grid.height,
                grid.drawn,
                if grid.drawn == 1 { "" } else { "s" }
            );
            Ok(())
        }
        ChemCommand::Canon { why } => {
            // Lines go through in chunks, each on every core, and come out in input order.
            const CHUNK: usize = 4096;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut input = stdin_lines();
            let (mut lines, mut number) = (Vec::with_capacity(CHUNK), 0usize);
            let mut invalid = xp_chem::InvalidCounts::default();
            loop {
                lines.clear();
                for line in input.by_ref().take(CHUNK) {
                    lines.push(line.context("reading standard input")?);
                }
                if lines.is_empty() {
                    break;
                }
                let answers: Vec<Result<String, (InvalidKind, String)>> = lines
                    .par_iter()
                    .map(|line| match line {
                        Ok(text) => xp_chem::canonical_smiles(text).map_err(|e| {
                            (
                                e.invalid_kind().unwrap_or(InvalidKind::Other),
                                e.to_string(),
                            )
                        }),
                        // A byte that is not text is no SMILES character.
                        Err(not_text) => Err((InvalidKind::Syntax, not_text.clone())),
                    })
                    .collect();
                for answer in answers {
                    number += 1;
                    match answer {
                        Ok(c) => writeln!(out, "{c}")?,
                        Err((kind, e)) => {
                            writeln!(out)?;
                            invalid.add(kind);
                            if why {
                                eprintln!("line {number}: {e}");
                            }
                        }
                    }
                }
            }
            out.flush()?;
            if why {
                eprintln!(
                    "{number} lines: {} valid, invalid {}",
                    number - invalid.total(),
                    invalid.summary()
                );
            }
            Ok(())
        }
        ChemCommand::Metrics {
            generated,
            train,
            reference,
            prepared,
            format,
        } => {
            let generated_path = generated;
            let generated = read_smiles(&generated_path)?;
            if generated.is_empty() {
                bail!("{}: no SMILES in it", generated_path.display());
            }
            let (train, reference) = match prepared {
                Some(path) => {
                    let sets = read_prepared(&path)?;
                    (sets.train, sets.reference)
                }
                None => (
                    train.as_deref().map(train_set).transpose()?,
                    reference.as_deref().map(reference_set).transpose()?,
                ),
            };
            let m = xp_chem::generation_metrics(
                &as_strs(&generated),
                train.as_ref(),
                reference.as_ref(),
            );
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&m)?),
                Format::Table => {
                    let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
                    println!("{:<14} {}", "molecules", m.count);
                    println!("{:<14} {:.4}", "validity", m.validity);
                    println!("{:<14} {}", "invalid", m.invalid.summary());
                    for entry in m.entries() {
                        println!("{:<14} {}", entry.label, show(entry.value));
                    }
                }
            }
            Ok(())
        }
    }
}
