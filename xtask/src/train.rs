//! `cargo xtask train [--config F] [--set k=v]... [--resume RUN_DIR]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use xp_config::{ExperimentConfig, create_config};
use xp_train::{Finish, TrainOptions, TrainOutcome};

pub fn run(config: Option<PathBuf>, overrides: Vec<String>, resume: Option<PathBuf>) -> Result<()> {
    let config = match &resume {
        Some(run_dir) => {
            if config.is_some() {
                bail!(
                    "--resume takes the config saved in the run directory; change it with --set, not --config"
                );
            }
            let path = run_dir.join(xp_log::CONFIG_FILE);
            if !path.is_file() {
                let hint = match newest_run_inside(run_dir) {
                    Some((1, newest)) => format!("; its one run is {}", newest.display()),
                    Some((n, newest)) => {
                        format!("; the newest of its {n} runs is {}", newest.display())
                    }
                    None => "; pass the folder `cargo xtask train` printed".to_owned(),
                };
                bail!(
                    "{} is not a run directory (no {}){hint}",
                    run_dir.display(),
                    xp_log::CONFIG_FILE
                );
            }
            let mut config = ExperimentConfig::load(&path)?;
            config.apply_overrides(&overrides)?;
            config
        }
        None => create_config(config.as_deref(), &overrides)?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let presses = Arc::new(AtomicUsize::new(0));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if presses.fetch_add(1, Ordering::SeqCst) == 0 {
                stop.store(true, Ordering::SeqCst);
                eprintln!("\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)");
            } else {
                eprintln!("\nquitting at once; the last saved checkpoint is intact");
                std::process::exit(130);
            }
        })
        .context("cannot install the Ctrl-C handler")?;
    }
    let stop_at_step = match std::env::var("XP_TRAIN_STOP_AT_STEP") {
        Ok(v) => Some(
            v.parse()
                .context("XP_TRAIN_STOP_AT_STEP must be a step number")?,
        ),
        Err(_) => None,
    };
    let options = TrainOptions {
        resume,
        stop,
        progress: true,
        stop_at_step,
    };
    let outcome = xp_train::train(&config, &options)?;
    print_summary(&outcome, &config);
    Ok(())
}

pub(crate) fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn print_summary(outcome: &TrainOutcome, config: &ExperimentConfig) {
    let how = match outcome.finish {
        Finish::Completed => "finished",
        Finish::EarlyStopped => "stopped early (validation loss no longer improved)",
        Finish::Interrupted => "interrupted",
    };
    println!(
        "\n{} {how} after {} epochs, {} steps on {}",
        config.name, outcome.epochs_completed, outcome.global_step, outcome.device
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
            "  {} samples      validity {:.3}, unique@1k {}, novelty {}, IntDiv1 {}",
            m.count,
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
    println!(
        "  throughput       {:.0} tokens/s",
        outcome.timing.tokens_per_second()
    );
    if outcome.finish == Finish::Interrupted {
        println!(
            "\ngo on with: cargo xtask train --resume {}",
            shown(&outcome.run_dir)
        );
    }
    let logdir = outcome.run_dir.parent().unwrap_or(&outcome.run_dir);
    println!("\nlook at it: tensorboard --logdir {}", shown(logdir));
}

/// The run directories directly inside `dir` (an output folder passed to `--resume` by mistake):
/// how many, and the one started last (its `config.toml` is written once, when it starts).
pub(crate) fn newest_run_inside(dir: &Path) -> Option<(usize, PathBuf)> {
    let runs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let config = path.join(xp_log::CONFIG_FILE);
            Some((config.metadata().ok()?.modified().ok()?, path))
        })
        .collect();
    let newest = runs.iter().max_by_key(|(time, _)| *time)?.1.clone();
    Some((runs.len(), newest))
}
