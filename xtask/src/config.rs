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

pub fn run(command: ConfigCommand) -> ExitCode {
    let (args, show) = match command {
        ConfigCommand::Check(a) => (a, false),
        ConfigCommand::Show(a) => (a, true),
    };
    let path = args.config.or(args.file);
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
