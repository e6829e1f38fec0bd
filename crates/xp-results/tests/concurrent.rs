//! Many processes appending at once: no record lost, none interleaved.

use std::collections::HashSet;
use std::process::Command;

use serde_json::json;
use xp_results::ResultsTracker;

const WRITERS: usize = 8;
const RECORDS: usize = 10_000;
const CHILD_ENV: &str = "XP_RESULTS_TEST_WRITER";

/// In a child process (re-run of this test binary), appends RECORDS results; otherwise does nothing.
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, id) = spec.split_once('|').unwrap();
    let log = ResultsTracker::open(dir);
    // Records of varied length, some long enough that one write is many pages.
    for i in 0..RECORDS {
        let pad = "z".repeat((i * 37) % 2000);
        log.log_result(
            &format!("w{id}-{i}"),
            &json!({"writer": id, "i": i, "pad": pad}),
            [("loss", i as f64)],
            [("ckpt", format!("/runs/{id}/{i}").as_str())],
        )
        .unwrap();
    }
}

#[test]
fn eight_processes_append_without_loss_or_interleaving() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WRITERS)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("{}|{id}", dir.path().display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    // Every line is valid JSON on its own.
    let text = std::fs::read_to_string(dir.path().join("results.jsonl")).unwrap();
    let mut lines = 0;
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("line {}: {e}", lines + 1));
        lines += 1;
    }
    assert_eq!(lines, WRITERS * RECORDS);
    // Every record exactly once, read back through the query API.
    let all = ResultsTracker::open(dir.path()).query().all().unwrap();
    assert!(all.skipped.is_empty());
    let names: HashSet<String> = all
        .value
        .into_iter()
        .map(|e| e.record.experiment_name)
        .collect();
    assert_eq!(names.len(), WRITERS * RECORDS);
    for id in 0..WRITERS {
        for i in 0..RECORDS {
            assert!(names.contains(&format!("w{id}-{i}")));
        }
    }
}
