use std::io::BufRead;
use std::time::Instant;
fn main() {
    let lines: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map(|l| l.unwrap())
        .take(2048)
        .collect();
    let mols: Vec<xp_chem::Molecule> = lines
        .iter()
        .filter_map(|s| xp_chem::Molecule::parse(s).ok())
        .collect();
    let t = Instant::now();
    for s in &lines {
        let _ = xp_chem::canonical_smiles(s);
    }
    let a = t.elapsed();
    let t = Instant::now();
    for m in &mols {
        let _ = m.morgan_fingerprint(2, 1024);
    }
    let b = t.elapsed();
    let t = Instant::now();
    for m in &mols {
        let _ = m.brics_fragments();
    }
    let c = t.elapsed();
    let t = Instant::now();
    for m in &mols {
        let _ = m.murcko_scaffold().and_then(|s| s.canonical_smiles());
    }
    let d = t.elapsed();
    let t = Instant::now();
    for m in &mols {
        let _ = m.passes_filters();
    }
    let e = t.elapsed();
    println!(
        "n={} canon {:?} morgan {:?} brics {:?} scaffold {:?} filters {:?}",
        lines.len(),
        a,
        b,
        c,
        d,
        e
    );
}
