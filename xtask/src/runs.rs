//! `cargo xtask runs [DIR]`: every run directory in an output folder and where it stands, so a
//! user finds which runs finished, which still train and which to `--resume`. The results log
//! holds only finished runs; this reads the run directories themselves.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;
use xp_ckpt::{CheckpointManager, Mode};
use xp_results::{ResultsError, ResultsTracker};

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Output folder holding the run directories (the config's `output_dir`; default
    /// `results`), or one run directory to show that run alone.
    #[arg(value_name = "DIR")]
    folder: Option<PathBuf>,
    /// The same as DIR, spelt as `cargo xtask results` spells it.
    #[arg(long = "dir", value_name = "DIR", conflicts_with = "folder")]
    dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum State {
    /// A process holds its checkpoint folder.
    Training,
    /// Every epoch ran and its result is in the log.
    Finished,
    /// Early stopping ended it; its result is in the log.
    StoppedEarly,
    /// Stopped (Ctrl-C, a crash, a kill) after a checkpoint: `--resume` goes on from it. Also a
    /// run stopped after its last epoch but before its result was logged: `--resume` finishes it.
    Resumable,
    /// Stopped before its first checkpoint: nothing to resume.
    NoCheckpoint,
    /// Its newest checkpoint fails verification (a truncated or missing file): restore it, or
    /// move it away to resume from the one before.
    Damaged,
}

impl State {
    /// From whether a writer holds the checkpoints, whether a checkpoint newer than the last
    /// usable one fails verification, the last usable checkpoint's epoch, the epochs configured
    /// and whether the results log holds the record of that checkpoint's final evaluation
    /// ([`xp_train::is_final_record`]).
    fn of(
        in_use: bool,
        damaged: bool,
        last_epoch: Option<u64>,
        epochs: u64,
        final_logged: bool,
    ) -> Self {
        let done = last_epoch.is_some_and(|e| e >= epochs);
        if in_use {
            State::Training
        } else if damaged {
            State::Damaged
        } else if final_logged && done {
            State::Finished
        } else if final_logged {
            State::StoppedEarly
        } else if last_epoch.is_some() {
            // Stopped mid-training, or after its last epoch but before its result was logged:
            // `--resume` goes on, or finishes it.
            State::Resumable
        } else {
            State::NoCheckpoint
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            State::Training => "training",
            State::Finished => "finished",
            State::StoppedEarly => "stopped early",
            State::Resumable => "resumable",
            State::NoCheckpoint => "no checkpoint",
            State::Damaged => "damaged",
        }
    }
}

#[derive(Debug, Serialize)]
struct Run {
    run_dir: PathBuf,
    experiment: String,
    model: String,
    state: State,
    /// Epochs saved in the newest checkpoint, and the epochs configured.
    epoch: u64,
    epochs: u32,
    best_val_loss: Option<f64>,
    /// The finished run's sample validity, from the results log.
    validity: Option<f64>,
}

pub fn run(args: RunsArgs) -> anyhow::Result<()> {
    let dir = args
        .folder
        .or(args.dir)
        .unwrap_or_else(|| PathBuf::from("results"));
    if !dir.is_dir() {
        bail!(
            "{} is not a folder; give the output folder that holds the runs (the config's output_dir)",
            dir.display()
        );
    }
    // One run directory given: that run, read with its output folder (which holds the results
    // log that says whether it finished).
    let runs = if dir.join(xp_log::CONFIG_FILE).is_file() {
        let run_dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let folder = run_dir.parent().unwrap_or(&run_dir);
        let runs = read_runs(folder, run_dir.file_name())?;
        if runs.is_empty() {
            bail!(
                "{} is a run directory that cannot be read (see the warning above)",
                dir.display()
            );
        }
        runs
    } else {
        read_runs(&dir, None)?
    };
    if runs.is_empty() {
        bail!(
            "no run directories in {} (a run directory holds {})",
            dir.display(),
            xp_log::CONFIG_FILE
        );
    }
    match args.format {
        Format::Json => {
            for run in &runs {
                println!("{}", serde_json::to_string(run)?);
            }
        }
        Format::Table => print_table(&runs),
    }
    if runs.iter().any(|r| r.state == State::Damaged) {
        eprintln!(
            "a damaged run's newest checkpoint fails verification (see the warnings above): restore its files, or move it out of checkpoints/ to resume from the one before"
        );
    }
    if let Some(resumable) = runs.iter().rev().find(|r| r.state == State::Resumable) {
        eprintln!(
            "go on with a stopped run: cargo xtask train --resume {}",
            resumable.run_dir.display()
        );
    }
    Ok(())
}

/// The runs directly inside `dir`, oldest first; only the one named `only`, if given.
fn read_runs(dir: &Path, only: Option<&std::ffi::OsStr>) -> anyhow::Result<Vec<Run>> {
    // A folder whose runs have not finished yet has no results log.
    let results = match ResultsTracker::open(dir).query().all() {
        Ok(found) => found.value,
        Err(ResultsError::NoLog { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let run_dirs = crate::train::run_dirs_inside(dir)?;
    let mut runs = Vec::with_capacity(run_dirs.len());
    for run_dir in run_dirs {
        if only.is_some_and(|name| run_dir.file_name() != Some(name)) {
            continue;
        }
        let checkpoints = run_dir.join(xp_train::CHECKPOINTS_DIR);
        // A run that has not saved yet has no checkpoint folder; any other failure is said.
        let listed = if checkpoints.symlink_metadata().is_err() {
            None
        } else {
            match CheckpointManager::open_read_only(&checkpoints, xp_train::RANK_METRIC, Mode::Min)
            {
                Ok(manager) => {
                    for warning in manager.warnings() {
                        eprintln!("warning: {}: {warning}", run_dir.display());
                    }
                    Some(manager)
                }
                Err(e) => {
                    eprintln!(
                        "warning: {}: shown as having no checkpoint: {e}",
                        run_dir.display()
                    );
                    None
                }
            }
        };
        let last = listed.as_ref().and_then(|m| Some((m, m.last()?)));
        let last_epoch = last.map(|(_, entry)| entry.epoch);
        let best_val_loss = listed
            .as_ref()
            .and_then(|m| m.best())
            .map(|e| e.metric())
            .filter(|v| v.is_finite());
        // The newest checkpoint's config: a resume may have raised training.epochs.
        let config_path = match last {
            Some((manager, entry)) => manager.path(entry).join(xp_log::CONFIG_FILE),
            None => run_dir.join(xp_log::CONFIG_FILE),
        };
        let config = std::fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                xp_config::from_saved_toml(&text, &config_path.display().to_string(), &run_dir)
                    .map_err(|e| e.to_string())
            });
        let config = match config {
            Ok(config) => config,
            Err(e) => {
                eprintln!("warning: skipped {}: {e}", run_dir.display());
                continue;
            }
        };
        let epochs = config.training.epochs;
        let result = last_epoch.and_then(|last| {
            results
                .iter()
                .rev()
                .find(|entry| xp_train::is_final_record(&entry.record, &run_dir, last, epochs))
        });
        let state = State::of(
            CheckpointManager::in_use(&checkpoints),
            listed
                .as_ref()
                .is_some_and(|m| !m.unverified_since_last().is_empty()),
            last_epoch,
            u64::from(epochs),
            result.is_some(),
        );
        runs.push(Run {
            experiment: config.name,
            model: config.model.model_type.to_string(),
            state,
            epoch: last_epoch.unwrap_or(0),
            epochs,
            best_val_loss,
            validity: result.and_then(|r| r.record.metrics.get("validity").copied()),
            run_dir,
        });
    }
    Ok(runs)
}

fn print_table(runs: &[Run]) {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_BORDERS_ONLY);
    table.set_header([
        "run",
        "model",
        "state",
        "epochs",
        "best val loss",
        "validity",
    ]);
    let number = |v: Option<f64>, text: fn(f64) -> String| {
        Cell::new(v.map_or("-".to_owned(), text)).set_alignment(CellAlignment::Right)
    };
    for run in runs {
        table.add_row([
            Cell::new(crate::results::one_line(&run.run_dir.to_string_lossy())),
            Cell::new(&run.model),
            Cell::new(run.state.as_str()),
            Cell::new(format!("{}/{}", run.epoch, run.epochs)).set_alignment(CellAlignment::Right),
            number(run.best_val_loss, |v| format!("{v:.4}")),
            number(run.validity, |v| format!("{:.1}%", 100.0 * v)),
        ]);
    }
    println!("{table}");
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn a_run_state_follows_its_lock_checkpoints_and_result() {
        let cases = [
            ((true, false, Some(1), 3, false), State::Training),
            ((true, false, Some(3), 3, true), State::Training),
            ((false, false, Some(3), 3, true), State::Finished),
            ((false, false, Some(2), 5, true), State::StoppedEarly),
            // Finished at 3 epochs, resumed for 6, stopped at 4: resumable.
            ((false, false, Some(4), 6, false), State::Resumable),
            ((false, false, Some(1), 3, false), State::Resumable),
            // Every epoch ran, but the process stopped before the result was logged.
            ((false, false, Some(3), 3, false), State::Resumable),
            ((false, false, None, 3, false), State::NoCheckpoint),
            // The last checkpoint broke: neither finished nor resumable as it stands.
            ((false, true, Some(2), 3, true), State::Damaged),
            ((false, true, None, 3, false), State::Damaged),
        ];
        for ((in_use, damaged, last, epochs, logged), state) in cases {
            assert_eq!(
                State::of(in_use, damaged, last, epochs, logged),
                state,
                "{in_use} {damaged} {last:?} {epochs} {logged:?}"
            );
        }
    }
}
