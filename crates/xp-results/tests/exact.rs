//! `best` and `top` read lines lazily; their answers must still equal a plain ranking of every
//! valid result, whatever corruption the log holds.

use std::io::Write;

use proptest::prelude::*;
use serde_json::json;
use xp_results::{Entry, Mode, ResultsTracker};

#[derive(Debug, Clone)]
enum Line {
    Result {
        metric: Option<f64>,
        vae: bool,
    },
    /// A record whose config is broken but whose metric would win.
    BadConfig,
    /// A record cut short, then the next one glued to it.
    Torn,
    Garbage,
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        8 => (prop_oneof![Just(None), Just(Some(f64::NAN)), (0u8..6).prop_map(|v| Some(f64::from(v)))], any::<bool>())
            .prop_map(|(metric, vae)| Line::Result { metric, vae }),
        1 => Just(Line::BadConfig),
        1 => Just(Line::Torn),
        1 => Just(Line::Garbage),
    ]
}

fn naive(entries: &[Entry], mode: Mode, n: usize) -> Vec<u64> {
    let mut ranked: Vec<(f64, u64)> = entries
        .iter()
        .filter_map(|e| {
            e.record
                .metrics
                .get("m")
                .filter(|v| !v.is_nan())
                .map(|v| (*v, e.line))
        })
        .collect();
    ranked.sort_by(|a, b| {
        let by_value = match mode {
            Mode::Min => a.0.total_cmp(&b.0),
            Mode::Max => b.0.total_cmp(&a.0),
        };
        by_value.then(a.1.cmp(&b.1))
    });
    ranked.into_iter().take(n).map(|(_, line)| line).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn lazy_answers_equal_a_plain_ranking(lines in prop::collection::vec(line(), 0..60)) {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultsTracker::open(dir.path());
        for (i, l) in lines.iter().enumerate() {
            let name = format!("r{i}");
            match l {
                Line::Result { metric, vae } => {
                    let config = json!({"model": {"model_type": if *vae { "vae" } else { "autoregressive" }}});
                    let metrics: Vec<(&str, f64)> = metric.iter().map(|m| ("m", *m)).collect();
                    log.log_result(&name, &config, metrics, []).unwrap();
                }
                other => {
                    let text: &[u8] = match other {
                        Line::BadConfig => br#"{"timestamp":"t","experiment_name":"bad","config":{"model":{"model_type":vae}},"metrics":{"m":-100},"artifacts":{}}
"#,
                        Line::Torn => br#"{"timestamp":"t","experiment_name":"torn","config":{"model":{"#,
                        _ => b"\x00garbage {\n",
                    };
                    // Through the tracker's file, as another (crashing) writer would.
                    let path = dir.path().join("results.jsonl");
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
                    f.write_all(text).unwrap();
                }
            }
        }
        if !dir.path().join("results.jsonl").exists() {
            return Ok(());
        }
        let all = log.query().all().unwrap();
        // Every record logged is read back, those written after a torn one included.
        let logged: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| matches!(l, Line::Result { .. }))
            .map(|(i, _)| format!("r{i}"))
            .collect();
        let read: Vec<&str> = all.value.iter().map(|e| e.record.experiment_name.as_str()).collect();
        prop_assert_eq!(read, logged);
        let vae_only = log.query().filter("model.model_type == vae").unwrap();
        let all_vae = vae_only.all().unwrap();
        for mode in [Mode::Min, Mode::Max] {
            for n in [1, 3, 100] {
                let top = log.query().top("m", mode, n).unwrap();
                let got: Vec<u64> = top.value.iter().map(|e| e.line).collect();
                prop_assert_eq!(&got, &naive(&all.value, mode, n));
                let got: Vec<u64> = vae_only.top("m", mode, n).unwrap().value.iter().map(|e| e.line).collect();
                prop_assert_eq!(got, naive(&all_vae.value, mode, n));
            }
        }
        // No record that `all` returns is ever missing a bad line's report there.
        let bad = lines.iter().filter(|l| matches!(l, Line::BadConfig | Line::Garbage)).count();
        prop_assert!(all.skipped.len() >= bad);
    }
}
