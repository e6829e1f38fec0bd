//! A disk that refuses writes mid-run: the error comes back from the writer, never a panic.

use std::process::Command;

const CHILD_ENV: &str = "XP_LOG_TEST_CHILD";

/// In a child process limited to small files: logs until the writer reports an error.
#[test]
fn child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let w = xp_log::SummaryWriter::new(&dir).unwrap();
    for step in 0..2_000_000 {
        if let Err(e) = w.add_scalar("loss", 0.5, step) {
            println!("add_scalar error: {e}");
            std::process::exit(3);
        }
        if step % 10_000 == 0
            && let Err(e) = w.flush()
        {
            println!("flush error: {e}");
            std::process::exit(3);
        }
    }
    println!("no error");
}

#[test]
fn a_full_disk_is_reported_by_flush_or_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // No file may grow past 200 blocks; SIGXFSZ ignored so writes fail with EFBIG instead.
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 200; exec \"$0\" --exact child --nocapture --test-threads=1")
        .arg(exe)
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("File too large") && stdout.contains("events.out.tfevents."),
        "{stdout}"
    );
    // What was flushed before the failure is still readable, record by record.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = xp_log::EventReader::open(&file)
        .unwrap()
        .take_while(Result::is_ok)
        .count();
    assert!(good > 1000, "{good} readable records");
}
