//! Whole training runs on tiny data: exact resume (4 epochs == 2 + 2, an interrupted epoch
//! resumed mid-way, a process killed at a random moment), what a run leaves behind, and clear
//! errors for bad data and devices.

use std::path::{Path, PathBuf};

use xp_ckpt::Checkpoint;
use xp_config::{DiffusionOrder, ExperimentConfig, create_config};
use xp_train::{
    Finish, GenerateOptions, MODEL_FILE, Pick, SAMPLE_BATCH, TrainError, TrainOptions,
    TrainOutcome, generate, train,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/data")
}

/// The first `n` data rows of a fixture file, written into `dir`.
fn head(file: &str, n: usize, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let out = dir.join(file);
    let lines: Vec<&str> = text.lines().take(n + 1).collect();
    std::fs::write(&out, lines.join("\n") + "\n").unwrap();
    out
}

/// Three steps an epoch, each batch of 64 in two slices of 32 on the CPU (one per thread).
fn tiny_config(dir: &Path, model: &str, extra: &[&str]) -> ExperimentConfig {
    let train = head("train.csv", 192, dir);
    let val = head("val.csv", 24, dir);
    let mut sets = vec![
        format!("model.model_type={model}"),
        format!("data.train_path={}", train.display()),
        format!("data.val_path={}", val.display()),
        format!("output_dir={}", dir.join("results").display()),
        "device=cpu".to_owned(),
        "model.hidden_dim=32".to_owned(),
        "model.latent_dim=8".to_owned(),
        "model.num_layers=2".to_owned(),
        "model.dropout=0.2".to_owned(),
        "training.batch_size=64".to_owned(),
        "training.warmup_steps=3".to_owned(),
        "training.sample_size=16".to_owned(),
        "data.max_length=60".to_owned(),
        "data.num_workers=2".to_owned(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let mut config = create_config(None, &sets).unwrap();
    config.data.test_path = None;
    config
}

fn last_weights(outcome: &TrainOutcome) -> Vec<u8> {
    let path = outcome.last_checkpoint.as_ref().expect("a last checkpoint");
    Checkpoint::load(path)
        .unwrap()
        .payload(MODEL_FILE)
        .unwrap()
        .to_vec()
}

/// The SMILES a finished run wrote to its `samples.txt`.
fn samples_file(run_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join("samples.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn quiet() -> TrainOptions {
    TrainOptions::default()
}

/// Options that go on from the last checkpoint of `run_dir`.
fn resuming(run_dir: &Path) -> TrainOptions {
    TrainOptions {
        resume: Some(run_dir.to_path_buf()),
        ..quiet()
    }
}

#[test]
fn four_epochs_equal_two_then_two_more_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let straight = train(
        &tiny_config(dir.path(), "autoregressive", &["training.epochs=4"]),
        &quiet(),
    )
    .unwrap();
    assert_eq!(straight.finish, Finish::Completed);
    assert_eq!((straight.epochs_completed, straight.global_step), (4, 12));

    let first = train(
        &tiny_config(dir.path(), "autoregressive", &["training.epochs=2"]),
        &quiet(),
    )
    .unwrap();
    assert_eq!(first.epochs_completed, 2);
    let mut more = ExperimentConfig::load(first.run_dir.join("config.toml")).unwrap();
    more.apply_override("training.epochs=4").unwrap();
    let resumed = train(&more, &resuming(&first.run_dir)).unwrap();
    assert_eq!(resumed.run_dir, first.run_dir);
    assert_eq!((resumed.epochs_completed, resumed.global_step), (4, 12));
    assert!(
        last_weights(&straight) == last_weights(&resumed),
        "the resumed run must end with bit-identical weights"
    );
    assert_eq!(straight.best_val_loss, resumed.best_val_loss);
    // Both finishes have an hparams row, each in its own sub-run (TensorBoard shows the first
    // hparams of a folder).
    let rows: Vec<bool> = ["hparams", "hparams-2", "hparams-3"]
        .iter()
        .map(|sub| first.run_dir.join(sub).is_dir())
        .collect();
    assert_eq!(rows, [true, true, false]);
    // A different seed trains differently (the comparison above can fail).
    let other = train(
        &tiny_config(
            dir.path(),
            "autoregressive",
            &["training.epochs=1", "seed=7"],
        ),
        &quiet(),
    )
    .unwrap();
    let same = train(
        &tiny_config(dir.path(), "autoregressive", &["training.epochs=1"]),
        &quiet(),
    )
    .unwrap();
    assert_ne!(last_weights(&other), last_weights(&same));
}

#[test]
fn an_interrupted_vae_run_resumes_mid_epoch_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "vae", &["training.epochs=2"]);
    let straight = train(&config, &quiet()).unwrap();

    let stopped = train(
        &config,
        &TrainOptions {
            stop_at_step: Some(4),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(stopped.finish, Finish::Interrupted);
    assert_eq!(stopped.global_step, 4);
    assert!(stopped.metrics.is_none() && stopped.results_file.is_none());
    let resumed = train(&config, &resuming(&stopped.run_dir)).unwrap();
    assert_eq!(resumed.finish, Finish::Completed);
    assert!(last_weights(&straight) == last_weights(&resumed));
    assert_eq!(straight.best_val_loss, resumed.best_val_loss);

    // Nothing left to do: a clear error, not a silent rerun.
    let err = train(&config, &resuming(&resumed.run_dir)).unwrap_err();
    assert!(err.to_string().contains("raise training.epochs"), "{err}");

    // The VAE's draws (latent codes included) repeat from its checkpoint alone.
    let drawn = generate(&resumed.run_dir, &GenerateOptions::default(), |_| {}).unwrap();
    assert_eq!(drawn.smiles, samples_file(&resumed.run_dir));

    // Batches drawn side by side (one per core) give every time what each gives alone.
    let count = |n| GenerateOptions {
        count: Some(n),
        ..Default::default()
    };
    let many = generate(&resumed.run_dir, &count(2 * SAMPLE_BATCH + 5), |_| {}).unwrap();
    assert_eq!(many.smiles.len(), 2 * SAMPLE_BATCH + 5);
    let again = generate(&resumed.run_dir, &count(2 * SAMPLE_BATCH + 5), |_| {}).unwrap();
    assert!(many.smiles == again.smiles);
    let first = generate(&resumed.run_dir, &count(SAMPLE_BATCH), |_| {}).unwrap();
    assert!(many.smiles[..SAMPLE_BATCH] == first.smiles[..]);
    assert!(many.smiles[..SAMPLE_BATCH] != many.smiles[SAMPLE_BATCH..2 * SAMPLE_BATCH]);
}

#[test]
fn a_run_leaves_logs_checkpoints_samples_and_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(
        dir.path(),
        "autoregressive",
        &["training.epochs=2", "training.keep_top_k=1"],
    );
    let outcome = train(&config, &quiet()).unwrap();
    let run = &outcome.run_dir;
    assert!(run.join("config.toml").is_file());
    assert!(run.join("samples.txt").is_file());
    let events = std::fs::read_dir(run)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents")
        })
        .count();
    assert_eq!(events, 1);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    for tag in [
        "train/loss",
        "train/learning_rate",
        "train/grad_norm",
        "val/loss",
        "samples/validity",
        "perf/tokens_per_second",
    ] {
        assert!(
            metrics.contains(&format!("\"tag\":\"{tag}\"")),
            "{tag} missing"
        );
    }
    // Weights as safetensors, with the names a PyTorch user will see.
    let best = outcome.best_checkpoint.clone().unwrap();
    let weights = Checkpoint::load(&best).unwrap();
    let bytes = weights.payload(MODEL_FILE).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(
        header["lstm.layers.0.weight_ih"]["shape"],
        serde_json::json!([128, 32])
    );
    assert_eq!(header["lstm.layers.1.weight_hh"]["dtype"], "F32");
    // Linear weights in PyTorch's [out, in] layout.
    let vocab = header["embedding.weight"]["shape"][0].as_u64().unwrap();
    assert_eq!(
        header["head.weight"]["shape"],
        serde_json::json!([vocab, 32])
    );
    // Top-1 plus the last.
    let kept = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("epoch")
        })
        .count();
    assert!((1..=2).contains(&kept), "{kept} checkpoints kept");
    // One result, with the generation metrics and the artifacts.
    let results = std::fs::read_to_string(outcome.results_file.unwrap()).unwrap();
    assert_eq!(results.lines().count(), 1);
    let record: serde_json::Value = serde_json::from_str(results.trim()).unwrap();
    assert_eq!(record["experiment_name"], config.name);
    assert!(record["metrics"]["best_val_loss"].as_f64().unwrap() > 0.0);
    // Validity and the shares of each kind of mistake account for every sample.
    let metrics = record["metrics"].as_object().unwrap();
    let invalid: Vec<f64> = metrics
        .iter()
        .filter(|(k, _)| k.starts_with("invalid_"))
        .map(|(_, v)| v.as_f64().unwrap())
        .collect();
    assert_eq!(invalid.len(), xp_chem::InvalidKind::ALL.len());
    let validity = metrics["validity"].as_f64().unwrap();
    assert!((validity + invalid.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(
        record["artifacts"]["best_checkpoint"],
        best.display().to_string()
    );
    assert_eq!(record["config"]["model"]["hidden_dim"], 32);
}

#[test]
fn bad_data_is_reported_with_file_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(dir.path(), "autoregressive", &["training.epochs=1"]);

    // Invalid, too-long and unreadable (not UTF-8) rows are skipped and counted, with line
    // numbers; bytes that are not UTF-8 in another column do no harm; the column name matches
    // whatever its case.
    let messy = dir.path().join("messy.csv");
    let long = "C".repeat(80);
    let mut text =
        format!("id,SMILES\n1,CCO\n2,C1CC\n3,{long}\n4,c1ccccc1\n5,\n6,CC(=O)O\n").into_bytes();
    text.extend_from_slice(b"7,CC\xffO\ncaf\xe9,CCN\n");
    std::fs::write(&messy, text).unwrap();
    let loaded = xp_train::load_smiles(&messy, "smiles", 60, 0).unwrap();
    assert_eq!(loaded.smiles, ["CCO", "c1ccccc1", "CC(=O)O", "CCN"]);
    let report = &loaded.report;
    assert_eq!(
        (report.rows, report.kept, report.invalid, report.too_long),
        (8, 4, 3, 1)
    );
    assert_eq!(report.column, "SMILES");
    let lines: Vec<u64> = report.first_skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, [3, 4, 6, 8]);
    let summary = report.summary();
    assert!(summary.contains("line 4: 81 tokens"), "{summary}");
    assert!(
        summary.contains("line 8: not UTF-8 text (a bad byte at position 3 of the SMILES)"),
        "{summary}"
    );

    let cases: [(&str, &str); 4] = [
        ("", "the file is empty"),
        (
            "name,formula\na,b\n",
            "no column `smiles` (the header has: name, formula)",
        ),
        (
            "smiles\nxyz\nC1CC\n",
            "no usable rows: 2 rows, 0 kept, 2 invalid",
        ),
        ("smiles\nxyz\n", "no usable rows: 1 row, 0 kept"),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, text).unwrap();
        config.data.train_path = path.clone();
        let err = train(&config, &quiet()).unwrap_err();
        assert!(matches!(err, TrainError::Data { .. }), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains(&path.display().to_string()) && shown.contains(expected),
            "{shown}"
        );
        assert_eq!(
            shown.matches(&path.display().to_string()).count(),
            1,
            "the file is named once: {shown}"
        );
    }
}

