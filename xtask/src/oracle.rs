//! Python oracles: official readers (pandas, later TensorBoard and RDKit) check what our crates
//! write. Python is installed into `target/oracle-venv` from PyPI, pinned by
//! `xtask/python/requirements.txt`; it is never needed at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::json;
use xp_results::{Mode, Query, ResultsTracker};

fn python_dir() -> PathBuf {
    crate::root().join("xtask/python")
}

/// The venv's python, created and brought up to date with requirements.txt when needed.
pub fn python() -> anyhow::Result<PathBuf> {
    let root = crate::root();
    let venv = root.join("target/oracle-venv");
    let python = venv.join("bin/python");
    let requirements = python_dir().join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).context("reading requirements.txt")?;
    let stamp = venv.join("installed-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    println!(
        "==> oracle venv: installing {} into target/oracle-venv",
        requirements.display()
    );
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run(Command::new(&system_python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))
    .with_context(|| {
        format!("creating a venv with {system_python} (set PYTHON to another interpreter)")
    })?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))
    .context("installing the oracle requirements from PyPI")?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = crate::interrupt::status(cmd).with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn script(python: &Path, name: &str) -> Command {
    let mut cmd = Command::new(python);
    cmd.arg(python_dir().join(name));
    cmd
}

/// One oracle check, by the crate it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Check {
    Results,
    Tensorboard,
    Chem,
    Train,
}

/// Every oracle check.
pub fn run_all() -> anyhow::Result<()> {
    run_checks(None)
}

/// The oracle check `only`, or all of them.
pub fn run_checks(only: Option<Check>) -> anyhow::Result<()> {
    let python = python()?;
    let wanted = |check| only.is_none_or(|o| o == check);
    if wanted(Check::Results) {
        results(&python)?;
    }
    if wanted(Check::Tensorboard) {
        tensorboard(&python)?;
    }
    if wanted(Check::Chem) {
        chem(&python)?;
    }
    if wanted(Check::Train) {
        train(&python)?;
    }
    Ok(())
}

/// xp-train end to end: a short run of each model on a slice of the fixtures, then
/// check_train.py reads the run directories with TensorBoard, safetensors and pandas.
fn train(python: &Path) -> anyhow::Result<()> {
    let work = crate::interrupt::tempdir()?;
    let w = work.path();
    let head = |name: &str, n: usize| -> anyhow::Result<PathBuf> {
        let rows = fixture(name)?;
        let path = w.join(name);
        let mut text = String::from("smiles\n");
        for row in rows.iter().take(n) {
            text.push_str(row);
            text.push('\n');
        }
        std::fs::write(&path, text)?;
        Ok(path)
    };
    let (train, val) = (head("train.csv", 400)?, head("val.csv", 60)?);
    let (hidden, latent, layers) = (64, 16, 2);
    for model in ["autoregressive", "vae", "diffusion", "gnn"] {
        let sets = [
            format!("name=oracle_{model}"),
            format!("model.model_type={model}"),
            format!("model.hidden_dim={hidden}"),
            format!("model.latent_dim={latent}"),
            format!("model.num_layers={layers}"),
            format!("data.train_path={}", train.display()),
            format!("data.val_path={}", val.display()),
            format!("output_dir={}", w.join("out").display()),
            "device=cpu".to_owned(),
            "training.epochs=2".to_owned(),
            "training.batch_size=32".to_owned(),
            "training.learning_rate=0.01".to_owned(),
            "training.warmup_steps=5".to_owned(),
            "training.sample_size=32".to_owned(),
            "data.max_length=60".to_owned(),
            "model.diffusion_steps=8".to_owned(),
        ];
        let config = xp_config::create_config(None, &sets)?;
        xp_train::train(&config, &xp_train::TrainOptions::default())
            .with_context(|| format!("training the {model} model"))?;
    }
    run(script(python, "check_train.py")
        .arg(w.join("out"))
        .args([hidden, latent, layers].map(|n| n.to_string())))
    .context("the training oracle disagrees")
}

/// SMILES of a bundled fixture (header skipped).
fn fixture(name: &str) -> anyhow::Result<Vec<String>> {
    let path = crate::root().join("fixtures/data").join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().skip(1).map(str::to_owned).collect())
}

