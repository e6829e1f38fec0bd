//! Times `best` over the log in DIR (min of 5 runs): for profiling the read path.
fn main() {
    let dir = std::env::args().nth(1).expect("usage: best_of DIR METRIC");
    let metric = std::env::args().nth(2).expect("usage: best_of DIR METRIC");
    let query = xp_results::ResultsTracker::open(dir).query();
    let mut fastest = f64::INFINITY;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        let found = query.best(&metric, xp_results::Mode::Min).expect("query");
        fastest = fastest.min(start.elapsed().as_secs_f64());
        assert!(found.value.is_some());
    }
    println!("best: {:.1} ms", fastest * 1e3);
}
