//! Event files read back with our own reader (which checks every checksum).

use std::path::{Path, PathBuf};

use xp_log::proto::{SessionLog, event::What, session_log, summary::value::Value};
use xp_log::{EventReader, ExperimentLogger, LogError, SummaryWriter};

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    files.sort();
    files
}

/// (tag, step, value) of every scalar in a file, after checking the file_version record.
fn scalars(path: &Path) -> Vec<(String, i64, f32)> {
    let mut events = EventReader::open(path).unwrap();
    let first = events.next().unwrap().unwrap();
    assert_eq!(
        first.what,
        Some(What::FileVersion("brain.Event:2".to_owned()))
    );
    events
        .map(|e| e.unwrap())
        .filter_map(|e| match e.what {
            Some(What::Summary(s)) => {
                let v = &s.value[0];
                match v.value {
                    Some(Value::SimpleValue(x)) => Some((v.tag.clone(), e.step, x)),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

#[test]
fn flush_means_everything_is_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let w = SummaryWriter::new(dir.path()).unwrap();
    for step in 0..10_000 {
        w.add_scalar("loss", step as f64 * 0.5, step).unwrap();
    }
    w.flush().unwrap();
    let got = scalars(w.event_file());
    assert_eq!(got.len(), 10_000);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, (tag, step, v))| tag == "loss" && *step == i as i64 && *v == i as f32 * 0.5)
    );
    w.add_scalar("loss", f64::NAN, 10_000).unwrap();
    w.add_scalar("loss", f64::NEG_INFINITY, 10_001).unwrap();
    w.close().unwrap();
    let got = scalars(&event_files(dir.path())[0]);
    assert!(
        got[10_000].2.is_nan() && got[10_001].2 == f32::NEG_INFINITY,
        "non-finite values are kept"
    );
}

#[test]
fn drop_flushes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let w = SummaryWriter::new(dir.path()).unwrap();
        w.add_scalar("x", 1.0, 1).unwrap();
    }
    assert_eq!(
        scalars(&event_files(dir.path())[0]),
        [("x".to_owned(), 1, 1.0)]
    );
}

#[test]
fn two_writers_in_one_folder_get_their_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = SummaryWriter::new(dir.path()).unwrap();
    let b = SummaryWriter::new(dir.path()).unwrap();
    a.add_scalar("a", 1.0, 0).unwrap();
    b.add_scalar("b", 2.0, 0).unwrap();
    assert_ne!(a.event_file(), b.event_file());
    a.close().unwrap();
    b.close().unwrap();
    let files = event_files(dir.path());
    assert_eq!(files.len(), 2);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let parts: Vec<&str> = name.split('.').collect();
    assert_eq!(parts[..3], ["events", "out", "tfevents"]);
    assert_eq!(parts[parts.len() - 2], std::process::id().to_string());
}

#[test]
fn corruption_is_detected_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let w = SummaryWriter::new(dir.path()).unwrap();
    w.add_scalar("x", 1.0, 0).unwrap();
    w.add_scalar("x", 2.0, 1).unwrap();
    let path = w.event_file().to_path_buf();
    w.close().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 6] ^= 0x40; // inside the last record's data
    std::fs::write(&path, &bytes).unwrap();
    let results: Vec<_> = EventReader::open(&path).unwrap().collect();
    assert!(results[..2].iter().all(Result::is_ok));
    let err = results[2].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("data checksum mismatch") && err.contains("bad record at byte"),
        "{err}"
    );
    std::fs::write(&path, &bytes[..n - 3]).unwrap();
    let err = EventReader::open(&path)
        .unwrap()
        .last()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut short"), "{err}");
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let w = SummaryWriter::new(dir.path()).unwrap();
    let empty: [f64; 0] = [];
    assert!(matches!(
        w.add_histogram("h", &empty, 0),
        Err(LogError::Histogram { .. })
    ));
    let err = w
        .add_histogram("h", &[1.0, f64::NAN], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 of 2 values are NaN or infinite"), "{err}");
    let err = w
        .add_histogram_raw("r", 0.0, 1.0, 1.0, 1.0, 1.0, &[1.0], &[], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 bucket limits and 0 counts"), "{err}");
    let image = xp_log::Image {
        height: 2,
        width: 2,
        channels: 3,
        data: vec![0; 11],
    };
    let err = w.add_image("img", &image, 0).unwrap_err().to_string();
    assert!(
        err.contains("image `img`") && err.contains("expected 12"),
        "{err}"
    );
    // The writer still works after refused input.
    w.add_scalar("ok", 1.0, 0).unwrap();
    w.close().unwrap();
    // A log folder that cannot exist: its parent is a file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = SummaryWriter::new(file.join("logs"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot create the log folder") && err.contains("plain-file/logs"),
        "{err}"
    );
}