/// Eight small molecules, trained and validated on, at a learning rate so high that the
/// validation loss stops improving by the third epoch (the CPU run is bit-reproducible).
fn early_stopping_config(dir: &Path, extra: &[&str]) -> ExperimentConfig {
    let data = dir.join("eight.csv");
    std::fs::write(
        &data,
        "smiles\nCCO\nc1ccccc1\nCC(=O)O\nCCN\nCCCC\nC1CC1\nOCC\nCCl\n",
    )
    .unwrap();
    let mut sets = vec![
        format!("data.train_path={}", data.display()),
        format!("data.val_path={}", data.display()),
        format!("output_dir={}", dir.join("results").display()),
        "name=tiny".to_owned(),
        "device=cpu".to_owned(),
        "model.hidden_dim=32".to_owned(),
        "model.num_layers=1".to_owned(),
        "training.batch_size=4".to_owned(),
        "training.sample_size=16".to_owned(),
        "training.warmup_steps=1".to_owned(),
        "training.learning_rate=1.0".to_owned(),
        "training.gradient_clip=0".to_owned(),
        "training.epochs=8".to_owned(),
        "training.patience=1".to_owned(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    let mut config = create_config(None, &sets).unwrap();
    config.data.test_path = None;
    config
}

/// The results log beside `run_dir`, one record a line.
fn records_beside(run_dir: &Path) -> Vec<xp_results::ResultRecord> {
    xp_results::ResultsTracker::open(run_dir.parent().unwrap())
        .query()
        .all()
        .unwrap()
        .value
        .into_iter()
        .map(|entry| entry.record)
        .collect()
}

#[test]
fn a_run_that_stopped_early_goes_on_once_its_patience_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let config = early_stopping_config(dir.path(), &[]);
    let stopped = train(&config, &quiet()).unwrap();
    assert_eq!(stopped.finish, Finish::EarlyStopped);
    assert!(stopped.epochs_completed < 8, "{}", stopped.epochs_completed);
    let records = records_beside(&stopped.run_dir);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].metrics[xp_train::EPOCHS_TRAINED_METRIC],
        stopped.epochs_completed as f64
    );

    // As it stands, there is nothing to do: the error says which setting to raise.
    let err = train(&config, &resuming(&stopped.run_dir)).unwrap_err();
    assert!(
        err.to_string()
            .contains("stopped early after 3 epochs (no better validation loss for 1 epochs); raise training.patience above 1"),
        "{err}"
    );
    // With more patience it trains on from where it stopped, to its configured epochs.
    let mut patient = ExperimentConfig::load(stopped.run_dir.join("config.toml")).unwrap();
    patient.apply_override("training.patience=8").unwrap();
    let more = train(&patient, &resuming(&stopped.run_dir)).unwrap();
    assert_eq!(more.finish, Finish::Completed);
    assert_eq!(more.epochs_completed, 8);
    assert!(more.timing.steps > 0);
    let records = records_beside(&stopped.run_dir);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].metrics[xp_train::EPOCHS_TRAINED_METRIC], 8.0);
}

