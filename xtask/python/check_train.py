"""Oracle check for xp-train: short runs of each model, read back with the official tools.
TensorBoard's EventAccumulator must see every summary kind (scalars, weight histograms, the
molecule grid image, the sample text, the hparams row); Python `safetensors` must load the
weights with PyTorch's names and shapes; pandas must read results.jsonl and metrics.jsonl.
The runs use data.max_length = 60.
Usage: check_train.py OUTPUT_DIR HIDDEN LATENT LAYERS"""

import io
import json
import os
import re
import sys

import pandas as pd
from PIL import Image
from safetensors.numpy import load_file
from tb_oracle import check, failures, load
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.custom_scalar.custom_scalars_plugin import CustomScalarsPlugin
from tensorboard.plugins.scalar.scalars_plugin import ScalarsPlugin
from tensorboard.plugins.hparams import plugin_data_pb2

out, hidden, latent, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
results = pd.read_json(os.path.join(out, "results.jsonl"), lines=True)
check(sorted(results["config"].map(lambda c: c["model"]["model_type"])) == ["autoregressive", "diffusion", "gnn", "vae"],
      f"results.jsonl rows: {results['experiment_name'].tolist()}")

for _, row in results.iterrows():
    model = row["config"]["model"]["model_type"]
    run = row["artifacts"]["run_dir"]
    for key in ["best_val_loss", "validity"]:
        check(key in row["metrics"] and row["metrics"][key] == row["metrics"][key], f"{model}: metric {key}")
    # The VAEs (an encoder to a code) report how many validation molecules decode back exactly.
    vae = model in ("vae", "gnn")
    r = row["metrics"].get("reconstruction")
    check((r is not None and 0 <= r <= 1) == vae, f"{model}: reconstruction {r}")
    # Diversity needs a valid molecule: logged exactly when there is one, and then a number.
    validity = row["metrics"].get("validity", 0)
    int_div = row["metrics"].get("int_div1")
    check((int_div is not None and int_div == int_div) == (validity > 0),
          f"{model}: int_div1 {int_div} with validity {validity}")

    acc = load(run)
    tags = acc.Tags()
    for tag in ["train/loss", "train/learning_rate", "train/grad_norm", "val/loss", "samples/validity",
                "perf/tokens_per_second"]:
        check(tag in tags["scalars"], f"{model}: scalar {tag} missing ({tags['scalars']})")
    check(len(acc.Scalars("val/loss")) == row["config"]["training"]["epochs"], f"{model}: one val/loss per epoch")
    check(("val/reconstruction" in tags["scalars"]) == vae, f"{model}: val/reconstruction logged only for VAEs")
    # Each epoch: the samples are valid or invalid for one reason, so the shares sum to 1.
    kinds = [t for t in tags["scalars"] if t.startswith("samples/invalid/")]
    check(len(kinds) == 7, f"{model}: invalid kinds {kinds}")
    validity = [e.value for e in acc.Scalars("samples/validity")]
    for epoch, v in enumerate(validity):
        total = v + sum(acc.Scalars(t)[epoch].value for t in kinds)
        check(abs(total - 1) < 1e-5, f"{model}: epoch {epoch + 1}: validity and invalid shares sum to {total}")
    steps = [e.step for e in acc.Scalars("train/loss")]
    check(steps == list(range(len(steps))) and len(steps) > 0, f"{model}: train/loss steps {steps[:5]}...")
    hist = [t for t in tags["histograms"] if t.startswith("weights/")]
    first_layer = {"autoregressive": "lstm.layers.0.weight_ih", "vae": "decoder.layers.0.weight_ih",
                   "diffusion": "encoder.layers.0.mha.query.weight",
                   "gnn": "graph_layers.0.messages.weight"}[model]
    check(any(first_layer in t for t in hist),
          f"{model}: weight histograms {hist}")
    for t in hist[:3]:
        h = acc.Histograms(t)[-1].histogram_value
        check(h.num > 0 and sum(h.bucket) == h.num, f"{model}: histogram {t} counts")
    if "samples/molecules" in tags["images"]:
        img = acc.Images("samples/molecules")[-1]
        pic = Image.open(io.BytesIO(img.encoded_image_string))
        check(pic.size == (img.width, img.height) and img.width % 200 == 0 and img.height % 200 == 0,
              f"{model}: grid image size {pic.size}")
    text = acc.Tensors("samples/smiles/text_summary")
    if "samples/molecules" not in tags["images"]:
        # The grid draws the valid ones among the first 16 samples (as the seed's log_molecules);
        # a barely trained model may write none there, and then there is no grid.
        for epoch in text:
            listed = epoch.tensor_proto.string_val[0].decode().split("\n")[:16]
            check(all(re.search(r" \(invalid: [a-z ]+\)$", line) for line in listed),
                  f"{model}: no grid image although a sample in {listed} is valid")
    check(len(text) == row["config"]["training"]["epochs"] and text[0].tensor_proto.string_val[0].decode().startswith("- `"),
          f"{model}: samples text")

    hp = load(os.path.join(run, "hparams"))
    content = hp.PluginTagToContent("hparams")
    ssi = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    check(ssi.hparams["model.model_type"].string_value == model, f"{model}: hparams model_type")
    check(ssi.hparams["model.hidden_dim"].number_value == hidden, f"{model}: hparams hidden_dim")
    check(abs(hp.Scalars("hparam/best_val_loss")[0].value - row["metrics"]["best_val_loss"]) < 1e-5,
          f"{model}: hparams metric")

    metrics = pd.read_json(os.path.join(run, "metrics.jsonl"), lines=True)
    check(set(metrics.columns) == {"step", "tag", "value", "wall_time"}, f"{model}: metrics.jsonl columns")
    loss = metrics[metrics.tag == "train/loss"]
    check(len(loss) == len(steps) and abs(loss.value.iloc[-1] - acc.Scalars("train/loss")[-1].value) < 1e-3 * abs(loss.value.iloc[-1]),
          f"{model}: metrics.jsonl mirrors TensorBoard")

    weights = load_file(os.path.join(row["artifacts"]["best_checkpoint"], "model.safetensors"))
    vocab = weights["head.weight"].shape[0]
    if model == "diffusion":
        # One more embedding row: the mask token. Positions: max_length + 1.
        check(weights["embedding.weight"].shape == (vocab + 1, hidden), f"{model}: embedding shape")
        check(weights["position.weight"].shape == (61, hidden), f"{model}: position shape")
        last = f"encoder.layers.{layers - 1}"
        check(weights[f"{last}.mha.query.weight"].shape == (hidden, hidden), f"{model}: query shape")
        check(weights[f"{last}.pwff.linear_inner.weight"].shape == (4 * hidden, hidden),
              f"{model}: feed-forward weight is PyTorch's [out, in]")
        # Norms under PyTorch's names (weight, bias), not Burn's (gamma, beta).
        for norm in [f"{last}.norm_1", f"{last}.norm_2", "norm"]:
            check(weights[f"{norm}.weight"].shape == (hidden,) and weights[f"{norm}.bias"].shape == (hidden,),
                  f"{model}: {norm} as weight and bias")
        check(not any("gamma" in k or "beta" in k for k in weights), f"{model}: Burn's norm names leaked")
        check(f"weights/{last}.norm_1.weight" in tags["histograms"], f"{model}: histograms named as the weights")
    else:
        prefix = "lstm" if model == "autoregressive" else "decoder"
        check(weights["embedding.weight"].shape == (vocab, hidden), f"{model}: embedding shape")
        decoder_in = hidden if model == "autoregressive" else hidden + latent
        check(weights[f"{prefix}.layers.0.weight_ih"].shape == (4 * hidden, decoder_in), f"{model}: weight_ih shape")
        check(weights[f"{prefix}.layers.{layers - 1}.weight_hh"].shape == (4 * hidden, hidden), f"{model}: weight_hh shape")
    check(weights["head.weight"].shape == (vocab, hidden), f"{model}: head.weight is PyTorch's [out, in]")
    check(weights["head.bias"].shape == (vocab,), f"{model}: head.bias")
    if model == "vae":
        check(weights["to_mean.weight"].shape == (latent, hidden), "vae: to_mean shape")
    if model == "gnn":
        # Atom features in, one message weight per bond kind (5), readout of mean and max.
        check(weights["atom_embedding.weight"].shape == (hidden, 31), "gnn: atom_embedding shape")
        last = f"graph_layers.{layers - 1}"
        check(weights[f"{last}.messages.weight"].shape == (5 * hidden, hidden), "gnn: messages shape")
        check(f"{last}.messages.bias" not in weights, "gnn: messages have no bias")
        check(weights[f"{last}.norm.weight"].shape == (hidden,), "gnn: norm under PyTorch's name")
        check(weights["to_mean.weight"].shape == (latent, 2 * hidden), "gnn: to_mean shape")
    check(all(str(w.dtype) == "float32" for w in weights.values()), f"{model}: dtypes")

