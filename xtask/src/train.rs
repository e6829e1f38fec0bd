//! `cargo xtask train [--config F] [--set k=v]... [--resume RUN_DIR | --sweep k=v1,v2...]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use comfy_table::{Cell, CellAlignment, Table, presets};
use xp_config::{ConfigError, ExperimentConfig, create_config};
use xp_train::{Finish, TrainOptions, TrainOutcome};

use crate::sweep::{Sweep, check_keys, combinations};

pub fn run(
    config: Option<PathBuf>,
    overrides: Vec<String>,
    resume: Option<PathBuf>,
    sweeps: Vec<String>,
) -> Result<()> {
    if !sweeps.is_empty() {
        if resume.is_some() {
            bail!(
                "--sweep starts new runs; go on with one run of a sweep with --resume RUN_DIR alone"
            );
        }
        let sweeps = sweeps
            .iter()
            .map(|s| Sweep::parse(s))
            .collect::<Result<Vec<_>>>()?;
        return run_sweep(config, overrides, &sweeps);
    }
    let config = match &resume {
        Some(run_dir) => {
            if config.is_some() {
                bail!(
                    "--resume takes the config saved in the run directory; change it with --set, not --config"
                );
            }
            let path = run_dir.join(xp_log::CONFIG_FILE);
            if !path.is_file() {
                let hint = newest_run_hint(run_dir)
                    .unwrap_or_else(|| "; pass the folder `cargo xtask train` printed".to_owned());
                bail!(
                    "{} is not a run directory (no {}){hint}",
                    run_dir.display(),
                    xp_log::CONFIG_FILE
                );
            }
            // Loaded with the overrides, so a --set can mend a key the saved file no longer
            // passes (a run named before the rules for `name`).
            create_config(Some(&path), &overrides)?
        }
        None => create_config(config.as_deref(), &overrides)?,
    };
    let options = TrainOptions {
        resume,
        ..train_options()?
    };
    let outcome = xp_train::train(&config, &options).map_err(|err| match resume_hint(&err) {
        Some(hint) => anyhow::anyhow!("{err}\n{hint}"),
        None => err.into(),
    })?;
    print_summary(&outcome, &config);
    Ok(())
}

/// For a run that failed after its directory was made and saved a checkpoint: how to go on.
fn resume_hint(err: &xp_train::TrainError) -> Option<String> {
    let run_dir = err.run_dir()?;
    let checkpoints = run_dir.join(xp_train::CHECKPOINTS_DIR);
    let manager = xp_ckpt::CheckpointManager::open_read_only(
        &checkpoints,
        xp_train::RANK_METRIC,
        xp_ckpt::Mode::Min,
    )
    .ok()?;
    let last = manager.last()?;
    Some(format!(
        "its checkpoints are kept (the last: epoch {}); once the cause is fixed, go on with: cargo xtask train --resume {}",
        last.epoch,
        shown(run_dir)
    ))
}

/// Options for a new run: progress shown, Ctrl-C and SIGTERM handled, and the test hook
/// `XP_TRAIN_STOP_AT_STEP`.
fn train_options() -> Result<TrainOptions> {
    let stop = Arc::new(AtomicBool::new(false));
    let presses = Arc::new(AtomicUsize::new(0));
    {
        let stop = stop.clone();
        crate::interrupt::on_stop(move |signal| {
            let by = match signal {
                nix::sys::signal::Signal::SIGINT => "",
                _ => " (SIGTERM)",
            };
            if presses.fetch_add(1, Ordering::SeqCst) == 0 {
                stop.store(true, Ordering::SeqCst);
                eprintln!(
                    "\nstopping{by}: in training after this step, saving a checkpoint; while the data loads at once, writing nothing; in the final evaluation once it ends. Ctrl-C again to quit at once (saved checkpoints stay; `--resume` goes on from them)"
                );
            } else {
                eprintln!("\nquitting at once{by}; the last saved checkpoint is intact");
                crate::interrupt::exit(signal);
            }
        });
    }
    let stop_at_step = match std::env::var("XP_TRAIN_STOP_AT_STEP") {
        Ok(v) => Some(
            v.parse()
                .context("XP_TRAIN_STOP_AT_STEP must be a step number")?,
        ),
        Err(_) => None,
    };
    Ok(TrainOptions {
        resume: None,
        stop,
        progress: true,
        stop_at_step,
    })
}