#[test]
fn a_run_that_failed_before_its_result_was_logged_is_finished_by_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    // The output folder as users often give it, relative to the working directory.
    let mut config = early_stopping_config(dir.path(), &["training.epochs=2"]);
    config.output_dir = "results".to_owned();
    // A folder where the results log belongs: everything but the last append works.
    let results = dir.path().join("results").join(xp_results::LOG_FILE);
    std::fs::create_dir_all(&results).unwrap();
    let err = in_dir(dir.path(), || train(&config, &quiet()).unwrap_err());
    assert!(matches!(err, TrainError::InRun { .. }), "{err}");
    let run_dir = dir
        .path()
        .join(err.run_dir().expect("the error names the run"));
    assert!(
        err.to_string().starts_with("results/tiny_"),
        "the error starts with the run directory: {err}"
    );
    std::fs::remove_dir(&results).unwrap();

    // Resumed from another working directory: the record goes beside the run (not into
    // `elsewhere/results`), and nothing is trained again.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let relative = Path::new("..")
        .join("results")
        .join(run_dir.file_name().unwrap());
    let finished = in_dir(&elsewhere, || {
        let saved = ExperimentConfig::load(relative.join("config.toml")).unwrap();
        train(&saved, &resuming(&relative)).unwrap()
    });
    assert_eq!(finished.finish, Finish::Completed);
    assert_eq!((finished.epochs_completed, finished.timing.steps), (2, 0));
    assert!(finished.metrics.is_some());
    assert!(!elsewhere.join("results").exists());
    let records = records_beside(&run_dir);
    assert_eq!(records.len(), 1);
    assert!(xp_train::is_final_record(&records[0], &run_dir, 2, 2));
    assert!(!xp_train::is_final_record(&records[0], &run_dir, 3, 4));
    assert_eq!(samples_file(&run_dir).len(), 16);
    // The failed process wrote the hparams row before its record: it is not written twice.
    assert!(run_dir.join("hparams").is_dir());
    assert!(!run_dir.join("hparams-2").exists());

    // Once logged, a resume has nothing left to do.
    let err = train(&config, &resuming(&run_dir)).unwrap_err();
    assert!(
        err.to_string()
            .contains("all 2 epochs are done and its result is logged; raise training.epochs"),
        "{err}"
    );
}

