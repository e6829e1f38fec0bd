//! `cargo xtask chem canon|metrics|draw`: the chemistry from the terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use flate2::read::GzDecoder;

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
    /// column in any case; `.gz` files are decompressed).
    Metrics {
        #[arg(long)]
        generated: PathBuf,
        /// Training set, for novelty.
        #[arg(long)]
        train: Option<PathBuf>,
        /// Reference set (MOSES: its test split), for SNN, Frag and Scaf.
        #[arg(long)]
        reference: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// A grid image (PNG) of the first 16 SMILES of standard input, invalid ones skipped, as
    /// RDKit's MolsToGridImage draws them.
    Draw {
        /// Where to write the PNG.
        #[arg(long)]
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

/// SMILES of a file (gzip-compressed when its name ends in `.gz`, as MOSES ships its splits): one
/// per line, a `smiles` header line skipped, or a CSV whose header has a `smiles` column (any
/// case). A SMILES never holds a comma, so a first line with one is a CSV header.
fn read_smiles(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        GzDecoder::new(file).read_to_string(&mut text)
    } else {
        BufReader::new(file).read_to_string(&mut text)
    };
    read.with_context(|| {
        format!(
            "reading {} as text (a gzip-compressed file needs a name ending in .gz)",
            path.display()
        )
    })?;
    let first = text.lines().next().unwrap_or_default().trim();
    if !first.contains(',') {
        let mut lines: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
        if first.eq_ignore_ascii_case("smiles") {
            lines.remove(0);
        }
        return Ok(lines);
    }
    let mut csv = csv::Reader::from_reader(text.as_bytes());
    let header = csv.headers()?.clone();
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
    csv.records()
        .map(|row| {
            let row = row.with_context(|| format!("reading {}", path.display()))?;
            Ok(row.get(column).unwrap_or_default().trim().to_owned())
        })
        .collect()
}

pub fn run(command: ChemCommand) -> anyhow::Result<()> {
    match command {
        ChemCommand::Draw {
            out,
            legends,
            per_row,
        } => {
            let lines: Vec<String> = std::io::stdin()
                .lock()
                .lines()
                .collect::<Result<_, _>>()
                .context("reading standard input")?;
            let smiles: Vec<&str> = lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect();
            let options = xp_chem::GridOptions {
                mols_per_row: per_row,
                ..xp_chem::GridOptions::default()
            };
            let grid = xp_chem::grid_image(&smiles, legends.then_some(&smiles[..]), &options)?;
            for (i, why) in &grid.skipped {
                eprintln!("skipped line {}: {why}", i + 1);
            }
            std::fs::write(&out, grid.to_png()?)
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!(
                "wrote {} ({}x{}, {} molecules)",
                out.display(),
                grid.width,
                grid.height,
                grid.drawn
            );
            Ok(())
        }
        ChemCommand::Canon { why } => {
            let stdin = std::io::stdin().lock();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for (i, line) in stdin.lines().enumerate() {
                let line = line?;
                match xp_chem::canonical_smiles(line.trim()) {
                    Ok(c) => writeln!(out, "{c}")?,
                    Err(e) => {
                        writeln!(out)?;
                        if why {
                            eprintln!("line {}: {e}", i + 1);
                        }
                    }
                }
            }
            out.flush()?;
            Ok(())
        }
        ChemCommand::Metrics {
            generated,
            train,
            reference,
            format,
        } => {
            let generated_path = generated;
            let generated = read_smiles(&generated_path)?;
            if generated.is_empty() {
                bail!("{}: no SMILES in it", generated_path.display());
            }
            // An empty set would give novelty 1 or SNN 0 that mean nothing: refuse it.
            let train = match train {
                Some(path) => {
                    let set = xp_chem::canonical_set(&as_strs(&read_smiles(&path)?));
                    if set.is_empty() {
                        bail!(
                            "{}: no valid SMILES in the training set, so novelty would mean nothing",
                            path.display()
                        );
                    }
                    Some(set)
                }
                None => None,
            };
            let reference = match reference {
                Some(path) => {
                    let set = xp_chem::ReferenceSet::new(&as_strs(&read_smiles(&path)?));
                    if set.is_empty() {
                        bail!(
                            "{}: no valid SMILES in the reference set, so SNN, Frag and Scaf would mean nothing",
                            path.display()
                        );
                    }
                    Some(set)
                }
                None => None,
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
                    for entry in m.entries() {
                        println!("{:<14} {}", entry.label, show(entry.value));
                    }
                }
            }
            Ok(())
        }
    }
}
