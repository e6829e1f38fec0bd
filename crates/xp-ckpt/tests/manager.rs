//! Checkpoint bookkeeping, integrity and failure handling, on real files.

use std::path::Path;

use xp_ckpt::{Checkpoint, CheckpointManager, CkptError, MANIFEST_FILE, Mode, Payload};

fn ckpt(epoch: u64, metric: f64) -> Checkpoint {
    Checkpoint::new(epoch, epoch * 100)
        .with_payload(
            "model.safetensors",
            vec![epoch as u8; 1000 + epoch as usize],
        )
        .with_payload("optimizer", format!("adam state {epoch}").into_bytes())
        .with_metric("val_loss", metric)
        .with_metric("validity", 1.0 - metric)
        .with_config("name = \"t\"\n")
}

fn epochs(m: &CheckpointManager) -> Vec<u64> {
    m.checkpoints().iter().map(|e| e.epoch).collect()
}

fn dirs_on_disk(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch"))
        .collect();
    names.sort();
    names
}

#[test]
fn keeps_top_k_and_the_last_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
    let metrics = [0.5, 0.3, 0.4, 0.6, 0.2, 0.7];
    let expected_kept: [&[u64]; 6] = [&[1], &[1, 2], &[2, 3], &[2, 3, 4], &[2, 5], &[2, 5, 6]];
    for (i, (metric, kept)) in metrics.iter().zip(expected_kept).enumerate() {
        let saved = m.save(&ckpt(i as u64 + 1, *metric)).unwrap();
        assert_eq!(epochs(&m), kept, "after epoch {}", i + 1);
        assert_eq!(saved.is_best, [true, true, false, false, true, false][i]);
        assert_eq!(
            dirs_on_disk(dir.path()).len(),
            kept.len(),
            "deleted on disk too"
        );
    }
    assert_eq!(m.best().unwrap().epoch, 5);
    assert_eq!(m.last().unwrap().epoch, 6);
    drop(m);
    let m = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
    assert_eq!(epochs(&m), [2, 5, 6]);
    assert_eq!(m.best().unwrap().epoch, 5);
    assert_eq!(m.last().unwrap().epoch, 6);
    let best = m.load_best().unwrap().unwrap();
    assert_eq!(best.epoch, 5);
    assert_eq!(
        best.payload("model.safetensors").unwrap(),
        vec![5u8; 1005].as_slice()
    );
    assert_eq!(best.payload("optimizer").unwrap(), b"adam state 5");
    assert_eq!(best.metrics["val_loss"], 0.2);
    assert_eq!(best.config, "name = \"t\"\n");
    assert!(m.warnings().is_empty(), "{:?}", m.warnings());
}

#[test]
fn max_mode_and_ties_go_to_the_newer() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 2, "validity", Mode::Max).unwrap();
    for (epoch, loss) in [(1, 0.5), (2, 0.5), (3, 0.5), (4, 0.9)] {
        m.save(&ckpt(epoch, loss)).unwrap();
    }
    // validity = 1 - loss: epochs 1-3 tie at 0.5; the newer ones win; 4 is the last.
    assert_eq!(epochs(&m), [2, 3, 4]);
    assert_eq!(m.best().unwrap().epoch, 3);
    let m2 = {
        drop(m);
        CheckpointManager::open(dir.path(), 2, "validity", Mode::Max).unwrap()
    };
    assert_eq!(m2.best().unwrap().epoch, 3, "the same after reopening");
}

#[test]
fn nan_is_never_best_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 1, "val_loss", Mode::Min).unwrap();
    m.save(&ckpt(1, 0.5)).unwrap();
    let saved = m.save(&ckpt(2, f64::NAN)).unwrap();
    assert!(!saved.is_best);
    assert!(saved.warnings[0].contains("NaN"), "{:?}", saved.warnings);
    assert_eq!(m.best().unwrap().epoch, 1);
    assert_eq!(m.last().unwrap().epoch, 2, "kept as the last, for resume");
    m.save(&ckpt(3, 0.6)).unwrap();
    assert_eq!(
        epochs(&m),
        [1, 3],
        "the NaN one goes once it is not the last"
    );
    for mode in [Mode::Min, Mode::Max] {
        let dir = tempfile::tempdir().unwrap();
        let mut m = CheckpointManager::open(dir.path(), 3, "val_loss", mode).unwrap();
        m.save(&ckpt(1, f64::NAN)).unwrap();
        assert!(m.best().is_none());
        m.save(&ckpt(2, f64::INFINITY)).unwrap();
        assert_eq!(m.best().unwrap().epoch, 2);
    }
}