/// Runs `f` with `dir` as the working directory. The other tests here use absolute paths only,
/// so they are not disturbed while it runs.
fn in_dir<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    let before = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::env::set_current_dir(before).unwrap();
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Every file under `dir` with its bytes, in path order.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_stop_requested_while_the_data_loads_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "autoregressive", &["training.epochs=1"]);
    let stopped = || TrainOptions {
        stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        ..quiet()
    };
    // A new run: no run directory (before, one was made with a checkpoint of step 0).
    let err = train(&config, &stopped()).unwrap_err();
    assert!(matches!(err, TrainError::Stopped), "{err}");
    let results = dir.path().join("results");
    assert_eq!(std::fs::read_dir(&results).unwrap().count(), 0);

    // A resumed run: left byte for byte as it was.
    let first = train(&config, &quiet()).unwrap();
    let before = files_under(&first.run_dir);
    let mut more = ExperimentConfig::load(first.run_dir.join("config.toml")).unwrap();
    more.apply_override("training.epochs=2").unwrap();
    let options = TrainOptions {
        resume: Some(first.run_dir.clone()),
        ..stopped()
    };
    let err = train(&more, &options).unwrap_err();
    assert!(matches!(err, TrainError::Stopped), "{err}");
    assert!(files_under(&first.run_dir) == before, "the run changed");
    // And it still goes on.
    let resumed = train(&more, &resuming(&first.run_dir)).unwrap();
    assert_eq!(resumed.epochs_completed, 2);
}

#[test]
fn an_output_dir_that_cannot_be_made_fails_before_the_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(dir.path(), "autoregressive", &["training.epochs=1"]);
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    config.output_dir = file.join("results").display().to_string();
    // Data that would fail to load: the output folder's error must come first.
    let unusable = dir.path().join("unusable.csv");
    std::fs::write(&unusable, "smiles\nxyz\n").unwrap();
    config.data.train_path = unusable;
    let err = train(&config, &quiet()).unwrap_err();
    assert!(matches!(err, TrainError::Log(_)), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot create the output folder {}",
            config.output_dir
        )),
        "{err}"
    );
}

