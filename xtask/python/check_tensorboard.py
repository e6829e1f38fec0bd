"""Oracle check for xp-log: the official TensorBoard reader (EventAccumulator, plugin_data_pb2)
reads what `cargo run -p xp-log --example all_kinds -- DIR` wrote, and every value is what the
example logged; histograms are recomputed here with torch's algorithm and default bins.
Usage: check_tensorboard.py DIR"""

import glob
import io
import logging
import math
import os
import re
import sys

import numpy as np
import pandas as pd
from PIL import Image
from tb_oracle import check, failures, load
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.util import tensor_util

def f32(x):
    return float(np.float32(x))


def torch_default_bins():
    v, buckets, neg = 1e-12, [], []
    while v < 1e20:
        buckets.append(v)
        neg.append(-v)
        v *= 1.1
    return neg[::-1] + [0] + buckets


def torch_make_histogram(values, bins):
    """torch.utils.tensorboard.summary.make_histogram (max_bins=None)."""
    values = values.reshape(-1)
    counts, limits = np.histogram(values, bins=bins)
    cum_counts = np.cumsum(np.greater(counts, 0))
    start, end = np.searchsorted(cum_counts, [0, cum_counts[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1 : end] if start > 0 else np.concatenate([[0], counts[:end]])
    limits = limits[start : end + 1]
    return dict(min=values.min(), max=values.max(), num=len(values), sum=values.sum(),
                sum_squares=values.dot(values), bucket_limit=limits.tolist(), bucket=counts.tolist())


def scalars(acc, tag):
    return [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]


def check_histogram(acc, tag, values, step):
    events = acc.Histograms(tag)
    check(len(events) == 1 and events[0].step == step, f"{tag}: one histogram at step {step}")
    h = events[0].histogram_value
    want = torch_make_histogram(np.asarray(values, dtype=float), torch_default_bins())
    check(list(h.bucket_limit) == want["bucket_limit"], f"{tag}: bucket limits differ from torch's")
    check(list(h.bucket) == [float(c) for c in want["bucket"]], f"{tag}: bucket counts differ from torch's")
    for k in ("min", "max", "num"):
        check(getattr(h, k) == want[k], f"{tag}: {k} {getattr(h, k)} vs {want[k]}")
    for k in ("sum", "sum_squares"):
        check(math.isclose(getattr(h, k), want[k], rel_tol=1e-9), f"{tag}: {k} {getattr(h, k)} vs {want[k]}")


def main():
    # The readers warn when they purge a crashed session's events, which the resumed run below
    # makes them do on purpose.
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    root = sys.argv[1]
    w = load(os.path.join(root, "writer"))
    got = scalars(w, "loss/train")
    check([s for s, _, _ in got] == list(range(10)), "loss/train steps")
    check([v for _, v, _ in got] == [f32(1 / (1 + s)) for s in range(10)], "loss/train values")
    special = [v for _, v, _ in scalars(w, "special")]
    check(len(special) == 3 and math.isnan(special[0]) and special[1] == math.inf and special[2] == -math.inf,
          f"NaN/inf scalars kept as they are: {special}")
    check(scalars(w, "timed") == [(7, 3.5, 1_700_000_000.25)], f"explicit wall time: {scalars(w, 'timed')}")
    for sub, sign in (("group_run_a", 1), ("group_run_b", -1)):
        g = load(os.path.join(root, "writer", sub))
        check([(s, v) for s, v, _ in scalars(g, "group/run")] == [(s, float(sign * s)) for s in range(3)],
              f"add_scalars sub-run {sub}")
    values = [i * 0.37 - 20.0 for i in range(1000)] + [0.0, 1e-13, 1e6]
    check_histogram(w, "weights/layer0", values, 5)
    check_histogram(w, "weights/f32", [float(np.float32(i * 0.5)) for i in range(100)], 6)
    raw = w.Histograms("raw")[0].histogram_value
    check((raw.min, raw.max, raw.num, raw.sum, raw.sum_squares, list(raw.bucket_limit), list(raw.bucket))
          == (-1.0, 3.0, 6.0, 5.0, 13.0, [0.0, 1.0, 3.0], [1.0, 2.0, 3.0]), "add_histogram_raw")
    for tag, h, wd, c, mode in (("img/grey", 4, 6, 1, "L"), ("img/rgb", 5, 3, 3, "RGB"), ("img/rgba", 2, 7, 4, "RGBA")):
        ev = w.Images(tag)
        check(len(ev) == 1 and ev[0].step == 3, f"{tag}: one image at step 3")
        check((ev[0].width, ev[0].height) == (wd, h), f"{tag}: size {ev[0].width}x{ev[0].height}, expected {wd}x{h}")
        img = Image.open(io.BytesIO(ev[0].encoded_image_string))
        check(img.mode == mode and img.size == (wd, h), f"{tag}: PNG is {img.mode} {img.size}")
        px = np.asarray(img).reshape(h, wd, c)
        want = np.array([[[(y * 7 + x * 3 + ch * 50) % 256 for ch in range(c)] for x in range(wd)] for y in range(h)])
        check((px == want).all(), f"{tag}: pixels differ")
    text = w.Tensors("notes/text_summary")
    check(len(text) == 1 and text[0].tensor_proto.string_val[0].decode() == "**bold** and `code` — ünïcode",
          "text value")
    check(w.SummaryMetadata("notes/text_summary").plugin_data.plugin_name == "text", "text plugin name")

    # The Custom Scalars layout, under the tag and plugin name its plugin reads.
    content = w.PluginTagToContent(custom_scalars.PLUGIN_NAME)
    check(list(content) == [custom_scalars.CONFIG_SUMMARY_TAG], f"custom scalars tags: {sorted(content)}")
    layout = layout_pb2.Layout.FromString(
        w.Tensors(custom_scalars.CONFIG_SUMMARY_TAG)[0].tensor_proto.string_val[0])
    check([c.title for c in layout.category] == ["losses", "empty"], f"layout categories {layout}")
    charts = layout.category[0].chart if layout.category else []
    check([c.title for c in charts] == ["loss and group", "band"], f"layout charts {layout}")
    if len(charts) == 2:
        check(list(charts[0].multiline.tag) == ["loss/.*", "group/run"], f"multiline tags {charts[0]}")
        check(any(re.match(r, "loss/train") for r in charts[0].multiline.tag), "a multiline regex matches loss/train")
        series = charts[1].margin.series
        check(len(series) == 1 and (series[0].value, series[0].lower, series[0].upper) == ("loss/train", "special", "timed"),
              f"margin series {series}")

    hp = load(os.path.join(root, "writer", "hp"))
    content = hp.PluginTagToContent("hparams")
    check(set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"},
          f"hparams tags: {sorted(content)}")
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    types = {i.name: i.type for i in exp.hparam_infos}
    check(types == {"lr": api_pb2.DATA_TYPE_FLOAT64, "model": api_pb2.DATA_TYPE_STRING, "dropout": api_pb2.DATA_TYPE_BOOL},
          f"hparam infos: {types}")
    check([m.name.tag for m in exp.metric_infos] == ["hparam/val_loss", "hparam/validity"], "metric infos")
    ssi = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    check(ssi.hparams["lr"].number_value == 3e-4 and ssi.hparams["model"].string_value == "vae"
          and ssi.hparams["dropout"].bool_value is True, "session start hparams")
    sei = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info
    check(sei.status == api_pb2.STATUS_SUCCESS, "session end status")
    check([v for _, v, _ in scalars(hp, "hparam/val_loss")] == [0.25], "hparams metric scalar")

    # A crashed session resumed from its checkpoint at step 4: both of TensorBoard's readers show
    # each step once, with the resumed session's value from step 4 on, and drop what the crashed
    # session logged past it. The server's reader (plugin_event_accumulator) purges only on a
    # session start that follows another one.
    crashed = glob.glob(os.path.join(root, "runs", "crashed_*"))
    check(len(crashed) == 1, f"one crashed run directory: {crashed}")
    want = [(s, 1.0 + s) for s in range(4)] + [(s, 100.0 + s) for s in range(4, 10)]
    c = load(crashed[0])
    got = [(s, v) for s, v, _ in scalars(c, "train/loss")]
    check(got == want, f"resumed run, EventAccumulator: train/loss {got}")
    server = plugin_event_accumulator.EventAccumulator(crashed[0], size_guidance={"tensors": 0})
    server.Reload()
    got = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in server.Tensors("train/loss")]
    check(got == want, f"resumed run, the server's reader: train/loss {got}")
    configs = [(e.step, e.tensor_proto.string_val[0].decode()) for e in server.Tensors("config/text_summary")]
    check([s for s, _ in configs] == [0, 4] and "seed = 2" in configs[1][1],
          f"resumed run: each session's config, at its first step: {configs}")
    text = server.Tensors("samples/text_summary")
    check(text == [], f"resumed run: the crashed session's text is dropped: {text}")
    df = pd.read_json(os.path.join(crashed[0], "metrics.jsonl"), lines=True, precise_float=True)
    check([(s, v) for s, v in zip(df.step, df.value)] == want, f"resumed run: metrics.jsonl {df.values.tolist()}")

    # A finished run resumed for more epochs: each session's hparams row in a sub-run of its own,
    # since the readers keep the first hparams they see in a folder.
    extended = glob.glob(os.path.join(root, "runs", "extended_*"))
    check(len(extended) == 1, f"one extended run directory: {extended}")
    rows = sorted(d for d in os.listdir(extended[0]) if d.startswith("hparams"))
    check(rows == ["hparams", "hparams-2"], f"extended run: hparams sub-runs {rows}")
    for sub, epochs, loss in (("hparams", 2, 0.5), ("hparams-2", 4, 0.25)):
        if sub not in rows:
            continue  # reported above
        acc = plugin_event_accumulator.EventAccumulator(os.path.join(extended[0], sub), size_guidance={"tensors": 0})
        acc.Reload()
        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        ssi = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        check(ssi.hparams["epochs"].number_value == epochs, f"extended run, {sub}: epochs {ssi.hparams['epochs']}")
        got = [tensor_util.make_ndarray(e.tensor_proto).item() for e in acc.Tensors("hparam/val_loss")]
        check(got == [loss], f"extended run, {sub}: hparam/val_loss {got}")

    run = glob.glob(os.path.join(root, "runs", "demo_*"))
    check(len(run) == 1, f"one run directory: {run}")
    r = load(run[0])
    check([(s, v) for s, v, _ in scalars(r, "train/loss")] == [(s, 2.0 - s * 0.25) for s in range(5)], "logger scalars")
    config = r.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    check("epochs = 2" in config, "config text summary")
    df = pd.read_json(os.path.join(run[0], "metrics.jsonl"), lines=True, precise_float=True)
    check(list(df.columns) == ["step", "tag", "value", "wall_time"], f"metrics.jsonl columns {list(df.columns)}")
    check(len(df) == 11, f"metrics.jsonl rows {len(df)}")
    loss = df[df.tag == "train/loss"]
    check(list(loss.step) == list(range(5)) and list(loss.value) == [2.0 - s * 0.25 for s in range(5)], "metrics.jsonl loss")
    check(math.isnan(df[df.tag == "odd"].value.iloc[0]), "metrics.jsonl NaN")

    if failures:
        print("\n".join("tensorboard oracle: " + f for f in failures))
        sys.exit(1)
    print("tensorboard oracle: every summary kind reads back with the logged values (official EventAccumulator)")


if __name__ == "__main__":
    main()