#[test]
fn a_missing_metric_is_an_error_naming_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 2, "bleu", Mode::Max).unwrap();
    let err = m.save(&ckpt(1, 0.5)).unwrap_err();
    assert!(matches!(err, CkptError::MissingMetric { .. }));
    let text = err.to_string();
    assert!(
        text.contains("`bleu`") && text.contains("val_loss, validity"),
        "{text}"
    );
    assert!(dirs_on_disk(dir.path()).is_empty(), "nothing written");
}

#[test]
fn bad_payload_names_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
    for name in [
        "../escape",
        ".hidden",
        "meta.json",
        "config.toml",
        "a/b",
        "",
    ] {
        let err = m
            .save(&ckpt(1, 0.1).with_payload(name, vec![1]))
            .unwrap_err();
        assert!(
            matches!(err, CkptError::BadPayloadName { .. }),
            "{name}: {err}"
        );
    }
    m.save(&ckpt(1, 0.1)).unwrap();
    let err = m.save(&ckpt(1, 0.2)).unwrap_err();
    assert!(
        matches!(
            err,
            CkptError::Exists {
                epoch: 1,
                step: 100,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        CheckpointManager::open(dir.path(), 0, "val_loss", Mode::Min),
        Err(CkptError::NoRoom)
    ));
}

#[test]
fn file_payloads_are_copied_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("weights.bin");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    let mut m = CheckpointManager::open(dir.path().join("ckpt"), 2, "val_loss", Mode::Min).unwrap();
    let mut c = ckpt(1, 0.1);
    c.payloads.insert("weights.bin".into(), Payload::File(src));
    m.save(&c).unwrap();
    assert_eq!(
        m.load_last()
            .unwrap()
            .unwrap()
            .payload("weights.bin")
            .unwrap(),
        bytes.as_slice()
    );
}

#[test]
fn a_second_manager_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _m = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
    let err = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min)
        .err()
        .unwrap();
    assert!(
        matches!(&err, CkptError::InUse { path } if path == dir.path()),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("another process has this checkpoint folder open"),
        "{err}"
    );
}

#[test]
fn a_folder_is_in_use_while_a_writer_has_it_open() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!CheckpointManager::in_use(dir.path()), "no lock file yet");
    assert!(!CheckpointManager::in_use(dir.path().join("missing")));
    let writer = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
    assert!(CheckpointManager::in_use(dir.path()));
    // A read-only view takes no lock, and the probe leaves the writer's alone.
    let _view = CheckpointManager::open_read_only(dir.path(), "val_loss", Mode::Min).unwrap();
    assert!(CheckpointManager::in_use(dir.path()));
    drop(writer);
    assert!(!CheckpointManager::in_use(dir.path()));
    // The probe holds nothing afterwards: a writer opens the folder again.
    CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
}

#[test]
fn a_lost_or_corrupt_manifest_is_rebuilt_from_the_directories() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut m = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
        for (e, v) in [(1, 0.3), (2, 0.1), (3, 0.2), (4, 0.9)] {
            m.save(&ckpt(e, v)).unwrap();
        }
    }
    let manifest = dir.path().join(MANIFEST_FILE);
    for damage in [None, Some(&b"{\"metric\": \"val_lo"[..])] {
        match damage {
            None => std::fs::remove_file(&manifest).unwrap(),
            Some(bytes) => std::fs::write(&manifest, bytes).unwrap(),
        }
        let m = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
        assert_eq!(epochs(&m), [2, 3, 4]);
        assert_eq!((m.best().unwrap().epoch, m.last().unwrap().epoch), (2, 4));
        assert_eq!(
            damage.is_some(),
            !m.warnings().is_empty(),
            "{:?}",
            m.warnings()
        );
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(text.contains("epoch0002-step0000200"), "rewritten: {text}");
    }
}

