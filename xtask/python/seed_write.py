"""Writes a results log with the seed's ResultsTracker: the 'files written by the seed' side of
the xp-results oracle check. Usage: seed_write.py DIR N SEED"""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from seed_results_tracker import ResultsTracker  # noqa: E402


def main():
    out, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    tracker = ResultsTracker(out)
    for i in range(n):
        model_type = rng.choice(["vae", "autoregressive"])
        config = {
            "name": f"run{i}",
            "model": {"model_type": model_type, "hidden_dim": rng.choice([128, 256, 512])},
            "training": {"learning_rate": rng.choice([1e-4, 3e-4, 1e-3]), "epochs": rng.randint(1, 50)},
        }
        metrics = {"val_loss": round(rng.uniform(0.2, 3.0), 3)}  # rounded: ties happen
        if rng.random() < 0.1:
            del metrics["val_loss"]
        elif rng.random() < 0.03:
            metrics["val_loss"] = float("nan")
        metrics["validity"] = round(rng.random(), 4)
        tracker.log_result(f"{model_type}_{i}", config, metrics, {"best": f"runs/{i}/best"})


if __name__ == "__main__":
    main()
