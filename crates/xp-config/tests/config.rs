//! Behaviour of loading, overriding and saving configs, on real files.

use std::path::{Path, PathBuf};

use xp_config::{ConfigError, Device, ExperimentConfig, Location, ModelType, create_config};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn default_config_path() -> PathBuf {
    root().join("fixtures/configs/default.toml")
}

fn no_overrides() -> &'static [&'static str] {
    &[]
}

/// A valid config file in `dir`, with comments, pointing at the bundled data.
fn write_commented(dir: &Path) -> PathBuf {
    let data = root().join("fixtures/data");
    let text = format!(
        "# My experiment\nname = \"commented\" # the run name\n\n[model]\n# the family\nmodel_type = \"vae\"\nhidden_dim = 128  # small\n\n[training]\nepochs = 3\nbatch_size = 16 # fits in memory\n\n[data]\ntrain_path = \"{}\"\nval_path = \"{}\"\n",
        data.join("train.csv").display(),
        data.join("val.csv").display()
    );
    let path = dir.join("exp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bundled_default_loads_with_the_documented_defaults() {
    let config = ExperimentConfig::load(default_config_path()).unwrap();
    assert_eq!(config.seed, 42);
    assert_eq!(config.device, Device::Auto);
    assert_eq!(config.output_dir, "results");
    assert_eq!(config.model.model_type, ModelType::Autoregressive);
    assert_eq!(config.model.hidden_dim, 128);
    assert_eq!(config.model.latent_dim, 64);
    assert_eq!(config.model.num_layers, 2);
    assert_eq!(config.model.dropout, 0.1);
    assert_eq!(config.training.epochs, 2);
    assert_eq!(config.training.batch_size, 64);
    assert_eq!(config.training.learning_rate, 1e-2);
    assert_eq!(config.training.weight_decay, 1e-5);
    assert_eq!(config.training.gradient_clip, 1.0);
    assert_eq!(config.training.patience, 5);
    assert_eq!(config.training.warmup_steps, 300);
    assert_eq!(config.data.smiles_column, "smiles");
    assert_eq!(config.data.max_length, 200);
    assert_eq!(config.data.num_workers, 4);
    assert_eq!(config.model.kl_weight, 0.0014);
    assert_eq!(config.model.kl_anneal_steps, 500);
    assert_eq!(config.training.sample_size, 512);
    assert_eq!(config.training.temperature, 1.0);
    assert_eq!(config.training.keep_top_k, 3);
    assert_eq!(
        config.data.test_path,
        Some(root().join("fixtures/data/test.csv"))
    );
    assert_eq!(
        config.data.train_path,
        root().join("fixtures/data/train.csv")
    );
    // With no file, create_config gives the same config.
    assert_eq!(create_config(None, no_overrides()).unwrap(), config);
}

#[test]
fn relative_paths_resolve_against_the_config_folder_not_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/t.csv"), "smiles\nC\n").unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "name = \"r\"\n[model]\nmodel_type = \"vae\"\n[data]\ntrain_path = \"data/t.csv\"\nval_path = \"./data/../data/t.csv\"\n",
    )
    .unwrap();
    let config = ExperimentConfig::load(&path).unwrap();
    let expected = dir.path().canonicalize().unwrap().join("data/t.csv");
    assert_eq!(config.data.train_path.canonicalize().unwrap(), expected);
    assert_eq!(config.data.val_path, config.data.train_path);
    assert!(config.data.train_path.is_absolute());
}

#[test]
fn a_name_that_cannot_name_a_run_directory_is_refused() {
    let long = "x".repeat(201);
    for (name, problem) in [
        ("../elsewhere", "must not start with `.`"),
        (".hidden", "must not start with `.`"),
        ("a/b", "must not contain `/` or `\\`"),
        ("a\\b", "must not contain `/` or `\\`"),
        ("a\tb", "must not contain control characters"),
        (long.as_str(), "must be at most 200 bytes long, got 201"),
    ] {
        let set = format!("name={}", serde_json::to_string(name).unwrap());
        let err = create_config(None, &[set.as_str()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("name: {problem}")), "{name:?}: {err}");
    }
    for fine in ["moses charrnn", "ÉTUDE-1", "a.b", "x".repeat(200).as_str()] {
        let set = format!("name={}", serde_json::to_string(fine).unwrap());
        create_config(None, &[set.as_str()]).unwrap();
    }
    // A run made before the rule still reads back, to be sampled or listed.
    let saved = create_config(None, no_overrides())
        .unwrap()
        .to_toml_string()
        .replace("name = \"moses_charrnn\"", "name = \"exp/variant\"");
    let config = xp_config::from_saved_toml(&saved, "config.toml", &root()).unwrap();
    assert_eq!(config.name, "exp/variant");
    let err = xp_config::from_toml_str(&saved, "config.toml", &root()).unwrap_err();
    assert!(err.to_string().contains("must not contain `/`"), "{err}");
}

