"""Oracle check for xp-results: the seed's ResultsTracker and pandas must read our files, and our
answers must equal theirs. Usage: check_results.py WORKDIR (holding answers.json from xtask)."""

import json
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from seed_results_tracker import ResultsTracker  # noqa: E402


def ranked(results, metric, mode, n):
    """Our documented semantics: results without the metric skipped, NaN never ranked,
    ties to the earliest line. Returns 1-based line numbers."""
    keyed = []
    for line, r in enumerate(results, start=1):
        v = r["metrics"].get(metric)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        keyed.append((v if mode == "min" else -v, line))
    keyed.sort()
    return [line for _, line in keyed[:n]]


def config_path(r, path):
    v = r["config"]
    for k in path.split("."):
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def main():
    work = Path(sys.argv[1])
    answers = json.loads((work / "answers.json").read_text())
    failures = []
    for name, ours in answers.items():
        before = len(failures)
        results = ResultsTracker(work / ours["dir"]).load_results()
        expect = {
            "count": len(results),
            "best_min": ranked(results, "val_loss", "min", 1),
            "best_max": ranked(results, "val_loss", "max", 1),
            "top5_min": ranked(results, "val_loss", "min", 5),
            "top5_max_validity": ranked(results, "validity", "max", 5),
            "vae_lines": [i for i, r in enumerate(results, 1) if config_path(r, "model.model_type") == "vae"],
            "lr_below_1e-3": [i for i, r in enumerate(results, 1)
                              if (config_path(r, "training.learning_rate") or 1) < 1e-3],
        }
        for key, value in expect.items():
            if ours[key] != value:
                failures.append(f"{name}: {key}: ours {ours[key]!r}, python {value!r}")
        # Where every result has a finite val_loss, the seed's own get_best_result must agree.
        if all(isinstance(r["metrics"].get("val_loss"), float) and math.isfinite(r["metrics"]["val_loss"])
               for r in results):
            tracker = ResultsTracker(work / ours["dir"])
            for mode in ("min", "max"):
                seed_best = tracker.get_best_result("val_loss", mode)
                line = results.index(seed_best) + 1
                if [line] != ours[f"best_{mode}"]:
                    failures.append(f"{name}: seed get_best_result({mode}) is line {line}, ours {ours[f'best_{mode}']}")
        # pandas reads the file with the seed's columns.
        df = pd.read_json(work / ours["dir"] / "results.jsonl", lines=True, precise_float=True)
        if list(df.columns) != ["timestamp", "experiment_name", "config", "metrics", "artifacts"]:
            failures.append(f"{name}: pandas columns {list(df.columns)}")
        if len(df) != len(results):
            failures.append(f"{name}: pandas read {len(df)} rows, json.loads {len(results)}")
        for row, r in zip(df.itertuples(), results):
            if row.experiment_name != r["experiment_name"] or row.config != r["config"]:
                failures.append(f"{name}: pandas row {row.Index} differs from json.loads")
                break
            for k, v in r["metrics"].items():
                got = row.metrics.get(k)
                same = (got is None or math.isnan(got)) if math.isnan(v) else got == v
                if not same:
                    failures.append(f"{name}: pandas metric {k} on row {row.Index}: {got!r} vs {v!r}")
        if len(failures) == before:
            print(f"results oracle: {name}: {len(results)} results agree with the seed's tracker and pandas")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