# The Custom Scalars tab, served by TensorBoard's own plugin over the output folder: the runs'
# layouts merge into one (same charts, no duplicates), and each chart draws scalars of every run.
mux = plugin_event_multiplexer.EventMultiplexer()
mux.AddRunsFromDirectory(out)
mux.Reload()
plugins = {}
tb = base_plugin.TBContext(logdir=out, multiplexer=mux, plugin_name_to_instance=plugins,
                           data_provider=data_provider.MultiplexerDataProvider(mux, out))
plugins["scalars"] = ScalarsPlugin(tb)
custom = CustomScalarsPlugin(tb)
ctx = context.RequestContext()
layout = json.loads(custom.layout_impl(ctx, "") or "{}")
charts = [(c["title"], chart["title"], chart["multiline"]["tag"])
          for c in layout.get("category", []) for chart in c["chart"]]
check([t for _, t, _ in charts] == ["training and validation loss", "validity, uniqueness and novelty",
                                    "invalid samples by kind of mistake"], f"custom scalars layout: {charts}")
for _, row in results.iterrows():
    model = row["config"]["model"]["model_type"]
    run = os.path.relpath(row["artifacts"]["run_dir"], out)
    epochs = row["config"]["training"]["epochs"]
    for _, title, patterns in charts:
        drawn = {}
        for pattern in patterns:
            answer = custom.scalars_impl(ctx, run, pattern, "")
            check(answer["regex_valid"], f"{model}: chart {title!r}: {pattern!r} is not a valid pattern")
            drawn.update({tag: len(events) for tag, events in answer["tag_to_events"].items()})
        check(drawn, f"{model}: chart {title!r} draws nothing for run {run}")
        if title == "invalid samples by kind of mistake":
            check(len(drawn) == 7 and set(drawn.values()) == {epochs},
                  f"{model}: invalid kinds drawn {drawn}, expected 7 with {epochs} points each")

if failures:
    print("xp-train oracle: FAILED")
    for f in failures:
        print("  -", f)
    sys.exit(1)
print(f"xp-train oracle: OK ({len(results)} runs: TensorBoard summaries of every kind, safetensors names and shapes, pandas)")
