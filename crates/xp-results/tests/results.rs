//! The results log on real files.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use xp_results::{Mode, ResultRecord, ResultsError, ResultsTracker, SkipKind, compare};

fn seed_fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed_results.jsonl"
    ))
}

fn log_three(log: &ResultsTracker) {
    log.log_result("vae-a", &json!({"model": {"model_type": "vae", "hidden_dim": 128}, "training": {"learning_rate": 1e-3}}), [("val_loss", 0.5), ("validity", 0.9)], [("best", "runs/a/best")]).unwrap();
    log.log_result("ar-b", &json!({"model": {"model_type": "autoregressive", "hidden_dim": 256}, "training": {"learning_rate": 1e-4}}), [("val_loss", 0.3)], [("best", "runs/b/best")]).unwrap();
    log.log_result("vae-c", &json!({"model": {"model_type": "vae", "hidden_dim": 256}, "training": {"learning_rate": 3e-4}}), [("val_loss", 0.4), ("validity", 0.95)], Vec::<(&str, &str)>::new()).unwrap();
}

#[test]
fn logged_results_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path().join("nested/results"));
    let config = json!({"model": {"model_type": "vae"}, "seed": 42});
    let written = log
        .log_result(
            "exp",
            &config,
            [("loss", 0.25), ("diverged", f64::NAN)],
            [("ckpt", "/runs/x/best")],
        )
        .unwrap();
    let all = log.query().all().unwrap();
    assert!(all.skipped.is_empty());
    assert_eq!(all.value.len(), 1);
    let read: &ResultRecord = &all.value[0].record;
    assert_eq!(read.experiment_name, "exp");
    assert_eq!(serde_json::Value::Object(read.config.clone()), config);
    assert_eq!(read.metrics["loss"], 0.25);
    assert!(read.metrics["diverged"].is_nan());
    assert_eq!(read.artifacts["ckpt"], "/runs/x/best");
    assert_eq!(read.timestamp, written);
    // RFC 3339 with an offset.
    chrono::DateTime::parse_from_rfc3339(&read.timestamp).unwrap();
}

#[test]
fn best_and_top_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    log_three(&log);
    let q = log.query();
    assert_eq!(
        q.best("val_loss", Mode::Min)
            .unwrap()
            .value
            .unwrap()
            .record
            .experiment_name,
        "ar-b"
    );
    assert_eq!(
        q.best("val_loss", Mode::Max)
            .unwrap()
            .value
            .unwrap()
            .record
            .experiment_name,
        "vae-a"
    );
    let top: Vec<String> = q
        .top("val_loss", Mode::Min, 2)
        .unwrap()
        .value
        .into_iter()
        .map(|e| e.record.experiment_name)
        .collect();
    assert_eq!(top, ["ar-b", "vae-c"]);
    let top_all = q.top("val_loss", Mode::Max, 10).unwrap().value;
    assert_eq!(
        top_all.iter().map(|e| e.line).collect::<Vec<_>>(),
        [1, 3, 2]
    );
    assert!(q.top("val_loss", Mode::Min, 0).unwrap().value.is_empty());
}

#[test]
fn missing_metrics_are_skipped_and_nan_never_wins() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    log_three(&log);
    log.log_result(
        "nan",
        &json!({}),
        [("val_loss", f64::NAN), ("validity", f64::NAN)],
        Vec::<(&str, &str)>::new(),
    )
    .unwrap();
    let q = log.query();
    // ar-b has no validity: not treated as infinitely good in min mode.
    let best = q.best("validity", Mode::Min).unwrap();
    assert_eq!(best.value.unwrap().record.experiment_name, "vae-a");
    assert_eq!((best.without_metric, best.nan_metric), (1, 1));
    let best = q.best("validity", Mode::Max).unwrap();
    assert_eq!(best.value.unwrap().record.experiment_name, "vae-c");
    let none = q.best("no_such_metric", Mode::Min).unwrap();
    assert_eq!(none.value, None);
    assert_eq!(none.without_metric, 4);
}

#[test]
fn ties_go_to_the_earliest_result() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    for name in ["first", "second", "third"] {
        log.log_result(name, &json!({}), [("m", 1.0)], Vec::<(&str, &str)>::new())
            .unwrap();
    }
    for mode in [Mode::Min, Mode::Max] {
        assert_eq!(
            log.query()
                .best("m", mode)
                .unwrap()
                .value
                .unwrap()
                .record
                .experiment_name,
            "first"
        );
    }
}

