//! Appends N results to DIR's log: for profiling the append path.
fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: append_many DIR N [CONFIG.json]");
    let n: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .expect("usage: append_many DIR N [CONFIG.json]");
    let log = xp_results::ResultsTracker::open(dir);
    // A config file (JSON) to log, or a small built-in one.
    let config: serde_json::Value = match args.next() {
        Some(path) => {
            serde_json::from_slice(&std::fs::read(path).expect("read config")).expect("JSON config")
        }
        None => {
            serde_json::json!({"model": {"model_type": "vae", "hidden_dim": 256}, "training": {"learning_rate": 1e-4}})
        }
    };
    for i in 0..n {
        log.log_result(
            &format!("run{i}"),
            &config,
            [("val_loss", i as f64)],
            [("best", "runs/best")],
        )
        .expect("append");
    }
}