#[test]
fn every_problem_is_reported_at_once_with_its_line() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad/16_mixed_problems.toml");
    let err = ExperimentConfig::load(&path).unwrap_err();
    let found: Vec<(&str, usize)> = err
        .violations()
        .iter()
        .map(|v| match &v.location {
            Some(Location::File { line, .. }) => (v.path.as_str(), *line),
            other => panic!("{} has no file location: {other:?}", v.path),
        })
        .collect();
    assert_eq!(
        found,
        [
            ("device", 3),
            ("model.hidden_dim", 6),
            ("model.dropot", 7),
            ("training.batch_size", 9),
            ("data.train_path", 11),
        ]
    );
}

#[test]
fn save_keeps_comments_and_order_and_changes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_commented(dir.path());
    let original = std::fs::read_to_string(&path).unwrap();
    let mut config = ExperimentConfig::load(&path).unwrap();
    config.training.batch_size = 64;
    config.model.hidden_dim = 512;
    config.save(&path).unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    let changed: Vec<(&str, &str)> = original
        .lines()
        .zip(saved.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        [
            ("hidden_dim = 128  # small", "hidden_dim = 512  # small"),
            (
                "batch_size = 16 # fits in memory",
                "batch_size = 64 # fits in memory"
            ),
        ]
    );
    assert_eq!(original.lines().count(), saved.lines().count());
    assert_eq!(ExperimentConfig::load(&path).unwrap(), config);
    // Nothing but the config is left in the folder: the temporary file was renamed into place.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["exp.toml"]);
}

#[test]
fn unchanged_config_saves_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_commented(dir.path());
    let original = std::fs::read_to_string(&path).unwrap();
    ExperimentConfig::load(&path).unwrap().save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
}

/// A saved config is as readable as any file its user creates (a run's `config.toml` is read by
/// the rest of a team), and replacing a file keeps that file's permissions.
#[cfg(unix)]
#[test]
fn a_saved_config_gets_the_permissions_of_a_plain_new_file_or_keeps_the_replaced_one_s() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let path = dir.path().join("saved.toml");
    let config = create_config(None, no_overrides()).unwrap();
    config.save(&path).unwrap();
    assert_eq!(mode(&path), mode(&plain));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    config.save(&path).unwrap();
    assert_eq!(mode(&path), 0o640);
}

#[test]
fn saving_elsewhere_keeps_relative_data_paths_pointing_at_the_same_files() {
    let saved_dir = tempfile::tempdir().unwrap();
    let config = ExperimentConfig::load(default_config_path()).unwrap();
    let copy = saved_dir.path().join("run/config.toml");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    config.save(&copy).unwrap();
    let text = std::fs::read_to_string(&copy).unwrap();
    assert!(text.starts_with("#:schema"), "comments kept: {text}");
    assert_eq!(ExperimentConfig::load(&copy).unwrap(), config);
}

#[test]
fn overrides_are_typed_by_the_schema() {
    let mut config = create_config(
        None,
        &[
            "training.learning_rate=3e-4",
            "model.model_type=vae",
            "training.epochs=5",
            "name=\"quoted\"",
        ],
    )
    .unwrap();
    assert_eq!(config.training.learning_rate, 3e-4);
    assert_eq!(config.model.model_type, ModelType::Vae);
    assert_eq!(config.training.epochs, 5);
    assert_eq!(config.name, "quoted");
    config.apply_override("device=cuda:1").unwrap();
    assert_eq!(config.device, Device::Cuda(Some(1)));
    config
        .apply_override("training.dropout_rate=1")
        .unwrap_err();
    assert_eq!(
        config.device,
        Device::Cuda(Some(1)),
        "a failed override changes nothing"
    );
}

#[test]
fn bad_overrides_name_the_key_and_the_override() {
    let err = create_config(
        None,
        &[
            "training.epochs=ten",
            "trainig.epochs=1",
            "=3",
            "training..epochs=3",
            ".seed=3",
            "model.hidden_dim=-1",
            "training.batch_size=0",
        ],
    )
    .unwrap_err();
    let messages: Vec<String> = err.violations().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "override `training.epochs=ten`: training.epochs: expected integer, got `ten`",
            "override `trainig.epochs=1`: trainig.epochs: unknown key `trainig`; did you mean `training`?",
            "override `=3`: no key before `=`; an override must look like `key.path=value`",
            "override `training..epochs=3`: training..epochs: a key path with an empty part; \
             write the keys joined by single dots, as `training.epochs`",
            "override `.seed=3`: .seed: a key path with an empty part; write the keys joined by \
             single dots, as `training.epochs`",
            "override `model.hidden_dim=-1`: model.hidden_dim: must be at least 32, got -1",
            "override `training.batch_size=0`: training.batch_size: must be at least 1, got 0",
        ]
    );
}

#[test]
fn an_override_can_supply_a_key_the_file_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let train = root().join("fixtures/data/train.csv");
    std::fs::write(
        &path,
        format!(
            "[model]\nmodel_type = \"gnn\"\n[data]\ntrain_path = \"{0}\"\nval_path = \"{0}\"\n",
            train.display()
        ),
    )
    .unwrap();
    assert_eq!(
        ExperimentConfig::load(&path)
            .unwrap_err()
            .violations()
            .len(),
        1
    );
    let config = create_config(Some(&path), &["name=from-cli"]).unwrap();
    assert_eq!(config.name, "from-cli");
}