#[test]
fn experiment_logger_lays_out_a_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let a = ExperimentLogger::create(dir.path(), "exp/1", "seed = 1\n").unwrap();
    let b = ExperimentLogger::create(dir.path(), "exp/1", "seed = 1\n").unwrap();
    let name = a
        .run_dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("exp_1_") && name.len() == "exp_1_YYYYmmdd_HHMMSS".len(),
        "{name}"
    );
    assert_ne!(
        a.run_dir(),
        b.run_dir(),
        "a second run in the same second gets a suffix"
    );
    assert_eq!(
        std::fs::read_to_string(a.run_dir().join("config.toml")).unwrap(),
        "seed = 1\n"
    );
    let mut a = a;
    a.log_scalar("loss", 0.5).unwrap();
    a.increment_step();
    a.log_scalars(&[("loss", 0.25), ("lr", 1e-3)]).unwrap();
    let run_dir = a.run_dir().to_path_buf();
    a.close().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].starts_with(r#"{"step":1,"tag":"loss","value":0.25,"wall_time":"#),
        "{}",
        lines[1]
    );
    assert_eq!(
        scalars(&event_files(&run_dir)[0]),
        [
            ("loss".to_owned(), 0, 0.5),
            ("loss".to_owned(), 1, 0.25),
            ("lr".to_owned(), 1, 1e-3)
        ]
    );
}

