"""What the TensorBoard-reading oracles share: collected failures and the official reader with
nothing dropped (size_guidance 0 keeps every event, not a reservoir sample)."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def load(path):
    acc = EventAccumulator(path, size_guidance={"scalars": 0, "histograms": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc
