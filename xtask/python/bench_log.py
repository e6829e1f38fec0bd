"""Baselines for `cargo xtask bench log`: scalars per second, end to end (write N, close), with
tensorboardX's SummaryWriter and TensorBoard's own EventFileWriter.
Usage: bench_log.py DIR N. Prints JSON."""

import json
import sys
import time

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboardX import SummaryWriter


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    start = time.perf_counter()
    w = SummaryWriter(f"{out}/tbx")
    for i in range(n):
        w.add_scalar("loss", i * 0.001, i)
    w.close()
    tbx = n / (time.perf_counter() - start)
    start = time.perf_counter()
    fw = EventFileWriter(f"{out}/tb")
    for i in range(n):
        fw.add_event(Event(wall_time=time.time(), step=i, summary=Summary(value=[Summary.Value(tag="loss", simple_value=i * 0.001)])))
    fw.close()
    tb = n / (time.perf_counter() - start)
    print(json.dumps({"tensorboardX": tbx, "EventFileWriter": tb}))


if __name__ == "__main__":
    main()