#[test]
fn filters_on_config_values_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    log_three(&log);
    let names = |q: xp_results::Query| -> Vec<String> {
        q.all()
            .unwrap()
            .value
            .into_iter()
            .map(|e| e.record.experiment_name)
            .collect()
    };
    assert_eq!(
        names(log.query().filter("model.model_type == \"vae\"").unwrap()),
        ["vae-a", "vae-c"]
    );
    assert_eq!(
        names(log.query().filter("model.model_type == vae").unwrap()),
        ["vae-a", "vae-c"]
    );
    assert_eq!(
        names(log.query().filter("model.model_type != vae").unwrap()),
        ["ar-b"]
    );
    assert_eq!(
        names(log.query().filter("training.learning_rate < 1e-3").unwrap()),
        ["ar-b", "vae-c"]
    );
    assert_eq!(
        names(
            log.query()
                .filter("training.learning_rate <= 1e-3")
                .unwrap()
        ),
        ["vae-a", "ar-b", "vae-c"]
    );
    assert_eq!(
        names(
            log.query()
                .filter("model.hidden_dim >= 256")
                .unwrap()
                .filter("training.learning_rate > 1e-4")
                .unwrap()
        ),
        ["vae-c"]
    );
    assert_eq!(
        names(log.query().filter("metrics.validity > 0.92").unwrap()),
        ["vae-c"]
    );
    assert_eq!(
        names(
            log.query()
                .filter("config.model.hidden_dim == 128")
                .unwrap()
        ),
        ["vae-a"]
    );
    assert_eq!(
        names(log.query().filter("no.such.key == 1").unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        names(log.query().experiment("vae-*").unwrap()),
        ["vae-a", "vae-c"]
    );
    let best = log
        .query()
        .experiment("vae-?")
        .unwrap()
        .best("val_loss", Mode::Min)
        .unwrap();
    assert_eq!(best.value.unwrap().record.experiment_name, "vae-c");
}

#[test]
fn a_filter_tells_its_path_operator_and_value() {
    use serde_json::json;
    use xp_results::Filter;
    for (expr, path, op, value) in [
        (
            "model.model_type == vae",
            "model.model_type",
            "==",
            json!("vae"),
        ),
        (
            "config.model.hidden_dim>=256",
            "model.hidden_dim",
            ">=",
            json!(256),
        ),
        (
            "training.learning_rate < 1e-3",
            "training.learning_rate",
            "<",
            json!(1e-3),
        ),
        (
            "metrics.validity <= 0.5",
            "metrics.validity",
            "<=",
            json!(0.5),
        ),
        (
            "model.model_type != \"a b\"",
            "model.model_type",
            "!=",
            json!("a b"),
        ),
        ("seed > 3x", "seed", ">", json!("3x")),
        // Single quotes, as in pandas' `query`: the text inside.
        (
            "model.model_type == 'vae'",
            "model.model_type",
            "==",
            json!("vae"),
        ),
        ("name == ''", "name", "==", json!("")),
        // A lone quote is part of a bare word.
        ("name == it's", "name", "==", json!("it's")),
    ] {
        let filter: Filter = expr.parse().unwrap();
        assert_eq!(
            (filter.path(), filter.operator(), filter.value()),
            (path, op, &value),
            "{expr}"
        );
    }
}

#[test]
fn bad_filters_and_patterns_are_clear_errors() {
    let q = ResultsTracker::open("unused").query();
    for (expr, needle) in [
        ("model.model_type", "expected `PATH OP VALUE`"),
        ("== vae", "key path is empty"),
        ("model..x == 1", "empty part"),
        ("model.model_type ==", "value is missing"),
        ("model.hidden_dim >> 32", "value starts with an operator"),
        ("model.hidden_dim == = 32", "value starts with an operator"),
        (
            "model.hidden_dim => 32",
            "key path has an operator character",
        ),
        // Would otherwise compare with the text `"vae`, matching nothing.
        ("model.model_type == \"vae", "quoted value is not closed"),
        (
            "model.model_type == \"vae\" x",
            "quoted value is not closed",
        ),
    ] {
        let err = q.clone().filter(expr).unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains(expr), "{expr}: {err}");
    }
    // A key with a space, as the seed's tracker may have logged, can still be filtered on.
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    for lr in [1e-3, 1e-2] {
        let config = serde_json::json!({"optim": {"learning rate": lr}});
        log.log_result("spaced", &config, [("loss", lr)], [])
            .unwrap();
    }
    let found = log.query().filter("optim.learning rate < 5e-3").unwrap();
    let found = found.all().unwrap().value;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record.metrics["loss"], 1e-3);
    assert!(matches!(
        q.clone().experiment("[a-"),
        Err(ResultsError::Pattern { .. })
    ));
    assert!(
        "median"
            .parse::<Mode>()
            .unwrap_err()
            .to_string()
            .contains("`min` or `max`")
    );
}

