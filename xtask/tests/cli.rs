//! The commands as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_check_accepts_the_bundled_default() {
    let out = xtask(&[
        "config",
        "check",
        "--config",
        "fixtures/configs/default.toml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "fixtures/configs/default.toml: ok\n");
}

#[test]
fn config_check_prints_every_problem_and_exits_1() {
    let out = xtask(&[
        "config",
        "check",
        "--config",
        "crates/xp-config/tests/bad/16_mixed_problems.toml",
        "--set",
        "training.epochs=0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: 6 problems in the config:"),
        "{stderr}"
    );
    for needle in [
        "16_mixed_problems.toml:3:10: device:",
        "16_mixed_problems.toml:6:14: model.hidden_dim: must be at most 2048, got 4096",
        "16_mixed_problems.toml:7:1: model.dropot: unknown key; did you mean `model.dropout`?",
        "16_mixed_problems.toml:9:14: training.batch_size: expected integer, got string \"32\"",
        "16_mixed_problems.toml:11:14: data.train_path:",
        "override `training.epochs=0`: training.epochs: must be at least 1, got 0",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn config_show_prints_a_resolved_config_that_loads_back() {
    let out = xtask(&[
        "config",
        "show",
        "--set",
        "training.epochs=3",
        "--set",
        "model.model_type=vae",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shown.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let shown = xp_config::ExperimentConfig::load(&path).unwrap();
    let expected =
        xp_config::create_config(None, &["training.epochs=3", "model.model_type=vae"]).unwrap();
    assert_eq!(shown, expected);
}

#[test]
fn config_with_a_missing_file_fails_cleanly() {
    let out = xtask(&["config", "check", "--config", "no/such/config.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read config no/such/config.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn train_says_it_is_not_available_yet() {
    let out = xtask(&["train"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not available yet"));
}
