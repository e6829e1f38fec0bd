//! `cargo xtask test`: everything CI checks, in order of cost, stopping at the first failure.

use std::process::Command;

use anyhow::{Context, bail};

pub fn run() -> anyhow::Result<()> {
    let root = crate::root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let steps: &[(&str, &[&str])] = &[
        ("formatting", &["fmt", "--all", "--check"]),
        (
            "generated files",
            &["run", "--quiet", "-p", "xtask", "--", "codegen", "--check"],
        ),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            // xtask too: the device check runs `xtask --features cuda`.
            "the CUDA backend builds",
            &[
                "clippy",
                "-p",
                "xp-train",
                "-p",
                "xtask",
                "--features",
                "xtask/cuda",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        (
            "docs (broken links are errors)",
            &["doc", "--no-deps", "--workspace", "--exclude", "xtask"],
        ),
        ("tests", &["test", "--workspace"]),
    ];
    for (name, args) in steps {
        println!("==> {name}: cargo {}", args.join(" "));
        let mut command = Command::new(&cargo);
        if args[0] == "doc" {
            // Only here: doctests under `cargo test` read the same variable.
            command.env("RUSTDOCFLAGS", "-D warnings");
        }
        let status = crate::interrupt::status(command.args(*args).current_dir(&root))
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        if !status.success() {
            bail!("{name} failed (cargo {})", args.join(" "));
        }
    }
    println!("==> oracle checks (Python: official readers)");
    crate::oracle::run_all()?;
    println!("==> all checks passed");
    Ok(())
}
