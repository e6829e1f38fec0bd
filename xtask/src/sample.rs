//! `cargo xtask sample RUN_DIR`: SMILES drawn from a trained run's checkpoint, one per line, for
//! `chem metrics` or any other tool.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use xp_config::{Device, DiffusionOrder};
use xp_train::{GenerateOptions, Pick};

use crate::train::{newest_run_hint, shown};

#[derive(clap::Args)]
pub struct SampleArgs {
    /// A run directory (as `cargo xtask train` printed it), its checkpoints/ folder, or one
    /// checkpoint directory.
    path: PathBuf,
    /// How many SMILES (default: the run's training.sample_size).
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    count: Option<u64>,
    /// Which checkpoint of the run (default: best).
    #[arg(long, value_enum)]
    checkpoint: Option<Which>,
    /// Softmax temperature, above 0 (default: the run's training.temperature).
    // A negative value reaches the check below, which says what is allowed.
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f64>,
    /// Seed of the draw (default: the run's seed; with the run's settings and count, the best
    /// checkpoint draws the run's samples.txt again).
    #[arg(long)]
    seed: Option<u64>,
    /// Where to run the model: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: Device,
    /// Diffusion models only: denoising steps (default: the run's model.diffusion_steps).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    diffusion_steps: Option<u32>,
    /// Diffusion models only: which masked positions each step reveals (default: the run's
    /// model.diffusion_order).
    #[arg(long, value_enum)]
    diffusion_order: Option<Order>,
    /// Write the SMILES to this file (replaced whole, only once all are drawn) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Which {
    Best,
    Last,
}

/// `model.diffusion_order`'s values.
#[derive(Clone, Copy, ValueEnum)]
enum Order {
    /// Length first, then the positions the model is surest of.
    Confidence,
    /// Each masked position with equal chance (MDLM's ancestral sampler).
    Random,
}

pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    if let Some(t) = args.temperature
        && !(t.is_finite() && t > 0.0)
    {
        bail!("--temperature must be a number above 0, got {t}");
    }
    // The output's temporary file, made before drawing so that a bad -o fails at once, not after.
    let out_file = match &args.out {
        Some(out) => Some((out, replacement_for(out, "samples.txt")?)),
        None => None,
    };
    let options = GenerateOptions {
        count: args.count.map(|n| n as usize),
        temperature: args.temperature,
        seed: args.seed,
        pick: args.checkpoint.map(|w| match w {
            Which::Best => Pick::Best,
            Which::Last => Pick::Last,
        }),
        device: args.device,
        diffusion_steps: args.diffusion_steps,
        diffusion_order: args.diffusion_order.map(|order| match order {
            Order::Confidence => DiffusionOrder::Confidence,
            Order::Random => DiffusionOrder::Random,
        }),
    };
    // indicatif hides the bar by itself when stderr is not a terminal.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("sampling {bar:30} {pos}/{len} SMILES, {elapsed} (ETA {eta})")
            .expect("a valid template"),
    );
    let drawn = xp_train::generate(&args.path, &options, |n| {
        if bar.length() == Some(0) {
            bar.set_length(options.count.unwrap_or(n) as u64);
        }
        bar.set_position(n as u64);
    })
    .map_err(|err| with_run_hint(err, &args.path))?;
    bar.finish_and_clear();

    let mut text = String::with_capacity(drawn.smiles.len() * 40);
    for smiles in &drawn.smiles {
        text.push_str(smiles);
        text.push('\n');
    }
    match out_file {
        Some((out, tmp)) => write_whole(tmp, out, text.as_bytes())?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }

    let kinds: Vec<Option<xp_chem::InvalidKind>> = drawn
        .smiles
        .par_iter()
        .map(|s| {
            xp_chem::Molecule::parse(s)
                .err()
                .map(|e| e.invalid_kind().unwrap_or(xp_chem::InvalidKind::Other))
        })
        .collect();
    let mut invalid = xp_chem::InvalidCounts::default();
    kinds.iter().flatten().for_each(|&kind| invalid.add(kind));
    let valid = drawn.smiles.len() - invalid.total();
    let config = &drawn.config;
    eprintln!(
        "{} SMILES from {} (epoch {}, step {}, val loss {}) on {}; {:.1}% valid, invalid {}",
        drawn.smiles.len(),
        shown(&drawn.checkpoint),
        drawn.epoch,
        drawn.global_step,
        drawn.val_loss.map_or("-".to_owned(), |v| format!("{v:.4}")),
        drawn.device,
        100.0 * valid as f64 / drawn.smiles.len().max(1) as f64,
        invalid.summary(),
    );
    for warning in &drawn.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(out) = &args.out {
        let reference = config
            .data
            .test_path
            .as_ref()
            .unwrap_or(&config.data.val_path);
        eprintln!(
            "score them: cargo xtask chem metrics --generated {} --train {} --reference {}",
            shown(out),
            shown(&config.data.train_path),
            shown(reference)
        );
    }
    Ok(())
}

/// The folder a file given on the command line goes into.
fn parent_folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file, beside `out`, that [`write_whole`] renames to `out`: made before the work
/// that fills it, so that an output that cannot be written fails at once, not after. A folder
/// given as `out` gets `example` (a file name) as the fix.
pub(crate) fn replacement_for(out: &Path, example: &str) -> anyhow::Result<Replacement> {
    let folder = parent_folder(out);
    if !folder.is_dir() {
        bail!(
            "cannot write {}: the folder {} does not exist",
            out.display(),
            folder.display()
        );
    }
    if out.is_dir() {
        bail!(
            "cannot write {}: it is a folder; give a file, such as {}",
            out.display(),
            out.join(example).display()
        );
    }
    // The permissions a plain `File::create` would give (0666 less the umask), or those of the
    // file replaced: tempfile's own 0600 would hide the output from the rest of a team.
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(match std::fs::metadata(out) {
        Ok(existing) => existing.permissions(),
        Err(_) => std::os::unix::fs::PermissionsExt::from_mode(0o666),
    });
    let tmp = builder
        .tempfile_in(folder)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let listed = crate::interrupt::remove_on_stop(tmp.path());
    Ok(Replacement {
        tmp,
        _listed: listed,
    })
}

/// A temporary file from [`replacement_for`], removed if a stop signal ends xtask before
/// [`write_whole`] puts it in place (it is made before work that can take minutes).
pub(crate) struct Replacement {
    // Declared first, dropped first: the file goes before it leaves the list.
    tmp: tempfile::NamedTempFile,
    _listed: crate::interrupt::RemovedOnStop,
}

/// Writes `bytes` to `path` through `tmp`, a temporary file in the same folder, and a rename, so
/// a failure or Ctrl-C never leaves a partial file in place of an earlier one.
pub(crate) fn write_whole(
    mut replacement: Replacement,
    path: &Path,
    bytes: &[u8],
) -> anyhow::Result<()> {
    let tmp = &mut replacement.tmp;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Leaves the list when `replacement._listed` drops, after the rename.
    replacement
        .tmp
        .persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Given an output folder instead of a run, the error names the newest run in it, as `train
/// --resume` does.
fn with_run_hint(err: xp_train::TrainError, path: &Path) -> anyhow::Error {
    let not_a_run = matches!(err, xp_train::TrainError::Sample { .. })
        && !path.join(xp_train::CHECKPOINTS_DIR).exists()
        && !path.join(xp_ckpt::META_FILE).exists();
    let hint = not_a_run
        .then(|| newest_run_hint(path))
        .flatten()
        .unwrap_or_default();
    anyhow::anyhow!("{err}{hint}")
}