/// `smiles` with one to three characters deleted, inserted or replaced, picked by `seed`.
fn mutated(smiles: &str, seed: u64) -> String {
    const ALPHABET: &[u8] = b"CNOScno()=#123[]+-H@%";
    // splitmix64: a fixed, well-mixed stream per seed.
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move |n: usize| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let mut bytes = smiles.as_bytes().to_vec();
    for _ in 0..1 + next(3) {
        if bytes.is_empty() {
            break;
        }
        let at = next(bytes.len());
        let new = ALPHABET[next(ALPHABET.len())];
        match next(3) {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, new),
            _ => bytes[at] = new,
        }
    }
    String::from_utf8(bytes).expect("ASCII SMILES and alphabet")
}

/// `smiles` broken in one of six ways a generative model breaks SMILES, picked by `kind`.
pub(crate) fn broken(s: &str, kind: usize) -> String {
    match kind % 6 {
        0 => s[..s.len() - 1].to_owned(), // cut short
        1 => format!("{}({}", &s[..s.len() / 2], &s[s.len() / 2..]), // unbalanced branch
        2 => s.replacen('c', "C", 1),     // aromaticity lost
        3 => s.replacen('1', "9", 1),     // ring never closed
        4 => format!("C(C)(C)(C)(C){s}"), // pentavalent carbon
        _ => s.replacen('(', "", 1),      // branch opened nowhere
    }
}

/// The chemistry oracle's sample: valid MOSES SMILES, deliberately broken variants of them,
/// variants MOSES's filters reject, and duplicates (so unique@k is below 1).
fn chem_sample() -> anyhow::Result<Vec<String>> {
    let mut valid: Vec<String> = fixture("test.csv")?.into_iter().take(150).collect();
    // And molecules neither the tests nor the fixtures contain: from the full MOSES training
    // split, at positions the fixture cut (every 79th) skipped.
    let full = crate::root().join("../shared/data/moses/train.csv.gz");
    match std::fs::File::open(&full) {
        Ok(file) => {
            let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
            let unseen = std::io::BufRead::lines(reader)
                .skip(1)
                .enumerate()
                .filter(|(i, _)| i % 79 == 40)
                .take(150)
                .map(|(_, l)| l.map(|l| l.trim().to_owned()));
            for smiles in unseen {
                valid.push(smiles?);
            }
        }
        Err(_) => {
            println!(
                "chem oracle: {} not found; sampling the fixtures only",
                full.display()
            );
            valid = fixture("test.csv")?.into_iter().take(300).collect();
        }
    }
    let mut sample = valid.clone();
    for (i, s) in valid.iter().take(100).enumerate() {
        sample.push(broken(s, i));
    }
    // And broken at random (seeded): one to three characters deleted, inserted or replaced, which
    // often makes two mistakes at once, where which one is reported depends on the parser's order.
    for (i, s) in valid.iter().skip(100).take(150).enumerate() {
        sample.push(mutated(s, i as u64));
    }
    // Valid molecules MOSES's filters reject (its splits were filtered, so they pass): each with a
    // substituent on its last atom that is charged, of another element, a large ring or an MCF or
    // PAINS motif. The substituent may break the molecule; validity is checked too.
    const SUBSTITUENTS: [&str; 20] = [
        "N=Nc1ccccc1",
        "C=CC#N",
        "CCCl",
        "Oc1ccccc1O",
        "[N+](=O)[O-]",
        "[Si](C)(C)C",
        "C1CCCCCCC1",
        "C(=O)Cl",
        "N=C=S",
        "OO",
        "C=Cc1ccc(O)cc1",
        "P(=O)(O)O",
        "C(=O)C=C",
        "SC#N",
        "N(C)c1ccc(N)cc1",
        "C=NNc1ccccc1",
        "C(=S)N",
        "N=O",
        "C1=CC(=O)C=CC1=O",
        "S(=O)(=O)F",
    ];
    for (i, s) in valid.iter().skip(60).take(240).enumerate() {
        sample.push(format!("{s}{}", SUBSTITUENTS[i % SUBSTITUENTS.len()]));
    }
    sample.extend(valid.iter().take(50).cloned());
    // Oddities, valid and not: stereo, charges, isotopes, wildcards, dot bonds, long ring
    // labels, hypervalent and aromatic edge cases, and mistakes that make two at once.
    const ODD: [&str; 40] = [
        "[C@@@H]",
        "[C+9]",
        "O=N(=O)C",
        "c1ccc1",
        "[c]",
        "C[n]1cccc1",
        "n1cccc1",
        "[nH]1cccc1",
        "C1CC1C1",
        "[Xe]",
        "[Na+].[Cl-]",
        "C%(123)CC%(123)",
        "C(=O",
        "C)",
        "()",
        "C((C))",
        "C..C",
        "C=",
        "=C",
        "C(=C)(=C)(=C)",
        "[CH5]",
        "[NH4]",
        "[B-](C)(C)(C)C",
        "S(=O)(=O)(=O)(=O)C",
        "P(C)(C)(C)(C)(C)C",
        "C1CCCCC%10",
        "c1ccccc1c",
        "o1cccc1",
        "C[C@H](F)Cl",
        "C/C=C/C",
        "F/C=C/F/C",
        "*C",
        "[*]C",
        "C1.C1",
        "[13CH4]",
        "Cc1n1oc(C)c1C",
        "O=C1c22cccc2C1",
        "C(C1CC",
        "O=C(CScsnc2c2c(Cl)ccc2o1)N1CCCC1",
        "c1cc2ccccc2cc1",
    ];
    sample.extend(ODD.iter().map(|s| (*s).to_owned()));
    Ok(sample)
}