#[test]
fn torn_last_line_is_skipped_and_reported_and_the_next_append_survives() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    log_three(&log);
    let complete = std::fs::metadata(log.path()).unwrap().len();
    let before = log.query().best("val_loss", Mode::Max).unwrap().value;
    // A writer dies mid-line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log.path())
        .unwrap();
    f.write_all(br#"{"timestamp": "2026-11-27T10:00:00", "experiment_name": "torn", "config": {}, "metrics": {"val_loss": 9"#).unwrap();
    drop(f);
    let found = log.query().best("val_loss", Mode::Max).unwrap();
    assert_eq!(
        found.value, before,
        "a torn line does not change the answer"
    );
    assert_eq!(found.skipped.len(), 1);
    assert_eq!(found.skipped[0].kind, SkipKind::TornTail);
    assert_eq!(
        (found.skipped[0].line, found.skipped[0].offset),
        (4, complete)
    );
    assert!(
        found.skipped[0]
            .to_string()
            .contains(&format!("byte {complete}"))
    );
    // The next append lands on the torn line; its record is read back, only the torn one is lost.
    let other = ResultsTracker::open(dir.path());
    other
        .log_result("after", &json!({}), [("val_loss", 0.1)], [])
        .unwrap();
    other
        .log_result("later", &json!({}), [("val_loss", 0.2)], [])
        .unwrap();
    let all = log.query().all().unwrap();
    let names: Vec<_> = all
        .value
        .iter()
        .map(|e| (e.line, e.record.experiment_name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (1, "vae-a"),
            (2, "ar-b"),
            (3, "vae-c"),
            (4, "after"),
            (5, "later")
        ]
    );
    assert_eq!(all.skipped.len(), 1);
    assert_eq!(
        (all.skipped[0].line, all.skipped[0].kind),
        (4, SkipKind::Torn)
    );
    assert_eq!(all.skipped[0].offset, complete);
    let best = log.query().best("val_loss", Mode::Min).unwrap();
    assert_eq!(best.value.unwrap().record.experiment_name, "after");
    assert_eq!(best.skipped, all.skipped);
}

#[test]
fn corrupt_lines_in_the_middle_are_skipped_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    log.log_result("one", &json!({}), [("m", 1.0)], Vec::<(&str, &str)>::new())
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log.path())
        .unwrap();
    f.write_all(b"not json at all\n\n{\"timestamp\": 1}\n\xff\xfe\n")
        .unwrap();
    drop(f);
    log.log_result("two", &json!({}), [("m", 2.0)], Vec::<(&str, &str)>::new())
        .unwrap();
    let all = log.query().all().unwrap();
    let names: Vec<_> = all
        .value
        .iter()
        .map(|e| (e.line, e.record.experiment_name.as_str()))
        .collect();
    assert_eq!(names, [(1, "one"), (6, "two")]);
    let bad: Vec<(u64, SkipKind)> = all.skipped.iter().map(|s| (s.line, s.kind)).collect();
    assert_eq!(
        bad,
        [
            (2, SkipKind::Corrupt),
            (4, SkipKind::Corrupt),
            (5, SkipKind::Corrupt)
        ]
    );
    assert!(
        all.skipped[0].reason.contains("expected `{`"),
        "{}",
        all.skipped[0].reason
    );
    assert!(
        all.skipped[1].reason.contains("no `experiment_name`"),
        "{}",
        all.skipped[1].reason
    );
}

#[test]
fn a_missing_log_is_a_clear_error() {
    let err = ResultsTracker::open("/nonexistent/dir")
        .query()
        .all()
        .unwrap_err();
    assert!(matches!(err, ResultsError::NoLog { .. }));
    assert!(
        err.to_string().contains("/nonexistent/dir/results.jsonl"),
        "{err}"
    );
}

#[test]
fn config_must_be_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let err = ResultsTracker::open(dir.path())
        .log_result(
            "x",
            &json!([1, 2]),
            [("m", 1.0)],
            Vec::<(&str, &str)>::new(),
        )
        .unwrap_err();
    assert!(matches!(err, ResultsError::ConfigNotObject { .. }), "{err}");
    assert!(
        !dir.path().join("results.jsonl").exists(),
        "nothing written"
    );
}

