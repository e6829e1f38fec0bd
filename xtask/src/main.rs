//! `cargo xtask`: the project's commands, in Rust so they run wherever cargo does.

mod bench;
mod bench_chem;
mod bench_train;
mod chem;
mod codegen;
mod config;
mod fixtures;
mod interrupt;
mod oracle;
mod results;
mod runs;
mod sample;
mod sweep;
mod test;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc (its v2) rather than glibc's malloc: cosmolkit allocates many small, short-lived
/// objects, and validity + canonical SMILES runs about 1.3x faster with it, with training's speed
/// unchanged (mimalloc's v3 cost training ~5%). Libraries leave the allocator to the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "xp's project commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: formatting, clippy, tests, generated files, oracle checks.
    Test,
    /// Train the default experiment or a config file; --resume RUN_DIR goes on from a checkpoint.
    Train(TrainArgs),
    /// Regenerate the files derived from the code (config schema, key reference, default config).
    Codegen {
        /// Only check that the generated files are up to date; fail naming any that is stale.
        #[arg(long)]
        check: bool,
    },
    /// Check or show a config.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Benchmarks against their named baselines, printed as ratios (optimised build).
    Bench {
        #[arg(value_enum)]
        target: bench::Target,
    },
    /// Only the Python-oracle checks (part of `test`): all of them, or the one named.
    Oracle {
        #[arg(value_enum)]
        only: Option<oracle::Check>,
    },
    /// Chemistry: canonical SMILES, generation metrics, grid images.
    #[command(subcommand)]
    Chem(chem::ChemCommand),
    /// Query a results log: list, best, top, compare.
    Results(results::ResultsArgs),
    /// The runs in an output folder and where each stands: training, finished, resumable.
    Runs(runs::RunsArgs),
    /// Draw SMILES from a trained run's checkpoint (best by default), one per line.
    Sample(sample::SampleArgs),
    /// Re-cut the bundled MOSES subsets in fixtures/data from ../shared/data/moses.
    Fixtures,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Config file (default: the bundled default experiment).
    #[arg(long, conflicts_with = "file")]
    config: Option<PathBuf>,
    /// The config file, given without `--config`.
    #[arg(value_name = "FILE", conflicts_with = "resume")]
    file: Option<PathBuf>,
    /// Override one key, e.g. `--set training.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Go on from the last checkpoint of a run directory, with its saved config.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Train once per value, e.g. `--sweep training.learning_rate=1e-3,3e-4`; several --sweep
    /// run every combination, one after another.
    #[arg(long = "sweep", value_name = "KEY=V1,V2,...")]
    sweeps: Vec<String>,
}

/// Runs these same arguments again from an optimised build of xtask.
fn rerun_release() -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = interrupt::status(
        std::process::Command::new(cargo)
            .args(["run", "--release", "--quiet", "-p", "xtask", "--"])
            .args(std::env::args_os().skip(1))
            .current_dir(root()),
    );
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one folder below it.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    if let Err(e) = interrupt::watch() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test => test::run(),
        Command::Train(args) => match args.file {
            // A run directory where a config file goes: the user means to go on with that run.
            Some(dir) if dir.is_dir() => Err(anyhow::anyhow!(
                "{} is a folder, not a config file; to go on from a run, pass it as `--resume {}`",
                dir.display(),
                dir.display()
            )),
            file => config::plain_config_file(file).and_then(|file| {
                train::run(
                    args.config.or(file),
                    args.overrides,
                    args.resume,
                    args.sweeps,
                )
            }),
        },
        Command::Codegen { check } => codegen::run(check),
        Command::Config(cmd) => return config::run(cmd),
        Command::Fixtures => fixtures::run(),
        Command::Oracle { only } => oracle::run_checks(only),
        Command::Bench { target } => {
            // XP_BENCH_DEBUG=1: a quick look from the debug build (dependencies are optimised
            // there too), without building everything again in release mode.
            if cfg!(debug_assertions) && std::env::var_os("XP_BENCH_DEBUG").is_none() {
                return rerun_release();
            }
            bench::run(target)
        }
        Command::Results(args) => results::run(args),
        Command::Runs(args) => runs::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Chem(cmd) => chem::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) closed our output: not an error, as for cat.
        Err(err) if broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `err` comes from writing to a pipe whose reader has gone.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
