//! The commands as a user runs them.

// xtask's own rule (its clippy.toml) is for children of xtask, which blocks SIGINT; this test
// process blocks nothing.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs xtask as from a pipe: no `COLUMNS`, so tables are not fitted to a terminal.
fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .env_remove("COLUMNS")
        .output()
        .unwrap()
}

/// Runs xtask with `input` on its standard input.
fn xtask_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .env_remove("COLUMNS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails on its arguments exits before reading its input: a broken pipe then.
    match child.stdin.take().unwrap().write_all(input) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_check_and_show_take_the_file_with_or_without_the_flag() {
    let out = xtask(&[
        "config",
        "check",
        "--config",
        "fixtures/configs/default.toml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "fixtures/configs/default.toml: ok\n");
    // The file may be given without `--config`, for `show` too; not both ways at once.
    let out = xtask(&["config", "check", "fixtures/configs/default.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "fixtures/configs/default.toml: ok\n");
    let shown = |args: &[&str]| {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let bad = "crates/xp-config/tests/bad/16_mixed_problems.toml";
    let out = xtask(&["config", "show", bad]);
    assert!(
        text(&out.stderr).contains("16_mixed_problems.toml:6:14"),
        "{}",
        text(&out.stderr)
    );
    let file = "fixtures/configs/default.toml";
    let set = ["--set", "seed=5"];
    assert_eq!(
        shown(&[&["config", "show", file][..], &set].concat()),
        shown(&[&["config", "show", "--config", file][..], &set].concat())
    );
    let out = xtask(&["config", "check", "--config", file, file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
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
fn resuming_an_output_folder_names_its_newest_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pass the folder `cargo xtask train` printed"),
        "{}",
        text(&out.stderr)
    );
    let now = std::time::SystemTime::now();
    for (name, age_s) in [
        ("exp_20261101_120000", 60),
        ("exp_20261102_120000", 0),
        ("exp_20261103_120000", 120),
    ] {
        let run = dir.path().join(name);
        std::fs::create_dir(&run).unwrap();
        let config = std::fs::File::create(run.join("config.toml")).unwrap();
        config
            .set_modified(now - std::time::Duration::from_secs(age_s))
            .unwrap();
    }
    let out = xtask(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "the newest of its 3 runs is {}",
        dir.path().join("exp_20261102_120000").display()
    );
    assert!(
        text(&out.stderr).contains(&expected),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_resumed_run_s_saved_config_can_be_mended_with_set() {
    // A run named before `name` had its rules: its config.toml no longer loads as it is.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("old_20261101_120000");
    std::fs::create_dir(&run).unwrap();
    let config = std::fs::read_to_string(root().join("fixtures/configs/default.toml")).unwrap();
    let data = root().join("fixtures/data");
    let config = config
        .replace("name = \"moses_charrnn\"", "name = \"exp/variant\"")
        .replace("../data/", &format!("{}/", data.display()));
    std::fs::write(run.join("config.toml"), config).unwrap();
    let resume = |extra: &[&str]| {
        let mut args = vec!["train", "--resume", run.to_str().unwrap()];
        args.extend(extra);
        let out = xtask(&args);
        assert_eq!(out.status.code(), Some(1));
        text(&out.stderr)
    };
    let err = resume(&[]);
    assert!(
        err.contains("config.toml:") && err.contains("name: must not contain `/`"),
        "{err}"
    );
    // Mended, the resume gets as far as the run's (missing) checkpoints.
    let err = resume(&["--set", "name=exp_variant"]);
    assert!(err.contains("no checkpoints/ folder"), "{err}");
}

#[test]
fn config_with_a_missing_file_fails_cleanly() {
    let out = xtask(&["config", "check", "--config", "no/such/config.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read config no/such/config.toml"),
        "{stderr}"
    );
    // The OS's reason, once: the error's message has it, and its chain must not repeat it.
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

/// A tiny experiment (400 molecules, batches of 4, small model) in `dir`.
fn tiny_train_args(dir: &Path) -> Vec<String> {
    let src = std::fs::read_to_string(root().join("fixtures/data/train.csv")).unwrap();
    let rows: Vec<&str> = src.lines().take(401).collect();
    std::fs::write(dir.join("train.csv"), rows.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("val.csv"), rows[..41].join("\n") + "\n").unwrap();
    [
        format!("data.train_path={}", dir.join("train.csv").display()),
        format!("data.val_path={}", dir.join("val.csv").display()),
        format!("output_dir={}", dir.join("results").display()),
        "device=cpu".to_owned(),
        "model.hidden_dim=32".to_owned(),
        "model.num_layers=1".to_owned(),
        "training.batch_size=4".to_owned(),
        "training.epochs=3".to_owned(),
        "training.sample_size=16".to_owned(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_owned(), s])
    .collect()
}

#[test]
fn train_takes_its_config_file_without_the_flag_and_points_a_run_folder_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mine.toml");
    let default = std::fs::read_to_string(root().join("fixtures/configs/default.toml")).unwrap();
    assert!(default.contains("name = \"moses_charrnn\""));
    let mine = default.replace("name = \"moses_charrnn\"", "name = \"from_the_file\"");
    std::fs::write(&config, mine).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("train")
        .arg(&config)
        .args(tiny_train_args(dir.path()))
        .args(["--set", "training.epochs=1", "--set"])
        .arg(format!(
            "data.test_path={}",
            root().join("fixtures/data/test.csv").display()
        ))
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs: Vec<String> = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("from_the_file_"))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    // A run directory given that way is a mistake for --resume, and said to be.
    let run_dir = dir.path().join("results").join(&runs[0]);
    let out = xtask(&["train", run_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "is a folder, not a config file; to go on from a run, pass it as `--resume {}`",
            run_dir.display()
        )),
        "{stderr}"
    );
    let out = xtask(&["train", "a.toml", "--config", "b.toml"]);
    assert_eq!(out.status.code(), Some(2));
    // A plain word that is no file is taken for a stray part of a --set, and said to be.
    for args in [
        &["train", "--set", "training.epochs=", "3"][..],
        &["config", "check", "--set", "seed=", "3"][..],
    ] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(
                "no config file `3`: the one plain argument is a config file; set a key with `--set KEY=VALUE` (no spaces)"
            ),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_vae_s_epoch_lines_say_how_much_its_code_carries() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("train")
        .args(tiny_train_args(dir.path()))
        .args([
            "--set",
            "model.model_type=vae",
            "--set",
            "training.epochs=1",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("epoch 1/1")).unwrap();
    // "..., val loss 1.2345, code 12.3 nats, reconstructed 0.0%, validity ..."
    let nats: f64 = line
        .split("code ")
        .nth(1)
        .and_then(|rest| rest.split(" nats, reconstructed ").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no code size in {line:?}"));
    assert!(nats > 0.0, "{line}");
}

/// Sends `signal` (`INT`, `TERM`) to `child`, as Ctrl-C or a scheduler would.
fn send(signal: &str, child: &std::process::Child) {
    send_to(signal, &child.id().to_string());
}

/// `kill -SIGNAL -- TARGET`: a pid, or `-PGID` for a whole process group.
fn send_to(signal: &str, target: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} -- {target}");
}

/// Starts `xtask train` on the tiny experiment and waits for its first checkpoint.
fn start_training(dir: &Path) -> (std::process::Child, PathBuf) {
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("train")
        .args(tiny_train_args(dir))
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut run_dir = None;
    let found = wait_for(120, || {
        run_dir = std::fs::read_dir(dir.join("results"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| {
                // A checkpoint appears under its final name only once complete.
                std::fs::read_dir(p.join("checkpoints"))
                    .into_iter()
                    .flatten()
                    .any(|e| {
                        e.unwrap()
                            .file_name()
                            .to_string_lossy()
                            .starts_with("epoch")
                    })
            });
        run_dir.is_some()
    });
    assert!(found, "no checkpoint after 2 minutes");
    (child, run_dir.unwrap())
}

/// `xtask train --resume RUN_DIR` must finish the tiny experiment's 3 epochs (300 steps).
fn resume_to_the_end(dir: &Path, run_dir: &Path) {
    let out = xtask_in(dir, &["train", "--resume", run_dir.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("finished after 3 epochs, 300 steps"),
        "{stdout}"
    );
    assert!(stdout.contains("tensorboard --logdir"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("resuming"), "{stderr}");
    // Each epoch line names the samples' commonest mistake, unless every one is valid.
    let epochs: Vec<&str> = stderr.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert!(!epochs.is_empty(), "{stderr}");
    for line in epochs {
        assert!(
            line.contains("validity 100.0%,") || line.contains("% (commonest mistake: "),
            "{line}"
        );
        // A language model has no code to report.
        assert!(!line.contains("nats"), "{line}");
    }
    let results = std::fs::read_to_string(dir.join("results/results.jsonl")).unwrap();
    assert_eq!(results.lines().count(), 1, "one result for the whole run");
    // The metrics mirror holds every step of the 300 once: whole lines, nothing the interrupted
    // process logged past its checkpoint left twice.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let mut loss_steps: Vec<i64> = metrics
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|row| row["tag"] == "train/loss")
        .map(|row| row["step"].as_i64().unwrap())
        .collect();
    loss_steps.sort();
    assert_eq!(loss_steps, (0..300).collect::<Vec<_>>());
}

/// Starts the tiny training, sends `signal` during its second epoch and checks that the run
/// stopped as Ctrl-C stops it: saved, resumable, saying so (its stderr line starts with
/// `stopping`, e.g. `stopping:`). Returns the run directory.
fn stop_training_with(signal: &str, stopping: &str, dir: &Path) -> PathBuf {
    let (child, run_dir) = start_training(dir);
    assert_eq!(run_state(dir, &run_dir), ("training".to_owned(), 1));
    send(signal, &child);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert!(
        stdout.contains("go on with: cargo xtask train --resume"),
        "{stdout}"
    );
    let said = format!("{stopping} in training after this step, saving a checkpoint");
    assert!(stderr.contains(&said), "{stderr}");
    let (state, epoch) = run_state(dir, &run_dir);
    assert_eq!(state, "resumable");
    assert!((1..3).contains(&epoch), "{epoch}");
    run_dir
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = stop_training_with("INT", "stopping:", dir.path());
    resume_to_the_end(dir.path(), &run_dir);
    assert_eq!(run_state(dir.path(), &run_dir), ("finished".to_owned(), 3));
    let table = xtask_in(dir.path(), &["runs"]);
    let shown = text(&table.stdout);
    for column in ["finished", "3/3", "autoregressive", "%"] {
        assert!(shown.contains(column), "{shown}");
    }
    sample_the_finished_run(dir.path(), &run_dir);
}

#[test]
fn a_run_that_fails_after_a_checkpoint_says_how_to_go_on_and_a_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    // A folder where the results log belongs: the run trains, saves, then fails at its record.
    let log = dir.path().join("results/results.jsonl");
    std::fs::create_dir_all(&log).unwrap();
    let mut args = vec!["train".to_owned()];
    args.extend(tiny_train_args(dir.path()));
    args.extend(["--set".to_owned(), "training.epochs=1".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = xtask_in(dir.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let hint = "its checkpoints are kept (the last: epoch 1); once the cause is fixed, go on \
                with: cargo xtask train --resume results/";
    assert!(stderr.contains(hint), "{stderr}");
    let run_dir = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("checkpoints").is_dir())
        .expect("the run directory");
    std::fs::remove_dir(&log).unwrap();
    assert_eq!(run_state(dir.path(), &run_dir), ("resumable".to_owned(), 1));
    let out = xtask_in(
        dir.path(),
        &["train", "--resume", run_dir.to_str().unwrap()],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("finishing "), "{stderr}");
    assert!(stdout.contains("finished after 1 epoch,"), "{stdout}");
    assert!(
        !stdout.contains("throughput"),
        "nothing was trained: {stdout}"
    );
    assert_eq!(run_state(dir.path(), &run_dir), ("finished".to_owned(), 1));
}

/// `xtask runs --format json` on `dir/results`, which must succeed: its runs, and its stderr.
fn runs_json(dir: &Path) -> (Vec<serde_json::Value>, String) {
    let out = xtask_in(dir, &["runs", "--format", "json"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let runs = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (runs, stderr)
}

/// `xtask runs --format json` on `dir/results`: the state and saved epochs of `run_dir`.
fn run_state(dir: &Path, run_dir: &Path) -> (String, u64) {
    let (runs, stderr) = runs_json(dir);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert!(run_dir.ends_with(run["run_dir"].as_str().unwrap()), "{run}");
    let resumable = run["state"] == "resumable";
    assert_eq!(
        stderr.contains("go on with a stopped run: cargo xtask train --resume"),
        resumable,
        "{stderr}"
    );
    (
        run["state"].as_str().unwrap().to_owned(),
        run["epoch"].as_u64().unwrap(),
    )
}

#[test]
fn runs_reports_a_run_without_checkpoints_and_skips_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started_20261129_101010");
    std::fs::create_dir(&started).unwrap();
    std::fs::copy(
        root().join("fixtures/configs/default.toml"),
        started.join("config.toml"),
    )
    .unwrap();
    let broken = dir.path().join("broken_20261129_101011");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("config.toml"), "name = ").unwrap();
    std::fs::create_dir(dir.path().join("not_a_run")).unwrap();
    // A checkpoint folder that cannot be read (here a file in its place) is said, not hidden.
    let unreadable = dir.path().join("unreadable_20261129_101012");
    std::fs::create_dir(&unreadable).unwrap();
    std::fs::copy(started.join("config.toml"), unreadable.join("config.toml")).unwrap();
    std::fs::write(unreadable.join("checkpoints"), "").unwrap();
    let out = xtask(&["runs", dir.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert_eq!(
            (&run["state"], &run["epoch"], &run["epochs"]),
            (&"no_checkpoint".into(), &0.into(), &2.into())
        );
    }
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: {}: shown as having no checkpoint: cannot read the checkpoint folder",
            unreadable.display()
        )) && stderr.contains("not a folder"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("warning: {}", started.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("warning: skipped {}", broken.display())),
        "{stderr}"
    );
    // A run directory given where the output folder belongs: that run alone.
    let out = xtask(&["runs", started.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0]["run_dir"]
            .as_str()
            .unwrap()
            .ends_with("started_20261129_101010"),
        "{runs:?}"
    );
    assert!(
        !text(&out.stderr).contains("warning"),
        "the other runs are not read: {}",
        text(&out.stderr)
    );
    // `--dir`, as `results` takes it, says the same; DIR and `--dir` together are refused.
    let flag = xtask(&[
        "runs",
        "--dir",
        started.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        text(&flag.stdout),
        text(&out.stdout),
        "{}",
        text(&flag.stderr)
    );
    let both = xtask(&["runs", "results", "--dir", started.to_str().unwrap()]);
    assert_eq!(both.status.code(), Some(2), "{}", text(&both.stderr));
    assert!(text(&both.stderr).contains("cannot be used with"));
    let out = xtask(&["runs", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is a run directory that cannot be read")
            && stderr.contains(&format!("warning: skipped {}", broken.display())),
        "{stderr}"
    );
    let out = xtask(&["runs", dir.path().join("not_a_run").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no run directories in"),
        "{}",
        text(&out.stderr)
    );
}

fn xtask_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `xtask sample` on the tiny experiment's finished run.
fn sample_the_finished_run(dir: &Path, run_dir: &Path) {
    let sample = |args: &[&str]| xtask_in(dir, &[&["sample"][..], args].concat());
    let run = run_dir.to_str().unwrap();
    // With the run's own settings: its samples.txt again, on stdout.
    let out = sample(&[run]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let samples = std::fs::read_to_string(run_dir.join("samples.txt")).unwrap();
    assert_eq!(text(&out.stdout), samples);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("16 SMILES from results/"), "{stderr}");
    assert!(stderr.contains("% valid"), "{stderr}");
    // And how many are invalid, by kind.
    let invalid = samples.lines().filter(|s| !xp_chem::is_valid(s)).count();
    let said = stderr.split(", invalid ").nth(1).unwrap_or("");
    assert!(
        said.starts_with(&format!("{invalid} (")) || (invalid == 0 && said.starts_with('0')),
        "{invalid} invalid: {stderr}"
    );
    // Into a file, with the hint to score them.
    let out = sample(&[
        run,
        "-n",
        "20",
        "--seed",
        "3",
        "--checkpoint",
        "last",
        "-o",
        "gen.txt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(dir.join("gen.txt")).unwrap();
    assert_eq!(written.lines().count(), 20);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("score them: cargo xtask chem metrics --generated gen.txt --train "),
        "{stderr}"
    );
    // Mistakes: the output folder for the run, a temperature of 0 or below, a folder that is not
    // there.
    let out = sample(&["results"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is not a run directory"), "{stderr}");
    assert!(stderr.contains("its one run is"), "{stderr}");
    for diffusion_only in [["--diffusion-steps", "4"], ["--diffusion-order", "random"]] {
        let out = sample(&[&[run][..], &diffusion_only].concat());
        assert_eq!(out.status.code(), Some(1), "{diffusion_only:?}");
        assert!(
            text(&out.stderr).contains("diffusion models only"),
            "{diffusion_only:?}: {}",
            text(&out.stderr)
        );
    }
    for temperature in ["0", "-0.5"] {
        let out = sample(&[run, "--temperature", temperature]);
        assert_eq!(out.status.code(), Some(1), "{temperature}");
        assert!(
            text(&out.stderr).contains("--temperature must be a number above 0"),
            "{temperature}: {}",
            text(&out.stderr)
        );
    }
    let out = sample(&[run, "-o", "nowhere/gen.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("the folder nowhere does not exist"),
        "{}",
        text(&out.stderr)
    );
    // A folder given for the file: refused before drawing, so no "N SMILES from" line.
    let out = sample(&[run, "-o", "results"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot write results: it is a folder; give a file, such as results/samples.txt"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("SMILES from"), "{stderr}");
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, run_dir) = start_training(dir.path());
    // SIGKILL at some moment of the second epoch: no handler runs, nothing is saved.
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    resume_to_the_end(dir.path(), &run_dir);
}

#[test]
fn a_sweep_checks_every_config_first_then_runs_each_combination() {
    let dir = tempfile::tempdir().unwrap();
    let train = |extra: &[&str], stop_at: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("train")
            .args(tiny_train_args(dir.path()))
            .args(extra)
            .current_dir(dir.path());
        if let Some(step) = stop_at {
            cmd.env("XP_TRAIN_STOP_AT_STEP", step);
        }
        cmd.output().unwrap()
    };
    // Bad values anywhere in the product: every one reported, nothing trained.
    let out = train(
        &[
            "--sweep",
            "training.learning_rate=1e-3,abc",
            "--sweep",
            "model.dropout=0.1,7",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2 problems; no run was started"),
        "{stderr}"
    );
    assert!(stderr.contains("training.learning_rate=abc"), "{stderr}");
    assert!(stderr.contains("model.dropout=7"), "{stderr}");
    assert!(!dir.path().join("results").exists());
    let out = train(&["--sweep", "model.num_layers=1,2"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("both swept and set"),
        "{}",
        text(&out.stderr)
    );

    // Four combinations; the two whose data.max_length keeps no molecule fail (a check that
    // needs the data, so it happens when the run starts), the sweep goes on.
    let out = train(
        &[
            "--sweep",
            "data.max_length=10,100",
            "--sweep",
            "training.learning_rate=1e-3,3e-3",
        ],
        None,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("2 of the sweep's 4 runs failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[sweep 3/4] data.max_length=100 training.learning_rate=1e-3"),
        "{stderr}"
    );
    assert_eq!(stdout.matches("failed (above)").count(), 2, "{stdout}");
    let results = std::fs::read_to_string(dir.path().join("results/results.jsonl")).unwrap();
    let rates: Vec<f64> = results
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| r["config"]["training"]["learning_rate"].as_f64().unwrap())
        .collect();
    assert_eq!(rates, [1e-3, 3e-3]);

    // Ctrl-C (here the test hook) ends the current run resumably, and the sweep.
    let out = train(&["--sweep", "training.learning_rate=1e-3,3e-3"], Some("5"));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("(interrupted: --resume it)"), "{stdout}");
    assert!(stdout.contains("not run"), "{stdout}");

    // Its one checkpoint came before any validation: `best` has nothing to rank by, and the
    // error names the flag that samples it anyway.
    let (runs, _) = runs_json(dir.path());
    let stopped: Vec<&str> = runs
        .iter()
        .filter(|run| run["state"] == "resumable")
        .map(|run| run["run_dir"].as_str().unwrap())
        .collect();
    assert_eq!(stopped.len(), 1, "{runs:?}");
    let out = xtask_in(dir.path(), &["sample", stopped[0], "-n", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pick the last one (`--checkpoint last`)"),
        "{}",
        text(&out.stderr)
    );
    let out = xtask_in(
        dir.path(),
        &["sample", stopped[0], "-n", "2", "--checkpoint", "last"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 2);
}

#[test]
fn train_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a run directory"),
        "{}",
        text(&out.stderr)
    );
    let mut args = vec!["train".to_owned()];
    args.extend(tiny_train_args(dir.path()));
    args.extend(["--set".to_owned(), "data.max_length=10".to_owned()]);
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("train.csv: no usable rows: 400 rows, 0 kept, 400 too long"),
        "{stderr}"
    );
    assert!(
        stderr.contains("more than data.max_length = 10"),
        "{stderr}"
    );
}

#[test]
fn chem_draw_writes_a_png_of_the_valid_molecules() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("grid.png");
    // Skipped lines are named by their line in the input (blank lines count), a line that is
    // not UTF-8 text as such.
    let out = xtask_with_input(
        &["chem", "draw", "--legends", "-o", png.to_str().unwrap()],
        b"CCO\n\nnope\nC\xffC\nc1ccccc1\n\nCC(=O)O\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped line 3: invalid SMILES")
            && stderr.contains("skipped line 4: not UTF-8 text (a bad byte at column 2)"),
        "{stderr}"
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (600, 200), "three molecules in one row");

    // Nothing drawable: an error, after saying why each SMILES failed; no file is written.
    let none = dir.path().join("none.png");
    let draw = |input: &[u8], extra: &[&str]| {
        let mut args = vec!["chem", "draw", "--out", none.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = xtask_with_input(&args, input);
        assert_eq!(out.status.code(), Some(1));
        text(&out.stderr)
    };
    let stderr = draw(b"xx\n\nC1C\n", &[]);
    assert!(
        stderr.contains("skipped line 1: invalid SMILES")
            && stderr.contains("skipped line 3: invalid SMILES")
            && stderr.contains("nothing to draw"),
        "{stderr}"
    );
    assert!(draw(b"\n", &[]).contains("no SMILES on standard input"));
    assert!(draw(b"CCO\n", &["--per-row", "0"]).contains("--per-row must be at least 1"));
    assert!(!none.exists());

    // A failed draw leaves an earlier image as it was, and no temporary file beside it.
    let out = xtask_with_input(&["chem", "draw", "-o", png.to_str().unwrap()], b"xx\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(&png).unwrap(), bytes);
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["grid.png"]);
    // One molecule is one; an output that cannot be written fails before the drawing.
    let out = xtask_with_input(&["chem", "draw", "-o", png.to_str().unwrap()], b"CCO\n");
    assert!(
        text(&out.stderr).contains("(200x200, 1 molecule)"),
        "{}",
        text(&out.stderr)
    );
    for (to, says) in [
        (
            dir.path().to_path_buf(),
            "it is a folder; give a file, such as",
        ),
        (dir.path().join("no/grid.png"), "does not exist"),
    ] {
        let out = xtask_with_input(&["chem", "draw", "-o", to.to_str().unwrap()], b"xx\n");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(says) && !stderr.contains("skipped"),
            "{stderr}"
        );
    }
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

/// Every result in `dir`'s log, read by xp-results itself.
fn all_results(dir: &Path) -> Vec<xp_results::Entry> {
    xp_results::Query::new(dir.join("results.jsonl"))
        .all()
        .unwrap()
        .value
}

/// The result with the smallest non-NaN val_loss, found independently of the CLI.
fn smallest_val_loss(dir: &Path) -> xp_results::Entry {
    all_results(dir)
        .into_iter()
        .filter(|e| {
            e.record
                .metrics
                .get("val_loss")
                .is_some_and(|v| !v.is_nan())
        })
        .min_by(|a, b| a.record.metrics["val_loss"].total_cmp(&b.record.metrics["val_loss"]))
        .unwrap()
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
    let expected = smallest_val_loss(dir.path());
    assert_eq!(
        best["experiment_name"],
        expected.record.experiment_name.as_str()
    );
    assert_eq!(best["line"], expected.line);
    assert!(text(&out.stderr).contains("1 result(s) with `val_loss` = NaN were not ranked"));
}

#[test]
fn results_warnings_name_the_file_and_the_line() {
    let dir = seed_log_dir();
    let log = dir.path().join("results.jsonl");
    let original = std::fs::read_to_string(&log).unwrap();
    let complete = original.lines().count();
    let good = original.lines().next().unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    // A corrupt line in the middle, a good record after it, then a torn last line.
    write!(file, "{{not json\n{good}\n{{\"timestamp\": \"2026").unwrap();
    drop(file);
    let out = xtask(&["results", "--dir", dir.path().to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let prefix = format!("warning: {}: line ", log.display());
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].starts_with(&format!("{prefix}{} ", complete + 1))
            && warnings[0].contains("not a valid result"),
        "{stderr}"
    );
    assert!(
        warnings[1].starts_with(&format!("{prefix}{} ", complete + 3))
            && warnings[1].contains("torn last line"),
        "{stderr}"
    );
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
    // For a person: the time to the second, metrics to four decimals.
    let last = all_results(dir.path()).pop().unwrap();
    let ts = &last.record.timestamp;
    assert!(
        table.contains(&format!("{} {}", &ts[..10], &ts[11..19])),
        "{table}"
    );
    assert!(!table.contains(ts.as_str()), "{table}");
    let validity = last.record.metrics["validity"];
    assert!(table.contains(&format!(" {validity:.4} ")), "{table}");
    assert!(!table.contains(&validity.to_string()), "{table}");
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
    // Nor equal metrics: line 1 and line 3 share their dropout and differ in their scores.
    let rows = |a: &str, b: &str| {
        let out = xtask(&["results", "--dir", d, "compare", a, b, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["kind"].as_str().unwrap(),
                    r["key"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let differences = rows("1", "3");
    assert!(
        !differences.contains(&"config model.dropout".to_owned()),
        "{differences:?}"
    );
    assert!(
        rows("1", "1").is_empty(),
        "a result against itself differs in nothing"
    );
    let out = xtask(&["results", "--dir", d, "compare", "1", "1"]);
    assert!(
        text(&out.stdout).contains("(no differences in config or metrics)"),
        "{}",
        text(&out.stdout)
    );
    let out = xtask(&["results", "--dir", d, "compare", "1", "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no result on line 999"));
}

#[test]
fn results_tables_write_control_characters_as_escapes() {
    // The seed's tracker took any name; one with a newline and a terminal escape.
    let dir = tempfile::tempdir().unwrap();
    let name = "new\nline\u{1b}[31m";
    let line = |n: &str, loss: f64| {
        serde_json::json!({"timestamp": "2026-12-07T10:00:00+00:00", "experiment_name": n,
            "config": {"note": "a\tb"}, "metrics": {"val_loss": loss}, "artifacts": {}})
        .to_string()
    };
    std::fs::write(
        dir.path().join("results.jsonl"),
        format!("{}\n{}\n", line(name, 0.5), line("plain", 0.7)),
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let escaped = "new\\nline\\u{1b}[31m";
    for command in [
        &["list"][..],
        &["top", "--metric", "val_loss", "-n", "2"],
        &["best", "--metric", "val_loss"],
        &["compare", "1", "2"],
    ] {
        let out = xtask(&[&["results", "--dir", d][..], command].concat());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let table = text(&out.stdout);
        assert!(table.contains(escaped), "{command:?}: {table}");
        assert!(
            !table.contains('\u{1b}') && !table.contains('\t'),
            "{command:?}: {table}"
        );
    }
    // JSON keeps the name as it is.
    let out = xtask(&[
        "results", "--dir", d, "best", "--metric", "val_loss", "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["experiment_name"], name, "{v}");
}

#[test]
fn results_list_and_top_show_only_the_metrics_asked_for() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    let header = |out: &Output| text(&out.stdout).lines().next().unwrap_or("").to_owned();
    let out = xtask(&["results", "--dir", d, "list", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(header(&out).contains("metrics.val_loss,metrics.validity"));
    let out = xtask(&[
        "results",
        "--dir",
        d,
        "list",
        "--metrics",
        "validity",
        "--format",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let h = header(&out);
    assert!(h.contains("metrics.validity"), "{h}");
    assert!(!h.contains("metrics.val_loss"), "{h}");
    // The table too; the ranking metric of `top` always stays, first.
    let out = xtask(&["results", "--dir", d, "list", "--metrics", "validity"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("validity") && !table.contains("val_loss"),
        "{table}"
    );
    let out = xtask(&[
        "results",
        "--dir",
        d,
        "top",
        "--metric",
        "val_loss",
        "--metrics",
        "validity,val_loss",
        "--format",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let h = header(&out);
    assert!(
        h.starts_with("line,timestamp,experiment_name,metrics.val_loss,metrics.validity,config."),
        "{h}"
    );
    // A misspelt metric is refused, with the names there are.
    let out = xtask(&["results", "--dir", d, "list", "--metrics", "valdity"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no result here has a metric `valdity`") && err.contains("val_loss, validity"),
        "{err}"
    );
}

#[test]
fn results_tables_fit_the_terminal_and_name_the_metrics_left_out() {
    // A training run logs about twenty metrics: a table of all of them is too wide to read.
    let dir = tempfile::tempdir().unwrap();
    let log = xp_results::ResultsTracker::open(dir.path());
    let names: Vec<String> = (0..20).map(|i| format!("metric_number_{i:02}")).collect();
    for run in 0..3 {
        let metrics = names.iter().map(|n| (n.as_str(), 0.5 + run as f64));
        log.log_result("fit", &serde_json::json!({"run": run}), metrics, [])
            .unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let in_terminal = |columns: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["results", "--dir", d])
            .args(args)
            .env("COLUMNS", columns)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    for (columns, args) in [
        ("100", &["list"][..]),
        (
            "80",
            &["top", "--metric", "metric_number_19", "-n", "2"][..],
        ),
    ] {
        let width: usize = columns.parse().unwrap();
        let out = in_terminal(columns, args);
        let (table, note) = out.trim_end().rsplit_once('\n').unwrap();
        assert!(
            table.lines().all(|l| l.chars().count() <= width),
            "wider than {width}:\n{out}"
        );
        // Every metric is either a column or named below the table, in order.
        let header = table.lines().nth(1).unwrap();
        let shown: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| header.contains(n))
            .collect();
        let hidden: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !shown.contains(n))
            .collect();
        assert!(!shown.is_empty() && !hidden.is_empty(), "{out}");
        assert!(
            note.starts_with(&format!("{} more metrics did not fit: ", hidden.len()))
                && note.contains(&hidden.join(", ")),
            "{out}"
        );
        if args[0] == "top" {
            // The ranking metric is never the one left out.
            assert!(shown.contains(&"metric_number_19"), "{out}");
        }
    }
    // Columns chosen with --metrics are shown even when too wide; so is everything in a pipe.
    let chosen = names.join(",");
    let out = in_terminal("60", &["list", "--metrics", &chosen]);
    assert!(names.iter().all(|n| out.contains(n.as_str())), "{out}");
    assert!(!out.contains("did not fit"), "{out}");
    let out = xtask(&["results", "--dir", d, "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    assert!(names.iter().all(|n| out.contains(n.as_str())), "{out}");
    assert!(!out.contains("did not fit"), "{out}");
}

#[test]
fn results_best_table_shows_the_whole_result() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    let out = xtask(&["results", "--dir", d, "best", "--metric", "val_loss"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let best = smallest_val_loss(dir.path());
    let row = |key: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(key))
            .unwrap_or_else(|| panic!("no row {key}: {table}"))
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_owned()
    };
    assert!(table.contains(&format!("line {}", best.line)), "{table}");
    assert_eq!(row("experiment"), best.record.experiment_name);
    // Four decimals for a person; `--format json` keeps every digit.
    assert_eq!(
        row("metrics.val_loss"),
        format!("{:.4}", best.record.metrics["val_loss"])
    );
    assert_eq!(
        row("config.model.model_type"),
        best.record.config["model"]["model_type"].as_str().unwrap()
    );
    assert_eq!(
        row("config.training.learning_rate"),
        best.record.config["training"]["learning_rate"].to_string()
    );
}

#[test]
fn results_unknown_metric_fails_with_a_suggestion() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    let out = xtask(&["results", "--dir", d, "best", "--metric", "validty"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no result has a metric `validty`; did you mean `validity`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(the metrics there: val_loss, validity"),
        "{stderr}"
    );
    // Scripts get the error too, not an empty answer.
    let out = xtask(&[
        "results", "--dir", d, "top", "--metric", "loss", "--format", "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("did you mean `val_loss`?"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    // A filter that matches nothing is an empty answer, not an unknown metric.
    empty_json_answer(
        d,
        &["top", "--metric", "val_loss", "--filter", "seed > 1000"],
    );
    let out = xtask(&[
        "results", "--dir", d, "top", "--metric", "val_loss", "-n", "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("must be at least 1"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `results --dir D --filter FILTER COMMAND...` and checks that it fails (exit 1, nothing
/// on stdout) with `says` on stderr.
fn results_filter_fails(d: &str, command: &[&str], filter: &str, says: &str) {
    let mut args = vec!["results", "--dir", d, "--filter", filter];
    args.extend(command);
    let out = xtask(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{filter}: {stderr}");
    assert!(stderr.contains(says), "{filter}: {stderr}");
    assert!(out.stdout.is_empty(), "{filter}");
}

#[test]
fn results_filter_on_a_key_no_result_has_fails_with_a_suggestion() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    // A misspelled config key or metric in a filter would match nothing, silently.
    for (command, filter, says) in [
        (
            &["list"][..],
            "model.model_typ == vae",
            "filter `model.model_typ == vae`: no result has the config key `model.model_typ`; did you mean `model.model_type`?",
        ),
        (
            &["best", "--metric", "val_loss"][..],
            "metrics.validty > 0.5",
            "no result has the metric `metrics.validty`; did you mean `metrics.validity`?",
        ),
        (
            &["top", "--metric", "val_loss", "--format", "json"][..],
            "zzz != 1",
            "filter `zzz != 1`: no result has the config key `zzz`",
        ),
    ] {
        results_filter_fails(d, command, filter, says);
    }
    // As does an experiment glob no name matches.
    let out = xtask(&["results", "--dir", d, "--experiment", "moses_vea_*", "list"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--experiment `moses_vea_*` matches no result's name (the names there: moses_vae_00, moses_autoregressive_01,"
        ),
        "{stderr}"
    );
    // A key that exists but matches nothing stays an empty answer.
    empty_json_answer(d, &["--filter", "model.model_type == nothing", "list"]);
}

#[test]
fn results_filter_with_a_value_of_another_kind_fails_saying_what_the_key_holds() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    // A number compared with text matches nothing, silently, unless we say so.
    for (command, filter, says) in [
        (
            &["list"][..],
            "model.hidden_dim > abc",
            "filter `model.hidden_dim > abc`: `model.hidden_dim` holds a number (such as 128), never text like \"abc\", so it matches nothing",
        ),
        (
            &["best", "--metric", "val_loss"][..],
            "model.model_type == 3",
            "`model.model_type` holds text (such as \"vae\"), never a number like 3, so it matches nothing; to compare text, quote the value: `model.model_type == \"3\"`",
        ),
        (
            &["top", "--metric", "val_loss", "--format", "json"][..],
            "metrics.validity >= high",
            "`metrics.validity` holds a number (such as 0.575425), never text like \"high\"",
        ),
        (
            // The one result this name picks has a NaN val_loss: a number still.
            &["--experiment", "moses_autoregressive_11", "list"][..],
            "metrics.val_loss > low",
            "`metrics.val_loss` holds a number (such as NaN), never text like \"low\"",
        ),
    ] {
        results_filter_fails(d, command, filter, says);
    }
    // `!=` a value of another kind passes every result that has the key: no error.
    let out = xtask(&[
        "results",
        "--dir",
        d,
        "--filter",
        "model.model_type != 3",
        "list",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), all_results(dir.path()).len());
}

#[test]
fn results_filter_on_a_value_no_result_holds_notes_the_values() {
    let dir = seed_log_dir();
    let d = dir.path().to_str().unwrap();
    // A misspelt value (`vea`, `VAE`) empties the answer, as a misspelt key does; but a value no
    // run has yet is a fair question, so the answer stays (empty, status 0) with a note.
    for (command, filter, empty, says) in [
        (
            &["list", "--format", "json"][..],
            "model.model_type == vea",
            "[]",
            "note: filter `model.model_type == vea`: no result has `model.model_type` == \"vea\"; it holds \"autoregressive\", \"vae\"; did you mean \"vae\"?\n",
        ),
        (
            &["top", "--metric", "val_loss", "--format", "json"][..],
            "model.model_type == VAE",
            "[]",
            "it holds \"autoregressive\", \"vae\"; did you mean \"vae\"?\n",
        ),
        (
            &["list", "--format", "csv"][..],
            "training.learning_rate == 0.002",
            "line,timestamp,experiment_name",
            "no result has `training.learning_rate` == 0.002; it holds 0.0001, 0.0003, 0.001\n",
        ),
        (
            &["list", "--format", "json"][..],
            "metrics.val_loss == 7",
            "[]",
            "no result has `metrics.val_loss` == 7; it holds 38 values from 0.338357 to 1.966297\n",
        ),
    ] {
        let mut args = vec!["results", "--dir", d, "--filter", filter];
        args.extend(command);
        let out = xtask(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{filter}: {stderr}");
        assert_eq!(text(&out.stdout).trim(), empty, "{filter}");
        assert!(stderr.contains(says), "{filter}: {stderr}");
    }
    // `best` has no empty answer to give: its error comes with the note.
    let out = xtask(&[
        "results",
        "--dir",
        d,
        "--filter",
        "model.model_type == vea",
        "best",
        "--metric",
        "val_loss",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did you mean \"vae\"?"), "{stderr}");
    // Each value is held, though by no result at once: no note.
    let stderr = empty_json_answer(
        d,
        &[
            "--filter",
            "model.model_type == vae",
            "--filter",
            "model.model_type == autoregressive",
            "list",
        ],
    );
    assert!(!stderr.contains("note"), "{stderr}");
    // Quoted as pandas' `query` quotes: the same answer as the bare word.
    let quoted = |filter: &str| xtask(&["results", "--dir", d, "--filter", filter, "list"]).stdout;
    assert_eq!(
        quoted("model.model_type == 'vae'"),
        quoted("model.model_type == vae")
    );
    assert!(!quoted("model.model_type == vae").is_empty());
}

/// `results --dir d ARGS --format json`, which must succeed with an empty answer; its stderr.
fn empty_json_answer(d: &str, args: &[&str]) -> String {
    let out = xtask(&[&["results", "--dir", d][..], args, &["--format", "json"]].concat());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).trim(), "[]", "{args:?}");
    text(&out.stderr)
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
fn results_dir_may_name_the_log_file_itself() {
    let dir = seed_log_dir();
    let folder = dir.path().to_str().unwrap();
    // A log copied elsewhere under another name.
    let copy = dir.path().join("old.jsonl");
    std::fs::copy(dir.path().join("results.jsonl"), &copy).unwrap();
    for command in [
        &["list", "--format", "json"][..],
        &["best", "--metric", "val_loss", "--format", "json"],
        &["list", "--experiment", "nothing_*"],
    ] {
        let by_folder = xtask(&[&["results", "--dir", folder][..], command].concat());
        let by_file = xtask(&[&["results", "--dir", copy.to_str().unwrap()][..], command].concat());
        assert_eq!(
            by_file.status.code(),
            by_folder.status.code(),
            "{command:?}"
        );
        assert_eq!(
            text(&by_file.stdout),
            text(&by_folder.stdout),
            "{command:?}"
        );
        assert_eq!(
            text(&by_file.stderr),
            text(&by_folder.stderr),
            "{command:?}"
        );
    }
    assert!(!text(&xtask(&["results", "--dir", folder, "list"]).stdout).is_empty());
}

#[test]
fn chem_inputs_that_are_folders_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let smiles = dir.path().join("g.txt");
    std::fs::write(&smiles, "CCO\n").unwrap();
    let g = smiles.to_str().unwrap();
    for args in [
        &["chem", "metrics", "--generated", d][..],
        &["chem", "metrics", "--generated", g, "--train", d],
        &["chem", "metrics", "--generated", g, "--prepared", d],
    ] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(&format!("reading {d}: it is a folder; give a file")),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["chem", "canon"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Far more than a pipe holds; it fails once the command has exited.
        let _ = stdin.write_all("CCO\n".repeat(200_000).as_bytes());
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "CCO\n");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn chem_canon_writes_one_line_per_input_and_says_why() {
    // A line that is not UTF-8 text is one invalid line; the lines after it go on.
    let out = xtask_with_input(
        &["chem", "canon", "--why"],
        b"OCC\nC1CC\n\xe9C\r\nC1=CC=CC=C1\r\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "CCO\n\n\nc1ccccc1\n");
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(
        lines[0],
        "line 2: invalid SMILES: ring bond 1 is opened but never closed"
    );
    assert_eq!(lines[1], "line 3: not UTF-8 text (a bad byte at column 1)");
    assert_eq!(
        lines[2],
        "4 lines: 2 valid, invalid 2 (1 syntax, 1 unclosed ring)"
    );
}

#[test]
fn chem_canon_keeps_the_input_order_across_chunks() {
    // More lines than one parallel chunk holds; each comes out on its own line number.
    let input: Vec<String> = (0..10_000)
        .map(|i| match i % 7 {
            0 => "C1CC".to_owned(),
            _ => format!("O{}", "C".repeat(i % 5)),
        })
        .collect();
    let out = xtask_with_input(
        &["chem", "canon"],
        format!("{}\n", input.join("\n")).as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    let expected: Vec<String> = input
        .iter()
        .map(|s| xp_chem::canonical_smiles(s).unwrap_or_default())
        .collect();
    let got: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(got, expected);
    assert!(out.stderr.is_empty(), "no --why, nothing on stderr");
}

#[test]
fn chem_metrics_reads_csv_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    // A SMILES that is not UTF-8 text counts as invalid, with a warning naming its line.
    let generated = dir.path().join("gen.csv");
    std::fs::write(&generated, b"SMILES\nCCO\nOCC\nc1ccccc1\nC\xffC\n").unwrap();
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
    assert!(
        text(&out.stderr).contains("1 SMILES not UTF-8 text (the first on line 5)"),
        "{}",
        text(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["count"], 4);
    assert_eq!(m["validity"], 0.75);
    assert_eq!(m["novelty"], 0.5);
    assert!(m["snn"].is_null(), "no reference given");
    assert!(m["frag"].is_null() && m["scaf"].is_null());
    assert_eq!(m["filters"], 1.0);
    let invalid = m["invalid"].as_object().unwrap();
    let total: u64 = invalid.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(total, 1, "{invalid:?}");
    // The table, with a reference set: every MOSES metric on its own row.
    let reference = dir.path().join("ref.txt");
    std::fs::write(
        &reference,
        "c1ccccc1O
c1ccc2ccccc2c1
",
    )
    .unwrap();
    let out = xtask(&[
        "chem",
        "metrics",
        "--generated",
        generated.to_str().unwrap(),
        "--reference",
        reference.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = |label: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{table}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(row("validity"), "0.7500");
    assert_eq!(row("Filters"), "1.0000");
    let why = table.lines().find(|l| l.starts_with("invalid")).unwrap();
    assert!(why.ends_with(" 1 (1 syntax)"), "{why}");
    assert_eq!(
        row("Scaf"),
        "-",
        "no scaffold of two rings among the generated"
    );
    assert_ne!(row("Frag"), "-");
    assert_ne!(row("SNN"), "-");
    let out = xtask(&["chem", "metrics", "--generated", "/nonexistent.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("reading /nonexistent.csv"));
}

#[test]
fn chem_metrics_reads_csv_columns_and_gzip_and_refuses_empty_sets() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = |args: &[&str]| {
        let mut all = vec!["chem", "metrics", "--format", "json"];
        all.extend_from_slice(args);
        xtask(&all)
    };
    // The SMILES column among others, in any case; a comma inside a quoted field is fine, and so
    // are bytes that are not UTF-8 in another column.
    let csv = dir.path().join("scored.csv");
    std::fs::write(
        &csv,
        b"id,SMILES,note\n1,CCO,\"good, short\"\n2,C1CC,bad\n3,c1ccccc1,caf\xe9\n",
    )
    .unwrap();
    let out = metrics(&["--generated", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (m["count"].as_u64(), m["validity"].as_f64()),
        (Some(3), Some(2.0 / 3.0))
    );
    // MOSES ships its splits gzip-compressed; the content decides, not the name.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, b"SMILES\nOCC\nCCN\n").unwrap();
    let packed = enc.finish().unwrap();
    for name in ["train.csv.gz", "packed_but_named.csv"] {
        let gz = dir.path().join(name);
        std::fs::write(&gz, &packed).unwrap();
        let out = metrics(&[
            "--generated",
            csv.to_str().unwrap(),
            "--train",
            gz.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            m["novelty"], 0.5,
            "{name}: CCO is in the training set as OCC"
        );
    }

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let no_column = dir.path().join("no-column.csv");
    std::fs::write(&no_column, "a,b\n1,2\n").unwrap();
    let (csv, empty, no_column) = (
        csv.to_str().unwrap(),
        empty.to_str().unwrap(),
        no_column.to_str().unwrap(),
    );
    let cases: [(&[&str], String); 4] = [
        (&["--generated", empty], format!("{empty}: no SMILES in it")),
        (
            &["--generated", csv, "--train", empty],
            format!("{empty}: no valid SMILES in the training set"),
        ),
        (
            &["--generated", csv, "--reference", empty],
            format!("{empty}: no valid SMILES in the reference set"),
        ),
        (
            &["--generated", no_column],
            format!("{no_column}: no `smiles` column (the header has: a, b)"),
        ),
    ];
    for (args, expected) in cases {
        let out = metrics(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(&expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn chem_prepare_saves_the_sets_that_metrics_would_compute_and_metrics_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (train, reference) = ("fixtures/data/train.csv", "fixtures/data/test.csv");
    let generated = path("gen.txt");
    std::fs::write(
        &generated,
        "CCO\nc1ccccc1\nO=C(C1CCCCC1)N1CC(=O)N2CCCc3ccccc3C2C1\nC1CC\n",
    )
    .unwrap();
    let metrics = |args: &[&str]| {
        let mut all = vec![
            "chem",
            "metrics",
            "--format",
            "json",
            "--generated",
            &generated,
        ];
        all.extend_from_slice(args);
        xtask(&all)
    };
    let computed = metrics(&["--train", train, "--reference", reference]);
    assert_eq!(
        computed.status.code(),
        Some(0),
        "{}",
        text(&computed.stderr)
    );
    // Compressed or not (by the name), read back by content.
    for name in ["moses.sets.gz", "moses.sets"] {
        let sets = path(name);
        let out = xtask(&[
            "chem",
            "prepare",
            "--train",
            train,
            "--reference",
            reference,
            "-o",
            &sets,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&format!(
                "wrote {sets} (20000 distinct training molecules, 2000 reference molecules;"
            )),
            "{}",
            text(&out.stderr)
        );
        let bytes = std::fs::read(&sets).unwrap();
        assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), name.ends_with(".gz"));
        // As readable as any new file (tempfile's own mode is 0600).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let plain = path("plain");
            std::fs::File::create(&plain).unwrap();
            let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&sets), mode(&plain));
        }
        let from_file = metrics(&["--prepared", &sets]);
        assert_eq!(
            from_file.status.code(),
            Some(0),
            "{}",
            text(&from_file.stderr)
        );
        assert_eq!(text(&from_file.stdout), text(&computed.stdout));
    }

    // Only a reference: novelty is left out, as without --train.
    let sets = path("reference-only.sets");
    let out = xtask(&["chem", "prepare", "--reference", reference, "-o", &sets]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&metrics(&["--prepared", &sets]).stdout).unwrap();
    assert!(m["novelty"].is_null() && m["snn"].is_number(), "{m}");

    // Mistakes get the fix.
    let sets = path("moses.sets.gz");
    fn scoring<'a>(generated: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        [&["chem", "metrics", "--generated", generated], rest].concat()
    }
    let cases: [(Vec<&str>, String); 5] = [
        (
            scoring(&generated, &["--reference", &sets]),
            format!("{sets} holds prepared sets from `chem prepare`, not SMILES: pass it as `--prepared {sets}`"),
        ),
        (
            scoring(&generated, &["--prepared", train]),
            format!("{train}: not a prepared-sets file (its first line is not the header `cargo xtask chem prepare` writes); make one with `cargo xtask chem prepare --train T --reference R -o FILE`"),
        ),
        (
            scoring(&generated, &["--prepared", &sets, "--train", train]),
            "the argument '--prepared <FILE>' cannot be used with '--train <TRAIN>'".to_owned(),
        ),
        (
            vec!["chem", "prepare", "-o", &sets],
            "the following required arguments were not provided:\n  <--train <TRAIN>|--reference <REFERENCE>>".to_owned(),
        ),
        (
            vec!["chem", "prepare", "--train", train, "-o", dir.path().to_str().unwrap()],
            format!("it is a folder; give a file, such as {}", path("moses.sets.gz")),
        ),
    ];
    for (args, expected) in cases {
        let out = xtask(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text(&out.stderr).contains(&expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    // A file cut short is an error, never a smaller set.
    let whole = std::fs::read(path("moses.sets")).unwrap();
    let cut = path("cut.sets");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = metrics(&["--prepared", &cut]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "{cut}: damaged body: it ends too soon (a file cut short?); make it again with `cargo xtask chem prepare`"
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ctrl_c_and_sigterm_end_a_command_while_substructures_are_matched() {
    // cosmolkit installs its own SIGINT handler around every substructure match (as RDKit does);
    // with matches on several threads its handler stayed, and a Ctrl-C only cut the running
    // matches short: `chem metrics` went on and printed metrics from incomplete matches.
    let dir = tempfile::tempdir().unwrap();
    let generated = many_smiles(dir.path());
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["chem", "metrics", "--generated"])
            .arg(&generated)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        send(signal, &child);
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(code),
            "SIG{signal}: {stdout}{stderr}"
        );
        assert!(stdout.is_empty(), "{stdout}");
        assert!(!stderr.contains("interrupted"), "{stderr}");
    }
}

/// The fixture's 60,000 SMILES three times over, in `dir`: minutes of work on two cores, so a
/// command on them is still running when a signal comes.
fn many_smiles(dir: &Path) -> PathBuf {
    let train = std::fs::read_to_string(root().join("fixtures/data/train.csv")).unwrap();
    let smiles: Vec<&str> = train.lines().skip(1).collect();
    let path = dir.join("generated.txt");
    std::fs::write(
        &path,
        [smiles.join("\n"), "\n".to_owned()].concat().repeat(3),
    )
    .unwrap();
    path
}

#[test]
fn a_stopped_command_leaves_no_temporary_file_behind() {
    // `prepare -o` makes its temporary file beside the output before minutes of work; a process
    // that a signal ends runs no destructors, so xtask removes it itself before it exits.
    let dir = tempfile::tempdir().unwrap();
    let reference = many_smiles(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["chem", "prepare", "--reference"])
            .arg(&reference)
            .arg("-o")
            .arg(out.join("sets.gz"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let made = wait_for(60, || std::fs::read_dir(&out).unwrap().next().is_some());
        assert!(made, "no temporary file in {}", out.display());
        send(signal, &child);
        let done = child.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(code), "{}", text(&done.stderr));
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "SIG{signal} left {left:?}");
    }
}

/// Whether `ready` turned true within `seconds`, asked every 20 ms.
fn wait_for(seconds: u64, mut ready: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(seconds) {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// `xtask test` with a fake `cargo` (through `$CARGO`, as cargo sets it) that writes its pid to
/// `pid` and sleeps, ignoring SIGINT and SIGTERM when `stubborn`; started in its own process
/// group, as a terminal starts a command. Returns xtask and the fake cargo's pid.
fn xtask_waiting_for_a_child(dir: &Path, stubborn: bool) -> (std::process::Child, u32) {
    use std::os::unix::process::CommandExt;
    let pid = dir.join(format!("pid-{stubborn}"));
    let _ = std::fs::remove_file(&pid);
    let cargo = dir.join(format!("cargo-{stubborn}"));
    let ignore = if stubborn { "trap '' INT TERM\n" } else { "" };
    let script = format!(
        "#!/bin/sh\n{ignore}echo $$ > {}.tmp && mv {}.tmp {}\nexec sleep 60\n",
        pid.display(),
        pid.display(),
        pid.display()
    );
    write_executable(&cargo, &script);
    let xtask = start_with_fake_cargo(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("test")
            .process_group(0)
            .stdout(std::process::Stdio::null()),
        &cargo,
        &pid,
    );
    let child = std::fs::read_to_string(&pid)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (xtask, child)
}

/// Starts `command` (an xtask that runs cargo, directly or under another program) with the fake
/// `cargo` as `$CARGO` and stderr piped, once the fake has written its pid to `pid`.
fn start_with_fake_cargo(command: &mut Command, cargo: &Path, pid: &Path) -> std::process::Child {
    let child = command
        .env("CARGO", cargo)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(60, || pid.exists()),
        "the fake cargo did not start"
    );
    child
}

/// A script at `path` that may be run: a fake `cargo`.
fn write_executable(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn running(pid: u32) -> bool {
    // A zombie has ended: its status line says so.
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains("zombie"))
    })
}

/// xtask's exit status, within 30 seconds.
fn ended_within_30_s(mut xtask: std::process::Child) -> Option<i32> {
    if !wait_for(30, || xtask.try_wait().unwrap().is_some()) {
        let _ = xtask.kill();
        panic!("xtask did not end");
    }
    xtask.wait().unwrap().code()
}

/// A fake `cargo` (see [`xtask_waiting_for_a_child`]) that counts the SIGINTs it gets: from
/// the first, it waits a second for more, writes their number to `count` and exits.
const COUNTING_CARGO: &str = r#"#!/usr/bin/env python3
import os, signal, sys, time
pid, count = sys.argv[0] + ".pid", sys.argv[0] + ".count"
r, w = os.pipe()
os.set_blocking(w, False)
signal.signal(signal.SIGINT, lambda *_: None)
signal.set_wakeup_fd(w)  # one byte per signal delivered, whatever Python makes of them
with open(pid + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pid + ".tmp", pid)
got = os.read(r, 1)
time.sleep(1)
os.set_blocking(r, False)
try:
    got += os.read(r, 100)
except BlockingIOError:
    pass
with open(count + ".tmp", "w") as f:
    f.write(str(len(got)))
os.rename(count + ".tmp", count)
"#;

#[test]
fn ctrl_c_at_a_terminal_reaches_the_child_once() {
    // A terminal sends Ctrl-C to the whole foreground process group, child included: xtask must
    // not pass it on a second time (Python would raise KeyboardInterrupt twice, and a second
    // Ctrl-C means "quit at once" to a training run).
    let dir = tempfile::tempdir().unwrap();
    let cargo = dir.path().join("cargo");
    write_executable(&cargo, COUNTING_CARGO);
    let (pid, count) = (dir.path().join("cargo.pid"), dir.path().join("cargo.count"));
    // `script` runs xtask on a pseudo-terminal and passes our input on to it: a ^C byte there
    // is a Ctrl-C typed at a terminal.
    let mut terminal = start_with_fake_cargo(
        Command::new("script")
            .args([
                "-qefc",
                &format!("{} test", env!("CARGO_BIN_EXE_xtask")),
                "/dev/null",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped()),
        &cargo,
        &pid,
    );
    terminal.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    assert!(
        wait_for(60, || count.exists()),
        "the fake cargo got no SIGINT"
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "1");
    drop(terminal.stdin.take());
    let out = terminal.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stdout));
}

#[test]
fn a_stop_signal_ends_the_child_xtask_waits_for_before_xtask() {
    // SIGTERM to xtask alone (`kill`, `docker stop`) is passed on to its child, which used to
    // outlive it. Ctrl-C at a terminal reaches the whole process group, child included.
    let dir = tempfile::tempdir().unwrap();
    for (signal, code, to_the_group) in [
        ("TERM", 143, false),
        ("INT", 130, true),
        ("INT", 130, false),
    ] {
        let (xtask, child) = xtask_waiting_for_a_child(dir.path(), false);
        let target = if to_the_group {
            format!("-{}", xtask.id())
        } else {
            xtask.id().to_string()
        };
        send_to(signal, &target);
        assert_eq!(
            ended_within_30_s(xtask),
            Some(code),
            "SIG{signal} to {target}"
        );
        assert!(
            !running(child),
            "SIG{signal} to {target}: the child outlived xtask"
        );
    }
    // A child that ignores the signal: xtask waits for it; a second signal kills it.
    let (xtask, child) = xtask_waiting_for_a_child(dir.path(), true);
    let mut xtask = xtask;
    send("TERM", &xtask);
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        xtask.try_wait().unwrap().is_none(),
        "xtask did not wait for its child"
    );
    assert!(running(child));
    send("TERM", &xtask);
    assert_eq!(ended_within_30_s(xtask), Some(143));
    assert!(!running(child), "the child outlived xtask");
}

#[test]
fn sigterm_stops_training_as_ctrl_c_does() {
    // A batch scheduler (or `docker stop`) sends SIGTERM before it kills: the run saves and can
    // be resumed, instead of losing its current epoch.
    let dir = tempfile::tempdir().unwrap();
    stop_training_with("TERM", "stopping (SIGTERM):", dir.path());
}