/// One run per combination of the sweeps' values, one after another, then a table of them all.
/// Every combination's config is checked first; a run that fails is reported and the sweep goes
/// on; Ctrl-C stops the current run (saved, resumable) and the sweep.
fn run_sweep(config: Option<PathBuf>, overrides: Vec<String>, sweeps: &[Sweep]) -> Result<()> {
    check_keys(sweeps, &overrides)?;
    let combos = combinations(sweeps);
    let mut configs = Vec::with_capacity(combos.len());
    let mut problems: Vec<String> = Vec::new();
    for combo in &combos {
        let all: Vec<&String> = overrides.iter().chain(combo).collect();
        match create_config(config.as_deref(), &all) {
            Ok(c) => configs.push(c),
            Err(ConfigError::Invalid(violations)) => {
                for v in violations {
                    let line = v.to_string();
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    if !problems.is_empty() {
        bail!(
            "the sweep's configs have {} problem{}; no run was started:\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        );
    }
    let n = combos.len();
    let options = train_options()?;
    eprintln!(
        "sweep: {n} run{} ({})",
        if n == 1 { "" } else { "s" },
        sweeps
            .iter()
            .map(|s| format!("{} x{}", s.key, s.values.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // One entry per run started: its outcome, or None when it failed (reported as it happened).
    let mut done: Vec<Option<TrainOutcome>> = Vec::new();
    for (i, (combo, config)) in combos.iter().zip(&configs).enumerate() {
        eprintln!("\n[sweep {}/{n}] {}", i + 1, combo.join(" "));
        match xp_train::train(config, &options) {
            Ok(outcome) => {
                let interrupted = outcome.finish == Finish::Interrupted;
                eprintln!(
                    "[sweep {}/{n}] {} in {}",
                    i + 1,
                    finish_word(outcome.finish),
                    shown(&outcome.run_dir)
                );
                done.push(Some(outcome));
                if interrupted {
                    break;
                }
            }
            // Ctrl-C while its data loaded: nothing of it was written; the sweep ends too.
            Err(xp_train::TrainError::Stopped) => {
                eprintln!("[sweep {}/{n}] stopped before training began", i + 1);
                break;
            }
            Err(err) => {
                eprintln!("[sweep {}/{n}] failed: {err:#}", i + 1);
                if let Some(hint) = resume_hint(&err) {
                    eprintln!("[sweep {}/{n}] {hint}", i + 1);
                }
                done.push(None);
            }
        }
    }

    let mut table = Table::new();
    table.load_preset(presets::UTF8_BORDERS_ONLY);
    let mut header = vec!["#".to_owned()];
    header.extend(sweeps.iter().map(|s| s.key.clone()));
    header.extend(["best val loss", "validity", "run"].map(str::to_owned));
    table.set_header(header);
    for (i, combo) in combos.iter().enumerate() {
        let mut row = vec![Cell::new(i + 1)];
        row.extend(
            combo
                .iter()
                .map(|kv| Cell::new(kv.split_once('=').map_or("", |(_, v)| v))),
        );
        let number = |v: Option<f64>| {
            Cell::new(v.map_or("-".to_owned(), |v| format!("{v:.4}")))
                .set_alignment(CellAlignment::Right)
        };
        match done.get(i) {
            Some(Some(o)) => {
                row.push(number(o.best_val_loss));
                row.push(number(o.metrics.as_ref().map(|m| m.validity)));
                let mut run = shown(&o.run_dir);
                if o.finish == Finish::Interrupted {
                    run.push_str(" (interrupted: --resume it)");
                }
                row.push(Cell::new(run));
            }
            Some(None) => row.extend([number(None), number(None), Cell::new("failed (above)")]),
            None => row.extend([number(None), number(None), Cell::new("not run")]),
        }
        table.add_row(row);
    }
    println!("\n{table}");
    // Usually one output folder; a sweep over output_dir has several.
    let mut output_dirs: Vec<&str> = Vec::new();
    for c in &configs {
        if !output_dirs.contains(&c.output_dir.as_str()) {
            output_dirs.push(&c.output_dir);
        }
    }
    println!();
    for output_dir in output_dirs {
        println!(
            "compare them: cargo xtask results --dir {output_dir} top --metric best_val_loss --mode min -n {n}"
        );
        println!("look at them: tensorboard --logdir {output_dir}");
    }
    let failed = done.iter().filter(|d| d.is_none()).count();
    if failed > 0 {
        bail!("{failed} of the sweep's {n} runs failed");
    }
    Ok(())
}

fn finish_word(finish: Finish) -> &'static str {
    match finish {
        Finish::Completed => "finished",
        Finish::EarlyStopped => "stopped early (validation loss no longer improved)",
        Finish::Interrupted => "interrupted",
    }
}

pub(crate) fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn print_summary(outcome: &TrainOutcome, config: &ExperimentConfig) {
    let how = finish_word(outcome.finish);
    let count = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    println!(
        "\n{} {how} after {}, {} on {}",
        config.name,
        count(outcome.epochs_completed, "epoch"),
        count(outcome.global_step, "step"),
        outcome.device
    );
    println!("  run directory    {}", shown(&outcome.run_dir));
    if let Some(best) = &outcome.best_checkpoint {
        println!(
            "  best checkpoint  {} (val loss {:.4})",
            shown(best),
            outcome.best_val_loss.unwrap_or(f64::NAN)
        );
    }
    if let Some(last) = &outcome.last_checkpoint {
        println!("  last checkpoint  {}", shown(last));
    }
    if let Some(m) = &outcome.metrics {
        let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        println!(
            "  {:<17}validity {:.3}, unique@1k {}, novelty {}, IntDiv1 {}",
            format!("{} samples", m.count),
            m.validity,
            opt(m.unique_at_1k),
            opt(m.novelty),
            opt(m.int_div1),
        );
        println!(
            "                   SNN {}, Frag {}, Scaf {}, Filters {}",
            opt(m.snn),
            opt(m.frag),
            opt(m.scaf),
            opt(m.filters)
        );
    }
    if let Some(results) = &outcome.results_file {
        println!("  results log      {}", shown(results));
    }
    if outcome.timing.steps > 0 {
        println!(
            "  throughput       {:.0} tokens/s",
            outcome.timing.tokens_per_second()
        );
    }
    if outcome.finish == Finish::Interrupted {
        println!(
            "\ngo on with: cargo xtask train --resume {}",
            shown(&outcome.run_dir)
        );
    }
    let logdir = outcome.run_dir.parent().unwrap_or(&outcome.run_dir);
    println!("\nlook at it: tensorboard --logdir {}", shown(logdir));
}

/// `; its one run is R` or `; the newest of its N runs is R` when `dir` holds runs (an output
/// folder given where a run directory belongs).
pub(crate) fn newest_run_hint(dir: &Path) -> Option<String> {
    let runs = run_dirs_inside(dir).ok()?;
    let newest = runs.last()?.display();
    Some(match runs.len() {
        1 => format!("; its one run is {newest}"),
        n => format!("; the newest of its {n} runs is {newest}"),
    })
}

/// The run directories directly inside the output folder `dir`, in the order they started (a
/// run's `config.toml` is written once, when it starts).
pub(crate) fn run_dirs_inside(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let config = path.join(xp_log::CONFIG_FILE);
            Some((config.metadata().ok()?.modified().ok()?, path))
        })
        .collect();
    runs.sort();
    Ok(runs.into_iter().map(|(_, path)| path).collect())
}
