//! Processes that die mid-save: killed at random moments, or stopped by a full disk.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use xp_ckpt::{Checkpoint, CheckpointManager, MANIFEST_FILE, Mode};

const CHILD_ENV: &str = "XP_CKPT_TEST_CHILD";

/// A checkpoint whose payloads all derive from `epoch`, so a loaded one can be checked whole.
fn ckpt(epoch: u64) -> Checkpoint {
    let size = 50_000 + (epoch as usize * 7919) % 400_000;
    let model: Vec<u8> = (0..size).map(|i| (i as u64 ^ epoch) as u8).collect();
    let metric = ((epoch * 37) % 17) as f64 / 17.0;
    Checkpoint::new(epoch, epoch * 10)
        .with_payload("model.safetensors", model)
        .with_payload("optimizer", vec![epoch as u8; 20_000])
        .with_payload("rng", epoch.to_le_bytes().to_vec())
        .with_metric("val_loss", metric)
        .with_config(&format!("epoch = {epoch}\n"))
}

fn check_whole(c: &Checkpoint) {
    let expected = ckpt(c.epoch);
    assert_eq!(c.payloads, expected.payloads, "epoch {}", c.epoch);
    assert_eq!(c.metrics, expected.metrics);
    assert_eq!(c.config, expected.config);
}

/// In a child (a re-run of this test binary): saves checkpoints from the epoch after the last
/// until killed, or, in "small disk" mode, until a save fails.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, dir) = spec.split_once('|').unwrap();
    let mut m = CheckpointManager::open(dir, 3, "val_loss", Mode::Min).unwrap();
    let mut epoch = m.last().map_or(1, |e| e.epoch + 1);
    loop {
        match m.save(&ckpt(epoch)) {
            Ok(_) => println!("saved {epoch}"),
            Err(err) if mode == "small-disk" => {
                println!("error: {err}");
                std::process::exit(3);
            }
            Err(err) => panic!("{err}"),
        }
        epoch += 1;
    }
}

fn spawn_child(mode: &str, dir: &Path, shell_prefix: Option<&str>) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "{prefix}; exec \"$0\" --exact child --nocapture --test-threads=1"
                ))
                .arg(exe);
            c
        }
        None => {
            let mut c = Command::new(exe);
            c.args(["--exact", "child", "--nocapture", "--test-threads=1"]);
            c
        }
    };
    cmd.env(CHILD_ENV, format!("{mode}|{}", dir.display()))
        .stderr(Stdio::null());
    cmd
}

/// After any crash: opening works, nothing half-written is listed, best and last load whole,
/// and the manifest names exactly the checkpoint directories on disk.
fn check_folder(dir: &Path) -> (u64, u64) {
    let m = CheckpointManager::open(dir, 3, "val_loss", Mode::Min).unwrap();
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
    let last = m.load_last().unwrap().expect("a last checkpoint");
    let best = m.load_best().unwrap().expect("a best checkpoint");
    check_whole(&last);
    check_whole(&best);
    assert_eq!(m.last().unwrap().epoch, last.epoch);
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock" && n != MANIFEST_FILE)
        .collect();
    on_disk.sort();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    let mut listed: Vec<String> = manifest["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dir"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "manifest and directories agree, no leftovers"
    );
    for e in m.checkpoints() {
        Checkpoint::load(&m.path(e)).unwrap();
    }
    (last.epoch, best.epoch)
}

#[test]
fn killed_at_random_moments_never_leaves_a_broken_listed_checkpoint() {
    let rounds: u64 = std::env::var("XP_CKPT_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let mut state: u64 = 0x9E3779B97F4A7C15;
    let mut last_epoch = 0;
    for round in 0..rounds {
        let mut child = spawn_child("loop", dir.path(), None)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Long enough to get through opening and a save or two, short enough to land anywhere.
        let wait_ms = 20 + (state >> 33) % 80;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if dir.path().join(MANIFEST_FILE).exists() {
            let (last, _) = check_folder(dir.path());
            assert!(
                last >= last_epoch,
                "round {round}: last went back from {last_epoch} to {last}"
            );
            last_epoch = last;
        }
    }
    assert!(
        last_epoch >= rounds / 2,
        "the children made progress: last epoch {last_epoch}"
    );
}

#[test]
fn a_full_disk_fails_the_save_and_keeps_the_old_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    // No file may grow past 300 blocks (512 B or 1 KiB, by shell): a 50-450 KB model payload soon
    // fails. SIGXFSZ is ignored, so the write returns an error (EFBIG) instead of killing the
    // process.
    let out = spawn_child(
        "small-disk",
        dir.path(),
        Some("trap '' XFSZ; ulimit -f 300"),
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let error = stdout.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(
        error.contains("File too large") && error.contains("model.safetensors"),
        "{error}"
    );
    let (last, _) = check_folder(dir.path());
    // The test harness may print on the same line before the child's own output.
    let saved = stdout
        .split("saved ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(saved >= 2, "{stdout}");
    assert_eq!(last, saved, "the last good save is the last");
}
