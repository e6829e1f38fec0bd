//! `cargo xtask config check|show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a config; print every problem and exit 1 if there is any.
    Check(ConfigArgs),
    /// Print the resolved config as TOML.
    Show(ConfigArgs),
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Config file; the bundled default when left out.
    #[arg(long, conflicts_with = "file")]
    config: Option<PathBuf>,
    /// The config file, given without `--config`.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Override a key, e.g. `--set training.learning_rate=3e-4`; may be repeated.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// A config file given as a plain argument, checked to exist: a word that is no file there is
/// more often a stray part of a `--set` (`--set training.epochs= 3`) than a missing config.
pub fn plain_config_file(file: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    match file {
        Some(path) if !path.exists() => anyhow::bail!(
            "no config file `{}`: the one plain argument is a config file; set a key with `--set KEY=VALUE` (no spaces)",
            path.display()
        ),
        file => Ok(file),
    }
}

pub fn run(command: ConfigCommand) -> ExitCode {
    let (args, show) = match command {
        ConfigCommand::Check(a) => (a, false),
        ConfigCommand::Show(a) => (a, true),
    };
    let file = match plain_config_file(args.file) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let path = args.config.or(file);
    match xp_config::create_config(path.as_deref(), &args.overrides) {
        Ok(config) if show => {
            print!("{}", config.to_toml_string());
            ExitCode::SUCCESS
        }
        Ok(_) => {
            let what = path
                .as_ref()
                .map_or("the default config".to_owned(), |p| p.display().to_string());
            println!("{what}: ok");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