#[test]
fn merge_toml_updates_nested_tables_key_by_key() {
    let mut config = create_config(None, no_overrides()).unwrap();
    config
        .merge_toml("[training]\nepochs = 7\n[model]\nnum_layers = 3\ndropout = 0\n")
        .unwrap();
    assert_eq!(config.training.epochs, 7);
    assert_eq!(
        config.training.batch_size, 64,
        "untouched keys keep their value"
    );
    assert_eq!(config.model.num_layers, 3);
    assert_eq!(config.model.dropout, 0.0);
    let err = config.merge_toml("[training]\nepoch = 7\n").unwrap_err();
    assert!(
        err.to_string().contains("did you mean `training.epochs`?"),
        "{err}"
    );
}

#[test]
fn validate_catches_fields_edited_in_code() {
    let mut config = create_config(None, no_overrides()).unwrap();
    config.validate().unwrap();
    config.training.batch_size = 4096;
    config.data.val_path = PathBuf::from("/nonexistent/val.csv");
    let err = config.validate().unwrap_err();
    let paths: Vec<&str> = err.violations().iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["data.val_path", "training.batch_size"]);
}

#[test]
fn device_strings() {
    for (text, device) in [
        ("auto", Device::Auto),
        ("cpu", Device::Cpu),
        ("cuda", Device::Cuda(None)),
        ("cuda:0", Device::Cuda(Some(0))),
        ("cuda:12", Device::Cuda(Some(12))),
    ] {
        assert_eq!(text.parse::<Device>().unwrap(), device);
        assert_eq!(device.to_string(), text);
    }
    for bad in [
        "", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:1:2", "cuda: 1", "cpu ",
    ] {
        let err = bad.parse::<Device>().unwrap_err();
        assert!(err.contains("auto, cpu, cuda, cuda:N"), "{bad:?}: {err}");
    }
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() {
    let err = ExperimentConfig::load("/nonexistent/exp.toml").unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/exp.toml"), "{err}");
}

#[test]
fn a_folder_is_not_a_config_and_a_run_folder_points_at_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let err = ExperimentConfig::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, ConfigError::Folder { inside: None, .. }),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("is a folder, not a config file"),
        "{err}"
    );
    // A run directory holds the config it ran with.
    let inside = dir.path().join("config.toml");
    std::fs::write(&inside, "").unwrap();
    let err = ExperimentConfig::load(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with(&format!("; did you mean {}?", inside.display())),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_utf8_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    // A comment saved as Latin-1: `é` is the single byte 0xE9.
    std::fs::write(&path, b"name = \"x\"\n# r\xe9sum\xe9\n").unwrap();
    let err = ExperimentConfig::load(&path).unwrap_err();
    match &err {
        ConfigError::Syntax { line, column, .. } => assert_eq!((*line, *column), (2, 4)),
        other => panic!("expected a position, got {other}"),
    }
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{}:2:4: ", path.display())) && shown.contains("UTF-8"),
        "{shown}"
    );
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = xp_config::from_toml_str("name = \"x\"\n\n[model\n", "inline.toml", Path::new("."))
        .unwrap_err();
    match err {
        ConfigError::Syntax { line, column, .. } => assert_eq!((line, column), (3, 7)),
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn a_saved_config_whose_data_moved_still_loads_but_other_rules_hold() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name = \"old\"\n[model]\nmodel_type = \"vae\"\nhidden_dim = 64\n[data]\ntrain_path = \"gone/train.csv\"\nval_path = \"gone/val.csv\"\ntest_path = \"gone/test.csv\"\n";
    // As a user's config, the missing files are errors, one per key.
    let err = xp_config::from_toml_str(text, "saved.toml", dir.path()).unwrap_err();
    let paths: Vec<&str> = match &err {
        ConfigError::Invalid(v) => v.iter().map(|v| v.path.as_str()).collect(),
        other => panic!("expected invalid, got {other}"),
    };
    assert_eq!(
        paths,
        ["data.train_path", "data.val_path", "data.test_path"]
    );
    // As a run's saved config, they are not: the model can be rebuilt from it.
    let config = xp_config::from_saved_toml(text, "saved.toml", dir.path()).unwrap();
    assert_eq!(config.model.hidden_dim, 64);
    assert_eq!(config.data.train_path, dir.path().join("gone/train.csv"));
    // Every other rule still holds.
    let bad = text.replace("hidden_dim = 64", "hidden_dim = 0\nhiden = 1");
    let err = xp_config::from_saved_toml(&bad, "saved.toml", dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("saved.toml:4:"), "{message}");
    assert!(message.contains("model.hidden_dim"), "{message}");
    assert!(message.contains("hiden"), "{message}");
    assert!(!message.contains("train_path"), "{message}");
}