#[test]
fn reads_the_seed_python_format() {
    let q = xp_results::Query::new(seed_fixture());
    let all = q.all().unwrap();
    assert!(all.skipped.is_empty(), "{:?}", all.skipped);
    assert_eq!(all.value.len(), 40);
    let first = &all.value[0].record;
    assert_eq!(
        first.timestamp.len(),
        "2026-11-27T21:51:52.595732".len(),
        "naive timestamps kept as written"
    );
    assert!(all.value[11].record.metrics["val_loss"].is_nan());
    assert_eq!(all.value[17].record.metrics["val_loss"], f64::INFINITY);
    // Expected answers computed from the file independently: the smallest/largest finite val_loss.
    let finite: Vec<(f64, &str)> = all
        .value
        .iter()
        .filter_map(|e| {
            e.record
                .metrics
                .get("val_loss")
                .filter(|v| !v.is_nan())
                .map(|v| (*v, e.record.experiment_name.as_str()))
        })
        .collect();
    let min = finite.iter().min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
    let best = q.best("val_loss", Mode::Min).unwrap();
    assert_eq!(best.value.unwrap().record.experiment_name, min.1);
    assert_eq!(best.nan_metric, 1);
    let max = q.best("val_loss", Mode::Max).unwrap().value.unwrap();
    assert_eq!(max.record.metrics["val_loss"], f64::INFINITY);
}

#[test]
fn compare_lists_differing_config_keys_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    log_three(&log);
    let all = log.query().all().unwrap().value;
    let c = compare(&all[0].record, &all[2].record);
    let keys: Vec<&str> = c.config.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(keys, ["model.hidden_dim", "training.learning_rate"]);
    assert_eq!(c.config[0].1, Some(json!(128)));
    assert_eq!(c.config[0].2, Some(json!(256)));
    assert_eq!(
        c.metrics,
        [
            ("val_loss".to_owned(), Some(0.5), Some(0.4)),
            ("validity".to_owned(), Some(0.9), Some(0.95))
        ]
    );
    let c = compare(&all[0].record, &all[1].record);
    assert!(
        c.metrics
            .contains(&("validity".to_owned(), Some(0.9), None))
    );
    // Equal metrics (NaN on both sides included) and equal config values are left out.
    let log = ResultsTracker::open(dir.path().join("twins"));
    let config = json!({"model": {"model_type": "vae"}, "seed": 1});
    for loss in [0.5, 0.25] {
        log.log_result(
            "twin",
            &config,
            [("val_loss", loss), ("validity", 0.9), ("kl", f64::NAN)],
            [],
        )
        .unwrap();
    }
    let twins = log.query().all().unwrap().value;
    let c = compare(&twins[0].record, &twins[1].record);
    assert!(c.config.is_empty(), "{:?}", c.config);
    assert_eq!(c.metrics, [("val_loss".to_owned(), Some(0.5), Some(0.25))]);
}

#[test]
fn long_lines_and_many_chunks_read_correctly() {
    // Lines longer than the read chunk, and a file spanning many chunks.
    let dir = tempfile::tempdir().unwrap();
    let log = ResultsTracker::open(dir.path());
    let big = "x".repeat(9 << 20);
    log.log_result(
        "big",
        &json!({"blob": big}),
        [("m", 5.0)],
        Vec::<(&str, &str)>::new(),
    )
    .unwrap();
    for i in 0..20_000 {
        log.log_result(
            &format!("r{i}"),
            &json!({"i": i, "pad": "y".repeat(400)}),
            [("m", f64::from(i % 997))],
            [],
        )
        .unwrap();
    }
    let all = log.query().all().unwrap();
    assert_eq!(all.value.len(), 20_001);
    assert!(all.skipped.is_empty());
    assert!(
        all.value
            .iter()
            .enumerate()
            .all(|(i, e)| e.line == i as u64 + 1)
    );
    let top = log.query().top("m", Mode::Max, 3).unwrap().value;
    let names: Vec<_> = top
        .iter()
        .map(|e| e.record.experiment_name.as_str())
        .collect();
    assert_eq!(names, ["r996", "r1993", "r2990"]);
}

#[test]
fn a_filter_says_whether_it_accepts_a_value() {
    let filter = |expr: &str| expr.parse::<xp_results::Filter>().unwrap();
    let lr = filter("training.learning_rate < 1e-3");
    assert!(lr.accepts(&json!(3e-4)));
    assert!(!lr.accepts(&json!(1e-3)));
    assert!(!lr.accepts(&json!("3e-4")), "text is not a number");
    let ty = filter("model.model_type == vae");
    assert!(ty.accepts(&json!("vae")));
    assert!(!ty.accepts(&json!("VAE")));
    // `!=` passes a value of another kind; `==` 3 is not "3".
    assert!(filter("model.model_type != 3").accepts(&json!("3")));
    assert!(!filter("model.model_type == 3").accepts(&json!("3")));
    assert!(filter("training.amp == true").accepts(&json!(true)));
    assert!(filter("model.layers == [1, 2]").accepts(&json!([1, 2])));
}