#[test]
fn leftovers_of_an_interrupted_save_are_cleaned_and_evictions_finished() {
    let dir = tempfile::tempdir().unwrap();
    let evicted = dir.path().join("epoch0001-step0000100");
    let kept_copy = tempfile::tempdir().unwrap();
    {
        let mut m = CheckpointManager::open(dir.path(), 1, "val_loss", Mode::Min).unwrap();
        m.save(&ckpt(1, 0.5)).unwrap();
        for f in std::fs::read_dir(&evicted).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), kept_copy.path().join(f.file_name())).unwrap();
        }
        let saved = m.save(&ckpt(2, 0.4)).unwrap();
        assert_eq!(saved.removed, std::slice::from_ref(&evicted));
    }
    // A save that died while writing, and a manifest write that died.
    std::fs::create_dir(dir.path().join(".tmp-epoch0003-step0000300")).unwrap();
    std::fs::write(
        dir.path()
            .join(".tmp-epoch0003-step0000300/model.safetensors"),
        b"half",
    )
    .unwrap();
    std::fs::write(dir.path().join(".tmp-manifest.json"), b"{").unwrap();
    // Epoch 1 again: evicted by the manifest, but its deletion "did not happen".
    std::fs::create_dir(&evicted).unwrap();
    for f in std::fs::read_dir(kept_copy.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), evicted.join(f.file_name())).unwrap();
    }
    let m = CheckpointManager::open(dir.path(), 1, "val_loss", Mode::Min).unwrap();
    drop(m);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with(".tmp-")), "{names:?}");
    assert_eq!(dirs_on_disk(dir.path()), ["epoch0002-step0000200"]);
}

#[test]
fn a_save_whose_manifest_update_was_lost_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut m = CheckpointManager::open(dir.path(), 1, "val_loss", Mode::Min).unwrap();
        m.save(&ckpt(1, 0.5)).unwrap();
    }
    let manifest_before = std::fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
    {
        let mut m = CheckpointManager::open(dir.path(), 5, "val_loss", Mode::Min).unwrap();
        m.save(&ckpt(2, 0.4)).unwrap();
    }
    // As if the process died between moving epoch 2 into place and rewriting the manifest.
    std::fs::write(dir.path().join(MANIFEST_FILE), manifest_before).unwrap();
    let m = CheckpointManager::open(dir.path(), 1, "val_loss", Mode::Min).unwrap();
    assert_eq!(m.last().unwrap().epoch, 2);
    assert_eq!(m.best().unwrap().epoch, 2);
    assert_eq!(epochs(&m), [2]);
}

#[test]
fn corruption_is_detected_on_load_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
    m.save(&ckpt(1, 0.5)).unwrap();
    m.save(&ckpt(2, 0.4)).unwrap();
    let path = m.path(m.best().unwrap()).join("model.safetensors");
    // Flip one byte.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[500] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = m.load_best().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CkptError::Corrupt { .. }));
    assert!(
        text.contains("epoch0002-step0000200/model.safetensors") && text.contains("checksum"),
        "{text}"
    );
    // Truncate another.
    let opt = m.path(m.best().unwrap()).join("optimizer");
    std::fs::write(&opt, b"adam").unwrap();
    let text = m.load_best().unwrap_err().to_string();
    assert!(
        text.contains("optimizer") || text.contains("model.safetensors"),
        "{text}"
    );
    // Reopened, the truncated checkpoint is not listed; the other still is, and loads.
    drop(m);
    let m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
    assert_eq!(epochs(&m), [1]);
    assert!(m.warnings()[0].contains("truncated"), "{:?}", m.warnings());
    m.load_best().unwrap().unwrap();
    // A tampered meta.json.
    let meta = m.path(m.best().unwrap()).join("meta.json");
    std::fs::write(&meta, b"{ not json").unwrap();
    let text = m.load_best().unwrap_err().to_string();
    assert!(
        text.contains("meta.json") && text.contains("unreadable metadata"),
        "{text}"
    );
}

#[test]
fn a_checkpoint_that_fails_verification_is_kept_and_listed_again_once_restored() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("epoch0003-step0000300/model.safetensors");
    let whole = {
        let mut m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
        for (e, v) in [(1, 0.5), (2, 0.4), (3, 0.3)] {
            m.save(&ckpt(e, v)).unwrap();
        }
        std::fs::read(&broken).unwrap()
    };
    std::fs::write(&broken, &whole[..100]).unwrap();
    // Opened twice to write (a resume refused, then tried again) and once to read: the broken
    // checkpoint is reported each time, and never deleted as if retention had dropped it.
    for _ in 0..2 {
        let m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
        assert_eq!(epochs(&m), [1, 2]);
        let [u] = m.unverified() else {
            panic!("{:?}", m.unverified())
        };
        assert_eq!(
            (u.dir.as_str(), u.epoch, u.global_step),
            ("epoch0003-step0000300", 3, 300)
        );
        assert!(
            u.problem.contains("model.safetensors") && u.problem.contains("truncated"),
            "{}",
            u.problem
        );
        assert!(m.warnings()[0].contains("not listed"), "{:?}", m.warnings());
        assert_eq!(m.unverified_since_last(), [u]);
    }
    let view = CheckpointManager::open_read_only(dir.path(), "val_loss", Mode::Min).unwrap();
    assert_eq!(view.unverified().len(), 1);
    assert_eq!(dirs_on_disk(dir.path()).len(), 3);
    // Restored, it is the last and the best again, and loads.
    std::fs::write(&broken, &whole).unwrap();
    let m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
    assert_eq!(epochs(&m), [1, 2, 3]);
    assert!(m.unverified().is_empty() && m.warnings().is_empty());
    assert_eq!(m.load_last().unwrap().unwrap().epoch, 3);
    assert_eq!(m.best().unwrap().epoch, 3);
    // An older one broken leaves the newest state whole.
    drop(m);
    std::fs::remove_file(dir.path().join("epoch0001-step0000100/meta.json")).unwrap();
    let m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
    assert_eq!((epochs(&m), m.unverified().len()), (vec![2, 3], 1));
    assert!(m.unverified_since_last().is_empty());
}