#[test]
fn a_resumed_run_appends_to_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = ExperimentLogger::create(dir.path(), "exp", "seed = 1\n").unwrap();
    first.log_scalar("loss", 1.0).unwrap();
    let run_dir = first.run_dir().to_path_buf();
    first.close().unwrap();
    // Event file names carry the time in seconds; a second writer in the same second gets a
    // distinct name anyway (see two_writers_in_one_folder_get_their_own_files).
    let mut resumed = ExperimentLogger::resume(&run_dir, 7, "seed = 1\n").unwrap();
    assert_eq!(resumed.step(), 7);
    resumed.log_scalar("loss", 0.5).unwrap();
    resumed.close().unwrap();
    let lines = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<&str> = lines.lines().map(|l| &l[..10]).collect();
    assert_eq!(steps, [r#"{"step":0,"#, r#"{"step":7,"#]);
    let files = event_files(&run_dir);
    assert_eq!(files.len(), 2);
    let mut all: Vec<_> = files.iter().flat_map(|f| scalars(f)).collect();
    all.sort_by_key(|s| s.1);
    assert_eq!(
        all,
        [("loss".to_owned(), 0, 1.0), ("loss".to_owned(), 7, 0.5)]
    );

    let err = ExperimentLogger::resume(dir.path().join("nope"), 0, "")
        .err()
        .unwrap();
    assert!(matches!(err, LogError::NotARunDir { .. }), "{err}");
    assert!(err.to_string().contains("not a run directory"), "{err}");
}

/// A session killed after its checkpoint at step 5 had logged steps 5..=8 and torn its last
/// metrics line; the resumed session logs 5..=9 again.
#[test]
fn a_resumed_run_supersedes_what_the_crashed_session_logged_past_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = ExperimentLogger::create(dir.path(), "exp", "seed = 1\n").unwrap();
    for step in 0..=8 {
        crashed.set_step(step);
        crashed.log_scalar("loss", 1.0 + step as f64).unwrap();
    }
    let run_dir = crashed.run_dir().to_path_buf();
    crashed.close().unwrap();
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut torn = std::fs::read(&metrics_path).unwrap();
    torn.extend_from_slice(br#"{"step":9,"tag":"lo"#);
    std::fs::write(&metrics_path, torn).unwrap();
    // An event file from a clock ahead of ours: the resumed session's file must still come last.
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 100;
    let skewed = run_dir.join(format!("events.out.tfevents.{ahead}.zzz.99999.0"));
    std::fs::copy(&event_files(&run_dir)[0], &skewed).unwrap();

    let mut resumed = ExperimentLogger::resume(&run_dir, 5, "seed = 2\n").unwrap();
    for step in 5..=9 {
        resumed.set_step(step);
        resumed.log_scalar("loss", 100.0 + step as f64).unwrap();
    }
    resumed.close().unwrap();

    // metrics.jsonl: the crashed session's lines before step 5, then the resumed session's.
    let text = std::fs::read_to_string(&metrics_path).unwrap();
    let rows: Vec<(i64, f64)> = text
        .lines()
        .map(|line| {
            let step = line[8..line.find(',').unwrap()].parse().unwrap();
            let value = line.split("\"value\":").nth(1).unwrap();
            (step, value[..value.find(',').unwrap()].parse().unwrap())
        })
        .collect();
    let expected: Vec<(i64, f64)> = (0..5)
        .map(|s| (s, 1.0 + s as f64))
        .chain((5..=9).map(|s| (s, 100.0 + s as f64)))
        .collect();
    assert_eq!(rows, expected, "{text}");
    assert!(!run_dir.join("metrics.jsonl.tmp").exists());

    // The resumed session's event file sorts last and opens with a restart marker at step 5,
    // which tells TensorBoard to drop the earlier files' events from step 5 on.
    let files = event_files(&run_dir);
    assert_eq!(files.len(), 3);
    assert!(files[1] == skewed, "{files:?}");
    let events: Vec<_> = EventReader::open(&files[2])
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(
        events[0].what,
        Some(What::FileVersion("brain.Event:2".to_owned()))
    );
    assert_eq!(events[1].step, 5);
    assert_eq!(
        events[1].what,
        Some(What::SessionLog(SessionLog {
            status: session_log::Status::Start as i32,
            ..SessionLog::default()
        }))
    );
    let config_text = events.iter().find_map(|e| match &e.what {
        Some(What::Summary(s)) if s.value[0].tag == "config/text_summary" => Some(e.step),
        _ => None,
    });
    assert_eq!(
        config_text,
        Some(5),
        "the resumed session's config at its first step"
    );
    assert_eq!(
        scalars(&files[2])
            .iter()
            .map(|(_, step, value)| (*step, *value))
            .collect::<Vec<_>>(),
        (5..=9).map(|s| (s, 100.0 + s as f32)).collect::<Vec<_>>()
    );
}

#[test]
fn resuming_keeps_a_metrics_file_with_nothing_to_drop_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = ExperimentLogger::create(dir.path(), "exp", "seed = 1\n").unwrap();
    first.log_scalar("loss", 1.0).unwrap();
    let run_dir = first.run_dir().to_path_buf();
    first.close().unwrap();
    let metrics_path = run_dir.join("metrics.jsonl");
    // A line that is not ours (no step first) is kept, not judged.
    let mut text = std::fs::read_to_string(&metrics_path).unwrap();
    text.push_str("{\"note\":\"added by hand\"}\n");
    std::fs::write(&metrics_path, &text).unwrap();
    ExperimentLogger::resume(&run_dir, 1, "seed = 1\n")
        .unwrap()
        .close()
        .unwrap();
    assert_eq!(std::fs::read_to_string(&metrics_path).unwrap(), text);
    assert!(!run_dir.join("metrics.jsonl.tmp").exists());
}

