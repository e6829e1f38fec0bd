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

fn seed_log_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("crates/xp-results/tests/fixtures/seed_results.jsonl"),
        dir.path().join("results.jsonl"),
    )
    .unwrap();
    dir
}

#[test]
fn results_best_as_json_skips_nan_and_missing_and_says_so() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    let out = xtask(&[
        "results", "--dir", d, "best", "--metric", "val_loss", "--format", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let best: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The smallest finite val_loss in the fixture, found independently.
    let all = xp_results::Query::new(dir.path().join("results.jsonl"))
        .all()
        .unwrap()
        .value;
    let expected = all
        .iter()
        .filter(|e| {
            e.record
                .metrics
                .get("val_loss")
                .is_some_and(|v| !v.is_nan())
        })
        .min_by(|a, b| a.record.metrics["val_loss"].total_cmp(&b.record.metrics["val_loss"]))
        .unwrap();
    assert_eq!(
        best["experiment_name"],
        expected.record.experiment_name.as_str()
    );
    assert_eq!(best["line"], expected.line);
    assert!(text(&out.stderr).contains("1 result(s) with `val_loss` = NaN were not ranked"));
}

#[test]
fn results_top_csv_is_readable_and_ordered() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    let out = xtask(&[
        "results",
        "top",
        "--dir",
        d,
        "--metric",
        "validity",
        "--mode",
        "max",
        "-n",
        "3",
        "--filter",
        "model.model_type == vae",
        "--format",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..4],
        ["line", "timestamp", "experiment_name", "metrics.validity"]
    );
    assert!(header.contains(&"config.model.model_type"));
    let type_col = header
        .iter()
        .position(|h| *h == "config.model.model_type")
        .unwrap();
    let values: Vec<f64> = rows
        .map(|r| {
            let cells: Vec<&str> = r.split(',').collect();
            assert_eq!(cells[type_col], "vae");
            cells[3].parse().unwrap()
        })
        .collect();
    assert_eq!(values.len(), 3);
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
}

#[test]
fn results_list_table_and_compare() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    let out = xtask(&["results", "--dir", d, "list", "-n", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("moses_vae_38") && table.contains("moses_autoregressive_39"),
        "{table}"
    );
    assert!(!table.contains("moses_vae_36"), "{table}");
    let out = xtask(&["results", "--dir", d, "compare", "1", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("model.model_type") && table.contains("autoregressive"),
        "{table}"
    );
    assert!(
        !table.contains("data.train_path"),
        "equal keys are not listed: {table}"
    );
    let out = xtask(&["results", "--dir", d, "compare", "1", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no result on line 999"));
}

#[test]
fn results_errors_are_clear() {
    let out = xtask(&["results", "--dir", "/nonexistent/results", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no results log at /nonexistent/results/results.jsonl"));
    let dir = seed_log_dir();
    let out = xtask(&[
        "results",
        "--dir",
        dir.path().to_str().unwrap(),
        "list",
        "--filter",
        "model.model_type",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("bad filter `model.model_type`"));
}

#[test]
fn chem_canon_writes_one_line_per_input_and_says_why() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["chem", "canon", "--why"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"OCC\nC1CC\nC1=CC=CC=C1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "CCO\n\nc1ccccc1\n");
    assert!(
        text(&out.stderr).starts_with("line 2: invalid SMILES"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn chem_metrics_reads_csv_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen.csv");
    std::fs::write(&generated, "SMILES\nCCO\nOCC\nc1ccccc1\nC1CC\n").unwrap();
    let train = dir.path().join("train.txt");
    std::fs::write(&train, "CCO\n").unwrap();
    let out = xtask(&[
        "chem",
        "metrics",
        "--generated",
        generated.to_str().unwrap(),
        "--train",
        train.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["count"], 4);
    assert_eq!(m["validity"], 0.75);
    assert_eq!(m["novelty"], 0.5);
    assert!(m["snn"].is_null(), "no reference given");
    let out = xtask(&["chem", "metrics", "--generated", "/nonexistent.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("reading /nonexistent.csv"));
}