#[test]
fn unavailable_devices_and_missing_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    if !cfg!(feature = "cuda") {
        let err = train(&tiny_config(dir.path(), "vae", &["device=cuda"]), &quiet()).unwrap_err();
        assert!(matches!(err, TrainError::Device(_)), "{err}");
        assert!(
            err.to_string().contains("use device = \"auto\" or \"cpu\""),
            "{err}"
        );
    }

    let err = train(&tiny_config(dir.path(), "vae", &[]), &resuming(dir.path())).unwrap_err();
    assert!(err.to_string().contains("no checkpoints/ folder"), "{err}");
}

#[test]
fn a_run_still_training_is_named_as_such_by_resume_and_sample() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // A training process holds its checkpoint folder and has not saved yet.
    let writer = xp_ckpt::CheckpointManager::open(
        run.join("checkpoints"),
        2,
        "val_loss",
        xp_ckpt::Mode::Min,
    )
    .unwrap();
    let config = tiny_config(dir.path(), "autoregressive", &[]);
    let err = train(&config, &resuming(&run)).unwrap_err().to_string();
    assert!(
        err.contains("it is still training in another process"),
        "{err}"
    );
    let err = generate(&run, &GenerateOptions::default(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no checkpoint yet: it is still training"),
        "{err}"
    );

    // Once it has ended without a save, both say so.
    drop(writer);
    let err = train(&config, &resuming(&run)).unwrap_err().to_string();
    assert!(err.contains("stopped before its first save"), "{err}");
    let err = generate(&run, &GenerateOptions::default(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped before its first save"), "{err}");
}

#[test]
fn resuming_with_a_model_of_another_shape_names_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let first = train(
        &tiny_config(dir.path(), "vae", &["training.epochs=1"]),
        &quiet(),
    )
    .unwrap();
    let resume = |model: &str, extra: &[&str]| {
        let mut sets = vec!["training.epochs=2"];
        sets.extend(extra);
        train(
            &tiny_config(dir.path(), model, &sets),
            &resuming(&first.run_dir),
        )
    };
    let err = resume("vae", &["model.hidden_dim=64", "model.latent_dim=16"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot resume {}: a resumed run keeps its model's shape, but model.hidden_dim is 64 here and 32 in the run, model.latent_dim is 16 here and 8 in the run; drop those --set, or start a new run",
            first.run_dir.display()
        )
    );
    let err = resume("autoregressive", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("model.model_type is autoregressive here and vae in the run;"),
        "{err}"
    );
    // Settings that leave the shapes alone may change.
    let more = resume("vae", &["model.dropout=0.0", "model.kl_weight=0.5"]).unwrap();
    assert_eq!(more.epochs_completed, 2);
}

#[test]
fn a_broken_newest_checkpoint_stops_a_resume_and_is_kept_until_restored() {
    let dir = tempfile::tempdir().unwrap();
    let first = train(
        &tiny_config(dir.path(), "autoregressive", &["training.epochs=2"]),
        &quiet(),
    )
    .unwrap();
    let run = &first.run_dir;
    let checkpoints = run.join("checkpoints");
    let (older, newer) = (
        checkpoints.join("epoch0001-step0000003"),
        checkpoints.join("epoch0002-step0000006"),
    );
    let files = [older.join(MODEL_FILE), newer.join(MODEL_FILE)];
    let whole: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let three_epochs = || tiny_config(dir.path(), "autoregressive", &["training.epochs=3"]);
    std::fs::write(&files[1], &whole[1][..100]).unwrap();

    // Twice: the refused resume must not have dropped the broken checkpoint.
    for _ in 0..2 {
        let err = train(&three_epochs(), &resuming(run))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its newest checkpoint fails verification")
                && err.contains("epoch0002-step0000006/model.safetensors")
                && err.contains("go on from epoch0001-step0000003 (epoch 1)"),
            "{err}"
        );
        assert!(newer.is_dir());
    }
    // Sampling passes over it, and says so.
    let drawn = generate(run, &GenerateOptions::default(), |_| {}).unwrap();
    assert_eq!(drawn.checkpoint, older);
    assert!(
        drawn.warnings.iter().any(|w| w.contains("epoch0002")),
        "{:?}",
        drawn.warnings
    );
    // With every checkpoint broken, neither says "no checkpoint yet".
    std::fs::write(&files[0], b"").unwrap();
    let err = generate(run, &GenerateOptions::default(), |_| {}).unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("no checkpoint of it can be used") && err.contains("epoch0001-step0000003"),
        "{err}"
    );
    let err = train(&three_epochs(), &resuming(run))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no checkpoint of it can be used"), "{err}");

    // Restored, the run goes on from its newest checkpoint.
    for (file, bytes) in files.iter().zip(&whole) {
        std::fs::write(file, bytes).unwrap();
    }
    let resumed = train(&three_epochs(), &resuming(run)).unwrap();
    assert_eq!((resumed.epochs_completed, resumed.global_step), (3, 9));
}