#[test]
fn a_save_beside_a_broken_checkpoint_takes_a_newer_seq_even_without_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("epoch0002-step0000200/optimizer");
    {
        let mut m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
        m.save(&ckpt(1, 0.5)).unwrap();
        m.save(&ckpt(2, 0.4)).unwrap();
    }
    let whole = std::fs::read(&broken).unwrap();
    std::fs::write(&broken, b"").unwrap();
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    {
        let mut m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
        assert_eq!(m.last().unwrap().epoch, 1);
        m.save(&ckpt(5, 0.6)).unwrap();
    }
    std::fs::write(&broken, &whole).unwrap();
    let m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
    assert_eq!(epochs(&m), [1, 2, 5]);
    assert_eq!(m.last().unwrap().epoch, 5);
}

#[test]
fn nan_metrics_survive_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = CheckpointManager::open(dir.path(), 3, "val_loss", Mode::Min).unwrap();
    let mut c = ckpt(1, 0.5)
        .with_metric("grad_norm", f64::NAN)
        .with_metric("lr", f64::INFINITY);
    c.best_metric = Some(0.25);
    m.save(&c).unwrap();
    let back = m.load_last().unwrap().unwrap();
    assert!(back.metrics["grad_norm"].is_nan());
    assert_eq!(back.metrics["lr"], f64::INFINITY);
    assert_eq!(back.best_metric, Some(0.25));
}

/// Every name in `dir`, sorted, with each file's bytes: to check that nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let bytes = if entry.is_file() {
            std::fs::read(&entry).unwrap()
        } else {
            Vec::new()
        };
        out.push((
            entry.strip_prefix(dir).unwrap().display().to_string(),
            bytes,
        ));
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_read_only_view_works_beside_the_writer_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = CheckpointManager::open(dir.path(), 2, "val_loss", Mode::Min).unwrap();
    for (e, v) in [(1, 0.3), (2, 0.1), (3, 0.2), (4, 0.9)] {
        writer.save(&ckpt(e, v)).unwrap();
    }
    // What an interrupted save and an unfinished eviction leave, as the writer may at any time.
    std::fs::create_dir(dir.path().join(".tmp-epoch0005-step0000500")).unwrap();
    std::fs::write(dir.path().join(".tmp-manifest.json"), b"{").unwrap();
    let evicted = dir.path().join("epoch0001-step0000100");
    std::fs::create_dir(&evicted).unwrap();
    for f in std::fs::read_dir(dir.path().join("epoch0002-step0000200")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), evicted.join(f.file_name())).unwrap();
    }
    let before = snapshot(dir.path());

    // The writer holds the lock; the view needs none.
    let mut view = CheckpointManager::open_read_only(dir.path(), "val_loss", Mode::Min).unwrap();
    assert_eq!(epochs(&view), epochs(&writer));
    assert_eq!(view.best().unwrap().epoch, 2);
    assert_eq!(view.last().unwrap().epoch, 4);
    assert_eq!(view.load_best().unwrap().unwrap().epoch, 2);
    let err = view.save(&ckpt(6, 0.05)).unwrap_err();
    assert!(matches!(err, CkptError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(snapshot(dir.path()), before, "a read-only view wrote");

    // The writer goes on; a new view sees its save.
    writer.save(&ckpt(5, 0.05)).unwrap();
    let view = CheckpointManager::open_read_only(dir.path(), "val_loss", Mode::Min).unwrap();
    assert_eq!(view.best().unwrap().epoch, 5);
}

#[test]
fn a_read_only_view_of_a_missing_folder_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("runs/x/checkpoints");
    let err = CheckpointManager::open_read_only(&missing, "val_loss", Mode::Min)
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("no such folder"), "{message}");
    assert!(!dir.path().join("runs").exists());
}
