"""The seed project's ResultsTracker, kept verbatim in behaviour as the baseline and oracle for
xp-results: one JSON object per line, appended with open(..., "a"); every query re-reads the whole
file with json.loads per line; a missing metric counts as +/- infinity."""

import json
from datetime import datetime
from pathlib import Path


class ResultsTracker:
    def __init__(self, results_dir="results"):
        self.results_dir = Path(results_dir)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self.results_file = self.results_dir / "results.jsonl"

    def log_result(self, experiment_name, config, metrics, artifacts=None):
        result = {
            "timestamp": datetime.now().isoformat(),
            "experiment_name": experiment_name,
            "config": config,
            "metrics": metrics,
            "artifacts": artifacts or {},
        }
        with open(self.results_file, "a") as f:
            f.write(json.dumps(result) + "\n")

    def load_results(self):
        if not self.results_file.exists():
            return []
        results = []
        with open(self.results_file) as f:
            for line in f:
                results.append(json.loads(line))
        return results

    def get_best_result(self, metric, mode="min"):
        results = self.load_results()
        if not results:
            return None
        if mode == "min":
            return min(results, key=lambda r: r["metrics"].get(metric, float("inf")))
        return max(results, key=lambda r: r["metrics"].get(metric, float("-inf")))