const CHILD_ENV: &str = "XP_TRAIN_TEST_CHILD";

/// The killed run: `training.batch_size=2` gives 48 steps an epoch, enough for the logs to reach
/// the files between checkpoints, so a kill mid-epoch leaves events past the last checkpoint.
fn killed_run_config(dir: &Path, epochs: u32) -> ExperimentConfig {
    tiny_config(
        dir,
        "autoregressive",
        &[
            "training.batch_size=2",
            &format!("training.epochs={epochs}"),
        ],
    )
}

/// In a child (this test binary run again): trains until the parent kills it.
#[test]
fn killed_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    train(&killed_run_config(Path::new(&dir), 1000), &quiet()).unwrap();
}

/// (step, tag) of every line of a run's metrics.jsonl, checking each is whole JSON.
fn metric_rows(run_dir: &Path) -> Vec<(i64, String)> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("metrics.jsonl line {line:?}: {e}"));
            (
                row["step"].as_i64().unwrap(),
                row["tag"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_run_killed_at_a_random_moment_resumes_from_its_last_checkpoint_exactly() {
    let dir = tempfile::tempdir().unwrap();
    /// Kills the child however the test ends: it would otherwise train for 1000 epochs.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "killed_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait until two epochs are logged and the third has started reaching the file, then kill it
    // at a random moment within the next half epoch.
    let results = dir.path().join("results");
    let started = std::time::Instant::now();
    let run_dir = loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "the child never finished two epochs"
        );
        assert!(child.0.try_wait().unwrap().is_none(), "the child stopped");
        let run = std::fs::read_dir(&results)
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path());
        if let Some(run) = run
            && let Ok(text) = std::fs::read_to_string(run.join("metrics.jsonl"))
            && text.matches("\"val/loss\"").count() >= 2
            && text[text.rfind("\"val/loss\"").unwrap()..].contains("\"train/loss\"")
        {
            break run;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let epoch_time = started.elapsed() / 2;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let delay = epoch_time.mul_f64((nanos % 1000) as f64 / 2000.0);
    println!(
        "killing {delay:?} after the third epoch's first logs (an epoch takes ~{epoch_time:?})"
    );
    std::thread::sleep(delay);
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    // Every checkpoint listed is whole; the last one is at most an epoch behind.
    let mut config = ExperimentConfig::load(run_dir.join("config.toml")).unwrap();
    let manager = xp_ckpt::CheckpointManager::open(
        run_dir.join("checkpoints"),
        config.training.keep_top_k as usize,
        "val_loss",
        xp_ckpt::Mode::Min,
    )
    .unwrap();
    for entry in manager.checkpoints() {
        Checkpoint::load(&manager.path(entry)).unwrap();
    }
    let last = manager
        .last()
        .expect("a checkpoint after two epochs")
        .clone();
    drop(manager);
    let killed_log = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let logged_epochs = killed_log.matches("\"val/loss\"").count() as u64;
    assert!(
        last.epoch + 1 >= logged_epochs,
        "{last:?} after {logged_epochs} epochs logged"
    );
    let past_checkpoint = killed_log
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).map_or(true, |row| {
                row["step"].as_u64().unwrap() >= last.global_step
            })
        })
        .count();
    println!(
        "the killed session logged {past_checkpoint} lines past its last checkpoint ({last:?})"
    );

    let epochs = last.epoch as u32 + 2;
    config
        .apply_override(&format!("training.epochs={epochs}"))
        .unwrap();
    let resumed = train(&config, &resuming(&run_dir)).unwrap();
    assert_eq!(resumed.finish, Finish::Completed);
    let other = tempfile::tempdir().unwrap();
    let straight = train(&killed_run_config(other.path(), epochs), &quiet()).unwrap();
    assert_eq!(resumed.global_step, straight.global_step);
    assert!(
        last_weights(&straight) == last_weights(&resumed),
        "the resumed run must end with the uninterrupted run's weights"
    );

    // The mirror holds each step of each tag once, as the uninterrupted run's does: what the
    // killed session logged past its checkpoint was dropped, and a torn line too.
    let mut rows = metric_rows(&run_dir);
    let mut expected = metric_rows(&straight.run_dir);
    rows.sort();
    expected.sort();
    assert_eq!(rows, expected);
}

