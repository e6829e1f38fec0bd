"""Baseline for `cargo xtask bench results`: the seed's ResultsTracker on the same files.
Usage: bench_results.py best FILE_DIR METRIC  |  bench_results.py log OUT_DIR N CONFIG_JSON
Prints one JSON object with the timings."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from seed_results_tracker import ResultsTracker  # noqa: E402


def main():
    if sys.argv[1] == "best":
        tracker = ResultsTracker(sys.argv[2])
        start = time.perf_counter()
        best = tracker.get_best_result(sys.argv[3], "min")
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "experiment_name": best["experiment_name"]}))
    else:
        out, n, config = sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
        tracker = ResultsTracker(out)
        start = time.perf_counter()
        for i in range(n):
            tracker.log_result(f"run{i}", config, {"val_loss": i * 1e-3, "validity": 0.9}, {"best": f"runs/{i}/best"})
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "per_second": n / seconds}))


if __name__ == "__main__":
    main()