/// The hparams session-start record of the one event file in `dir`.
fn hparams_epochs(dir: &Path) -> f64 {
    use prost::Message;
    use xp_log::proto::HParamsPluginData;
    use xp_log::proto::h_params_plugin_data::Data;
    let files = event_files(dir);
    assert_eq!(files.len(), 1, "{}", dir.display());
    let start = EventReader::open(&files[0])
        .unwrap()
        .filter_map(|e| match e.unwrap().what {
            Some(What::Summary(s)) => s
                .value
                .into_iter()
                .find(|v| v.tag.ends_with("session_start_info")),
            _ => None,
        })
        .next()
        .expect("a session start record");
    let content = &start.metadata.unwrap().plugin_data.unwrap().content;
    match HParamsPluginData::decode(content.as_slice()).unwrap().data {
        Some(Data::SessionStartInfo(info)) => match info.hparams["epochs"].kind {
            Some(xp_log::proto::proto_value::Kind::NumberValue(n)) => n,
            ref other => panic!("epochs: {other:?}"),
        },
        other => panic!("not a session start: {other:?}"),
    }
}

#[test]
fn a_finished_run_resumed_for_more_epochs_gets_a_second_hparams_row() {
    use xp_log::HParam;
    let dir = tempfile::tempdir().unwrap();
    let mut first = ExperimentLogger::create(dir.path(), "exp", "epochs = 2\n").unwrap();
    let run_dir = first.run_dir().to_path_buf();
    let epochs = |n: f64| [("epochs".to_owned(), HParam::Number(n))];
    first
        .log_hparams(&epochs(2.0), &[("hparam/val_loss", 0.5)])
        .unwrap();
    first.close().unwrap();
    let mut second = ExperimentLogger::resume(&run_dir, 4, "epochs = 4\n").unwrap();
    second
        .log_hparams(&epochs(4.0), &[("hparam/val_loss", 0.25)])
        .unwrap();
    second.close().unwrap();
    // TensorBoard keeps the first hparams it reads in a folder: each session needs its own.
    assert_eq!(hparams_epochs(&run_dir.join("hparams")), 2.0);
    assert_eq!(hparams_epochs(&run_dir.join("hparams-2")), 4.0);
    assert!(!run_dir.join("hparams-3").exists());
    assert_eq!(
        ExperimentLogger::hparams_runs(&run_dir),
        [run_dir.join("hparams"), run_dir.join("hparams-2")]
    );
}

#[test]
fn resuming_cuts_the_metrics_tail_in_place_and_copies_only_when_a_kept_line_follows() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let lines = |path: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .map(|l| l[..l.find(",\"tag").unwrap_or(l.len())].to_owned())
            .collect()
    };
    for note_after in [false, true] {
        let mut first =
            ExperimentLogger::create(dir.path(), &format!("exp{note_after}"), "").unwrap();
        let run_dir = first.run_dir().to_path_buf();
        for step in 0..6 {
            first.set_step(step);
            first.log_scalar("loss", step as f64).unwrap();
        }
        first.close().unwrap();
        let path = run_dir.join("metrics.jsonl");
        if note_after {
            let mut text = std::fs::read_to_string(&path).unwrap();
            text.push_str("{\"note\":\"added by hand\"}\n");
            std::fs::write(&path, text).unwrap();
        }
        let inode = std::fs::metadata(&path).unwrap().ino();
        ExperimentLogger::resume(&run_dir, 3, "")
            .unwrap()
            .close()
            .unwrap();
        let mut want: Vec<String> = (0..3).map(|s| format!("{{\"step\":{s}")).collect();
        if note_after {
            want.push("{\"note\":\"added by hand\"}".to_owned());
        }
        assert_eq!(lines(&path), want);
        // A tail is cut in place; a kept line after dropped ones needs a copy (a new file).
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino() == inode,
            !note_after
        );
        assert!(!run_dir.join("metrics.jsonl.tmp").exists());
    }
}