#[test]
fn a_run_is_sampled_again_from_its_checkpoints_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(
        dir.path(),
        "autoregressive",
        &["training.epochs=2", "training.keep_top_k=1"],
    );
    let outcome = train(&config, &quiet()).unwrap();
    let run = &outcome.run_dir;
    let best = outcome.best_checkpoint.clone().unwrap();
    let last = outcome.last_checkpoint.clone().unwrap();
    // The data is gone and a writer holds the checkpoint folder, as when the run trains on.
    std::fs::remove_file(&config.data.train_path).unwrap();
    std::fs::remove_file(&config.data.val_path).unwrap();
    let _writer = xp_ckpt::CheckpointManager::open(
        run.join("checkpoints"),
        1,
        "val_loss",
        xp_ckpt::Mode::Min,
    )
    .unwrap();

    // With the run's settings, the best checkpoint draws the run's final samples again.
    let mut seen = Vec::new();
    let drawn = generate(run, &GenerateOptions::default(), |n| seen.push(n)).unwrap();
    assert_eq!(drawn.checkpoint, best);
    assert_eq!(drawn.smiles, samples_file(run));
    assert_eq!(seen, [16]);
    assert_eq!(drawn.val_loss, outcome.best_val_loss);
    assert_eq!(drawn.config.model.hidden_dim, 32);

    // Counts over one batch come in batches; another seed draws other molecules.
    let options = GenerateOptions {
        count: Some(xp_train::SAMPLE_BATCH + 5),
        seed: Some(7),
        temperature: Some(0.7),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let many = generate(run, &options, |n| seen.push(n)).unwrap();
    assert_eq!(many.smiles.len(), xp_train::SAMPLE_BATCH + 5);
    // One report per batch as it finishes (side by side, the small one may finish first).
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1], xp_train::SAMPLE_BATCH + 5);
    assert!([5, xp_train::SAMPLE_BATCH].contains(&seen[0]), "{seen:?}");
    assert_ne!(&many.smiles[..16], &drawn.smiles[..]);
    assert_eq!(generate(run, &options, |_| {}).unwrap().smiles, many.smiles);

    // The last checkpoint, and one checkpoint named directly.
    let pick_last = GenerateOptions {
        pick: Some(Pick::Last),
        ..Default::default()
    };
    assert_eq!(generate(run, &pick_last, |_| {}).unwrap().checkpoint, last);
    let direct = generate(&best, &GenerateOptions::default(), |_| {}).unwrap();
    assert_eq!(direct.smiles, drawn.smiles);

    // Paths that hold no checkpoint, a pick with nothing to pick from, a bad temperature.
    let err = generate(&best, &pick_last, |_| {}).unwrap_err().to_string();
    assert!(err.contains("it is one checkpoint"), "{err}");
    let err = generate(run.parent().unwrap(), &GenerateOptions::default(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a run directory"), "{err}");
    let err = generate(&run.join("nowhere"), &GenerateOptions::default(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such file or folder"), "{err}");
    let cold = GenerateOptions {
        temperature: Some(0.0),
        ..Default::default()
    };
    let err = generate(run, &cold, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("temperature must be a positive number"),
        "{err}"
    );
    let diffusion_only = [
        GenerateOptions {
            diffusion_steps: Some(4),
            ..Default::default()
        },
        GenerateOptions {
            diffusion_order: Some(DiffusionOrder::Random),
            ..Default::default()
        },
    ];
    for (options, what) in diffusion_only
        .iter()
        .zip(["diffusion steps apply", "a diffusion order applies"])
    {
        let err = generate(run, options, |_| {}).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{what} to diffusion models only; this run's model is autoregressive"
            )),
            "{err}"
        );
    }

    // A damaged checkpoint is named, not used.
    let weights = best.join(MODEL_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    let err = generate(&best, &GenerateOptions::default(), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

/// Trains `config` straight through, then again stopped mid-epoch (at step 4) and resumed; both
/// must end with bit-identical weights and validation loss. Returns the straight run.
fn trains_and_resumes_exactly(config: &ExperimentConfig) -> TrainOutcome {
    let straight = train(config, &quiet()).unwrap();
    assert_eq!(straight.finish, Finish::Completed);
    let loss = straight.best_val_loss.unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    let stopped = train(
        config,
        &TrainOptions {
            stop_at_step: Some(4),
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(stopped.finish, Finish::Interrupted);
    let resumed = train(config, &resuming(&stopped.run_dir)).unwrap();
    assert!(last_weights(&straight) == last_weights(&resumed));
    assert_eq!(straight.best_val_loss, resumed.best_val_loss);
    straight
}

#[test]
fn a_diffusion_run_trains_resumes_exactly_and_samples_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(
        dir.path(),
        "diffusion",
        &["training.epochs=2", "model.diffusion_steps=8"],
    );
    // Resumed mid-epoch to the same weights: every random mask was seeded.
    let straight = trains_and_resumes_exactly(&config);

    // Samples: no special tokens, at most max_length tokens, drawn again from the checkpoint.
    let samples = samples_file(&straight.run_dir);
    assert_eq!(samples.len(), 16);
    let drawn = generate(&straight.run_dir, &GenerateOptions::default(), |_| {}).unwrap();
    assert_eq!(drawn.smiles, samples);
    let fewer_steps = GenerateOptions {
        diffusion_steps: Some(2),
        ..Default::default()
    };
    let quick = generate(&straight.run_dir, &fewer_steps, |_| {}).unwrap();
    assert_eq!(quick.smiles.len(), 16);
    assert_ne!(quick.smiles, samples);
    // The default order draws each length first, so no molecule is empty; MDLM's random order
    // is the other choice.
    assert_eq!(config.model.diffusion_order, DiffusionOrder::Confidence);
    let at_random = GenerateOptions {
        diffusion_order: Some(DiffusionOrder::Random),
        ..Default::default()
    };
    let random = generate(&straight.run_dir, &at_random, |_| {}).unwrap();
    assert_eq!(random.smiles.len(), 16);
    assert_ne!(random.smiles, samples);
    for smiles in samples.iter().chain(&random.smiles) {
        assert!(!smiles.contains('<'), "{smiles}");
        let tokens = xp_chem::tokenize(smiles).unwrap();
        assert!(tokens.len() <= 60, "{smiles}");
    }
    assert!(samples.iter().all(|s| !s.is_empty()), "{samples:?}");

    // A resumed diffusion run keeps its length: data.max_length shapes its weights.
    let mut longer = config.clone();
    longer.data.max_length = 80;
    longer.training.epochs = 3;
    let err = train(&longer, &resuming(&straight.run_dir))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.max_length is 80 here and 60 in the run"),
        "{err}"
    );
}

#[test]
fn a_gnn_run_trains_resumes_exactly_and_samples_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_config(dir.path(), "gnn", &["training.epochs=2"]);
    // Resumed mid-epoch to the same weights: every graph batch and reparameterisation draw was
    // restored.
    let straight = trains_and_resumes_exactly(&config);

    // The checkpoint holds the graph encoder beside the decoder it shares with `vae`.
    let best = Checkpoint::load(straight.last_checkpoint.as_ref().unwrap()).unwrap();
    let weights = best.payload(MODEL_FILE).unwrap();
    let text = String::from_utf8_lossy(&weights[..weights.len().min(8192)]);
    for name in [
        "graph_layers.1.messages.weight",
        "atom_embedding.weight",
        "decoder.layers.0.weight_ih",
    ] {
        assert!(text.contains(name), "{name} not in the safetensors header");
    }

    let samples = samples_file(&straight.run_dir);
    assert_eq!(samples.len(), 16);
    let drawn = generate(&straight.run_dir, &GenerateOptions::default(), |_| {}).unwrap();
    assert_eq!(drawn.smiles, samples);

    // A resumed run keeps its latent size, as a `vae`'s does.
    let mut wider = config.clone();
    wider.model.latent_dim = 16;
    wider.training.epochs = 3;
    let err = train(&wider, &resuming(&straight.run_dir))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.latent_dim is 16 here and 8 in the run"),
        "{err}"
    );
}

#[test]
fn a_vae_reconstructs_the_molecules_it_learned_through_their_codes() {
    // Four molecules learned without a KL term: each decodes from its own code back to itself.
    // A decoder that ignored the code would write one molecule for all four (at most 25%).
    let dir = tempfile::tempdir().unwrap();
    // (tiny_config writes its own train.csv into the folder it is given.)
    let elsewhere = tempfile::tempdir().unwrap();
    let four = head("train.csv", 4, elsewhere.path());
    for model in ["vae", "gnn"] {
        let config = tiny_config(
            dir.path(),
            model,
            &[
                &format!("data.train_path={}", four.display()),
                &format!("data.val_path={}", four.display()),
                "model.kl_weight=0",
                "model.num_layers=1",
                "model.hidden_dim=64",
                "model.dropout=0",
                "training.batch_size=4",
                "training.learning_rate=0.03",
                "training.epochs=120",
                "training.patience=1000",
            ],
        );
        let outcome = train(&config, &quiet()).unwrap();
        let results = std::fs::read_to_string(outcome.results_file.unwrap()).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(results.lines().last().unwrap()).unwrap();
        let reconstruction = last["metrics"]["reconstruction"].as_f64().unwrap();
        assert!(reconstruction >= 0.75, "{model}: {reconstruction}");
    }
    // A model without an encoder reports none.
    let config = tiny_config(dir.path(), "autoregressive", &["training.epochs=1"]);
    let outcome = train(&config, &quiet()).unwrap();
    let results = std::fs::read_to_string(outcome.results_file.unwrap()).unwrap();
    assert!(!results.lines().last().unwrap().contains("reconstruction"));
}
