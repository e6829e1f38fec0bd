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
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a key, e.g. `--set training.learning_rate=3e-4`; may be repeated.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn run(command: ConfigCommand) -> ExitCode {
    let (args, show) = match command {
        ConfigCommand::Check(a) => (a, false),
        ConfigCommand::Show(a) => (a, true),
    };
    match xp_config::create_config(args.config.as_deref(), &args.overrides) {
        Ok(config) if show => {
            print!("{}", config.to_toml_string());
            ExitCode::SUCCESS
        }
        Ok(_) => {
            let what = args
                .config
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
