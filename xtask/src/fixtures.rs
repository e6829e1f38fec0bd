//! Cuts the small MOSES subsets bundled in `fixtures/data` from the full splits in
//! `../shared/data/moses`. Deterministic: every k-th molecule of a split, in file order.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, bail};

/// (output file, MOSES split, molecules kept)
const SUBSETS: &[(&str, &str, usize)] = &[
    ("train.csv", "train.csv.gz", 20_000),
    ("val.csv", "test.csv.gz", 2_000),
    ("test.csv", "test_scaffolds.csv.gz", 2_000),
];

pub fn run() -> anyhow::Result<()> {
    let root = crate::root();
    let source = root.join("../shared/data/moses");
    if !source.is_dir() {
        bail!(
            "{} not found: the full MOSES splits live there",
            source.display()
        );
    }
    let out_dir = root.join("fixtures/data");
    std::fs::create_dir_all(&out_dir)?;
    for (out, split, keep) in SUBSETS {
        let rows = read_split(&source.join(split))?;
        let stride = rows.len() / keep;
        let mut file = std::io::BufWriter::new(std::fs::File::create(out_dir.join(out))?);
        writeln!(file, "smiles")?;
        for smiles in rows.iter().step_by(stride).take(*keep) {
            writeln!(file, "{smiles}")?;
        }
        file.flush()?;
        println!(
            "fixtures/data/{out}: {keep} of {} molecules of {split} (every {stride}th)",
            rows.len()
        );
    }
    std::fs::copy(source.join("LICENSE"), out_dir.join("LICENSE"))?;
    Ok(())
}

/// The SMILES of a MOSES split (`.csv.gz` with the header `SMILES`).
pub(crate) fn read_split(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut lines = reader.lines();
    let header = lines.next().context("empty split")??;
    if header.trim() != "SMILES" {
        bail!(
            "{}: expected the header `SMILES`, got {header:?}",
            path.display()
        );
    }
    lines
        .map(|l| Ok(l?.trim().to_owned()))
        .filter(|l| !matches!(l, Ok(s) if s.is_empty()))
        .collect()
}