/// `lines` as a text file, one per line (the Python scripts read them so).
pub(crate) fn write_lines(path: &Path, lines: &[String]) -> std::io::Result<()> {
    std::fs::write(
        path,
        lines.iter().map(|s| format!("{s}\n")).collect::<String>(),
    )
}

pub(crate) fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// xp-chem against RDKit: validity, canonical SMILES and the molecular graph on every molecule of
/// the sample, and
/// MOSES's metrics within 1e-3.
fn chem(python: &Path) -> anyhow::Result<()> {
    let work = crate::interrupt::tempdir()?;
    let w = work.path();
    let sample = chem_sample()?;
    let train = fixture("train.csv")?;
    let reference: Vec<String> = fixture("val.csv")?.into_iter().take(1000).collect();
    let canonical: Vec<Option<String>> = sample
        .iter()
        .map(|s| xp_chem::canonical_smiles(s).ok())
        .collect();
    // Per SMILES: the kind of mistake that makes it invalid (null when valid), and the message.
    let invalid: Vec<serde_json::Value> = sample
        .iter()
        .map(|s| match xp_chem::Molecule::parse(s) {
            Ok(_) => json!(null),
            Err(e) => json!([e.invalid_kind(), e.to_string()]),
        })
        .collect();
    // Per valid molecule: its graph (atoms and bonds), BRICS fragments (sorted), Murcko scaffold
    // and its ring count, filters.
    let per_molecule: Vec<serde_json::Value> = sample
        .iter()
        .filter_map(|s| xp_chem::Molecule::parse(s).ok())
        .map(|mol| -> anyhow::Result<serde_json::Value> {
            let mut fragments = mol.brics_fragments()?;
            fragments.sort();
            let scaffold = mol.murcko_scaffold()?;
            let graph = mol.graph()?;
            let atoms: Vec<_> = graph
                .atoms
                .iter()
                .map(|a| {
                    json!([
                        a.atomic_number,
                        a.formal_charge,
                        a.aromatic,
                        a.hydrogens,
                        a.degree
                    ])
                })
                .collect();
            let bonds: Vec<_> = graph
                .bonds
                .iter()
                .map(|b| json!([b.begin, b.end, format!("{:?}", b.kind)]))
                .collect();
            Ok(json!({
                "atoms": atoms,
                "bonds": bonds,
                "fragments": fragments,
                "scaffold": scaffold.canonical_smiles()?,
                "scaffold_rings": scaffold.ring_count()?,
                "passes_filters": mol.passes_filters()?,
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let metrics = xp_chem::generation_metrics(
        &as_strs(&sample),
        Some(&xp_chem::canonical_set(&as_strs(&train))),
        Some(&xp_chem::ReferenceSet::new(&as_strs(&reference))),
    );
    write_lines(&w.join("sample.txt"), &sample)?;
    write_lines(&w.join("train.txt"), &train)?;
    write_lines(&w.join("reference.txt"), &reference)?;
    std::fs::write(
        w.join("ours.json"),
        serde_json::to_vec(&json!({
            "canonical": canonical,
            "invalid": invalid,
            "per_molecule": per_molecule,
            "metrics": metrics,
        }))?,
    )?;
    let filters = crate::root().join("crates/xp-chem/assets/moses");
    run(script(python, "check_chem.py").arg(w).arg(filters))
        .context("the chemistry oracle disagrees with RDKit")
}

/// xp-log against the official TensorBoard reader: the `all_kinds` example writes every kind of
/// summary, check_tensorboard.py reads them back.
fn tensorboard(python: &Path) -> anyhow::Result<()> {
    let work = crate::interrupt::tempdir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "xp-log",
            "--example",
            "all_kinds",
            "--",
        ])
        .arg(work.path())
        .current_dir(crate::root())
        .stdout(std::process::Stdio::null()))
    .context("running the all_kinds example")?;
    run(script(python, "check_tensorboard.py").arg(work.path()))
        .context("the TensorBoard oracle disagrees")
}

/// A tiny deterministic generator, so the files are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Our answers on a file, in the shape check_results.py computes them.
fn answers(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let q = ResultsTracker::open(dir).query();
    let lines =
        |entries: Vec<xp_results::Entry>| entries.into_iter().map(|e| e.line).collect::<Vec<_>>();
    Ok(json!({
        "dir": dir.file_name().unwrap().to_string_lossy(),
        "count": q.all()?.value.len(),
        "best_min": lines(q.best("val_loss", Mode::Min)?.value.into_iter().collect()),
        "best_max": lines(q.best("val_loss", Mode::Max)?.value.into_iter().collect()),
        "top5_min": lines(q.top("val_loss", Mode::Min, 5)?.value),
        "top5_max_validity": lines(q.top("validity", Mode::Max, 5)?.value),
        "vae_lines": lines(q.clone().filter("model.model_type == vae")?.all()?.value),
        "lr_below_1e-3": lines(q.clone().filter("training.learning_rate < 1e-3")?.all()?.value),
    }))
}

/// xp-results against the seed's tracker and pandas, on files written by each side.
fn results(python: &Path) -> anyhow::Result<()> {
    let work = crate::interrupt::tempdir()?;
    let w = work.path();
    // The seed writes one file (with missing and NaN metrics) and one where every result has a
    // finite val_loss, so that its own get_best_result can be compared too.
    run(script(python, "seed_write.py")
        .arg(w.join("seed"))
        .args(["400", "1"]))?;
    // We write one.
    let ours = ResultsTracker::open(w.join("ours"));
    let mut rng = Lcg(7);
    for i in 0..400 {
        let model_type = if rng.next() < 0.5 {
            "vae"
        } else {
            "autoregressive"
        };
        let lr = [1e-4, 3e-4, 1e-3][(rng.next() * 3.0) as usize];
        let config = json!({"name": format!("run{i}"), "model": {"model_type": model_type}, "training": {"learning_rate": lr}});
        let mut metrics = vec![("validity", (rng.next() * 1e4).round() / 1e4)];
        let r = rng.next();
        if r < 0.9 {
            metrics.push((
                "val_loss",
                if r < 0.03 {
                    f64::NAN
                } else {
                    (rng.next() * 1e3).round() / 1e3
                },
            ));
        }
        ours.log_result(
            &format!("{model_type}_{i}"),
            &config,
            metrics,
            [("best", format!("runs/{i}/best").as_str())],
        )?;
    }
    // And a finite-only file, written by us, for the seed's get_best_result.
    let finite = ResultsTracker::open(w.join("finite"));
    for i in 0..300 {
        let v = (rng.next() * 100.0).round() / 100.0;
        finite.log_result(
            &format!("f{i}"),
            &json!({"model": {"model_type": "vae"}, "training": {"learning_rate": 1e-4}}),
            [("val_loss", v), ("validity", v)],
            Vec::<(&str, &str)>::new(),
        )?;
    }
    // A torn copy of ours must give the answers of the complete lines.
    std::fs::create_dir(w.join("torn"))?;
    let mut text = std::fs::read(ours.path())?;
    text.extend_from_slice(br#"{"timestamp": "2026-01-01T00:00:00", "experiment_name": "torn", "metrics": {"val_loss": -1"#);
    std::fs::write(w.join("torn/results.jsonl"), text)?;
    let torn = answers(&w.join("torn"))?;
    let complete = answers(&w.join("ours"))?;
    for key in ["count", "best_min", "best_max", "top5_min", "vae_lines"] {
        if torn[key] != complete[key] {
            bail!(
                "a torn last line changed `{key}`: {} vs {}",
                torn[key],
                complete[key]
            );
        }
    }
    let all = json!({
        "seed-written": answers(&w.join("seed"))?,
        "xp-written": complete,
        "xp-written-finite": answers(&w.join("finite"))?,
    });
    std::fs::write(w.join("answers.json"), serde_json::to_vec_pretty(&all)?)?;
    run(script(python, "check_results.py").arg(w)).context("the results oracle disagrees")?;
    // Sanity: the queries above really read something.
    let n = Query::new(w.join("seed/results.jsonl")).all()?.value.len();
    if n != 400 {
        bail!("read {n} of the seed's 400 results");
    }
    Ok(())
}
