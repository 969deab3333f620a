"""The bench's ImageNet sections (`adder_bench.py --imagenet`): ResNet-18 and ResNet-50
at 224x224, adder against Conv2D side by side in one process.

layers:     every distinct adder layer shape of the two ANNs as built by
            adder_tf.models (imagenet_shapes.py), each as an AdderConv2D and a
            keras Conv2D of the same shape (filters, kernel, stride, padding,
            no bias) inside a tf.function (jit_compile=False): forward and
            backward (gradients w.r.t. input and kernel) at batch 32, forward
            only at batch 1 and 32.
inference:  `model(x, training=False)` in a tf.function, ANN against CNN, both
            networks at batch 1 and 8.
train_step: one SGD step (forward, backward, apply) of ResNet-18, ANN against
            CNN, at batch 32 (224x224 unless --imagenet_train_size says 112).

Every item (one shape and batch, one model and batch) is a pair timed in rounds
of its own: conv then adder each round, after a first call (trace) and one
timed warm round. The warm round sets the number of rounds: the item's share of
the budget (--budget_minutes, split 50/25/25 over the three sections and evenly
over a section's items) divided by the warm round's time, within the section's
limits (ROUND_LIMITS); --reps fixes it instead. conv_ms / adder_ms (cnn_ms /
ann_ms) are medians over rounds; ratio is the median over rounds of adder time
/ conv time in the same round. --smoke runs every section at tiny batches, five
layer shapes (one of each kind) and one round each, to check the bench itself.
"""
import statistics
import time

import numpy as np
import tensorflow as tf
import keras

from adder_tf import AdderConv2D
from adder_tf import ops as adder_ops
from adder_tf.models import build_model
from bench_common import _block, interleaved, layer_step, make_train_step, progress
from imagenet_shapes import ARCHS, build_anns, distinct_shapes, pick_kinds

IMAGE_SIZE = 224
CLASSES = 1000
FULL = {"layer_batches": {"fwd_bwd": (32,), "fwd": (1, 32)}, "model_batches": (1, 8),
        "train_batch": 32}
SMOKE = {"layer_batches": {"fwd_bwd": (2,), "fwd": (1, 2)}, "model_batches": (1,),
         "train_batch": 2, "train_size": 64}
SHARES = {"layers": 0.5, "inference": 0.25, "train_step": 0.25}
ROUND_LIMITS = {"layers": (5, 31), "inference": (3, 21), "train_step": (3, 15)}
TARGETS = {"layers_fwd_bwd": 1.5, "layers_fwd": 1.3, "inference": 1.3}


def timed_pair(fns, seconds, limits):
    """Time two functions side by side ({name: fn}, the base first): a first call
    each, one timed warm round, then as many rounds as fit in `seconds` within
    `limits` = (fewest, most). Medians in ms, the median ratio, the rounds."""
    for fn in fns.values():
        _block(fn())
    t0 = time.perf_counter()
    for fn in fns.values():
        _block(fn())
    round_s = time.perf_counter() - t0
    rounds = max(limits[0], min(limits[1], int(seconds / max(round_s, 1e-6))))
    times, ratios, _ = interleaved(fns, rounds, warmup=0)
    base, other = fns
    return {f"{base}_ms": round(1e3 * times[base], 3), f"{other}_ms": round(1e3 * times[other], 3),
            "ratio": round(ratios[other], 3), "rounds": rounds}


def forward_step(layer):
    @tf.function(jit_compile=False)
    def step(x):
        return layer(x)
    return step


def random_input(batch, h, w, c):
    return tf.constant(np.random.default_rng(0).normal(size=(batch, h, w, c)).astype("float32"))


def traced_under_fast(fn, *args):
    """Trace `fn` for `args` with the compiled adder op (raises if it is unavailable)."""
    with adder_ops.use_backend("fast"):
        fn.get_concrete_function(*args)


def bench_layers(shapes, layer_batches, seconds_each, limits):
    rows = []
    for shape in shapes:
        row = {k: shape[k] for k in ("name", "h", "w", "c_in", "c_out", "kernel", "stride",
                                     "padding")}
        row["layers_in"] = {arch: len(names) for arch, names in shape["layers"].items()}
        args = (shape["c_out"], shape["kernel"], shape["stride"])
        conv = keras.layers.Conv2D(*args, padding=shape["padding"], use_bias=False)
        adder = AdderConv2D(*args, padding=shape["padding"], use_bias=False)
        for layer in (conv, adder):
            layer.build((None, shape["h"], shape["w"], shape["c_in"]))
        for mode, batches in layer_batches.items():
            make = layer_step if mode == "fwd_bwd" else forward_step
            conv_fn, adder_fn = make(conv), make(adder)
            for batch in batches:
                x = random_input(batch, shape["h"], shape["w"], shape["c_in"])
                traced_under_fast(adder_fn, x)
                row[f"{mode}_b{batch}"] = timed_pair(
                    {"conv": lambda: conv_fn(x), "adder": lambda: adder_fn(x)},  # noqa: B023
                    seconds_each, limits)
        rows.append(row)
        progress(row["name"], {k: v["ratio"] for k, v in row.items() if isinstance(v, dict)
                               and "ratio" in v})
    return rows


def inference_fn(model):
    @tf.function(jit_compile=False)
    def infer(x):
        return model(x, training=False)
    return infer


def bench_inference(anns, batches, seconds_each, limits):
    rows = []
    for arch, ann in anns.items():
        keras.utils.set_random_seed(0)
        cnn = build_model(arch, "conv", (IMAGE_SIZE, IMAGE_SIZE, 3), CLASSES)
        cnn_fn, ann_fn = inference_fn(cnn), inference_fn(ann)
        for batch in batches:
            x = random_input(batch, IMAGE_SIZE, IMAGE_SIZE, 3)
            traced_under_fast(ann_fn, x)
            rows.append({"arch": arch, "size": IMAGE_SIZE, "batch": batch, **timed_pair(
                {"cnn": lambda: cnn_fn(x), "ann": lambda: ann_fn(x)},  # noqa: B023
                seconds_each, limits)})
            progress(rows[-1])
    return rows


def bench_train_step(batch, size, seconds, limits):
    fns = {}
    for key, flavour, path in (("cnn", "conv", "auto"), ("ann", "adder", "fast")):
        step, trace, x, y = make_train_step(flavour, batch, path, arch="resnet18", size=size,
                                            classes=CLASSES)
        trace()
        fns[key] = (lambda step, x, y: lambda: step(x, y))(step, x, y)
    row = {"arch": "resnet18", "size": size, "batch": batch, "optimizer": "SGD momentum 0.9",
           **timed_pair(fns, seconds, limits)}
    progress(row)
    return row


def worst(rows, key=None):
    """The row (or the row's `key` entry) with the largest ratio, and what it is."""
    pick = (lambda r: r[key]["ratio"]) if key else (lambda r: r["ratio"])
    top = max(rows, key=pick)
    return {"ratio": pick(top), "of": top.get("name") or f"{top['arch']} batch {top['batch']}",
            "median_ratio": round(statistics.median(map(pick, rows)), 3)}


def run(smoke=False, minutes=12.0, train_size=IMAGE_SIZE, reps=None):
    """All three sections; returns the JSON-ready dict."""
    cfg = {**FULL, "train_size": train_size, **(SMOKE if smoke else {})}
    limits = ({k: (reps, reps) for k in ROUND_LIMITS} if reps
              else {k: (1, 1) for k in ROUND_LIMITS} if smoke else ROUND_LIMITS)
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    anns = build_anns(ARCHS, IMAGE_SIZE, CLASSES)
    shapes = distinct_shapes(anns)
    timed_shapes = pick_kinds(shapes) if smoke else shapes
    layer_items = len(timed_shapes) * sum(map(len, cfg["layer_batches"].values()))
    budget = {k: 60 * minutes * share for k, share in SHARES.items()}
    out = {"what": __doc__.split("\n\n")[0].replace("\n", " "), "smoke": smoke,
           "budget_minutes": minutes, "round_limits": limits, "image_size": IMAGE_SIZE,
           "targets": TARGETS, "shapes": shapes, "timed_shapes": [s["name"] for s in timed_shapes]}
    seconds = {"setup": round(time.perf_counter() - t0, 1)}

    t0 = time.perf_counter()
    out["layers"] = bench_layers(timed_shapes, cfg["layer_batches"],
                                 budget["layers"] / layer_items, limits["layers"])
    seconds["layers"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    out["inference"] = bench_inference(anns, cfg["model_batches"],
                                       budget["inference"] / (len(anns) * len(cfg["model_batches"])),
                                       limits["inference"])
    seconds["inference"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    out["train_step"] = bench_train_step(cfg["train_batch"], cfg["train_size"],
                                         budget["train_step"], limits["train_step"])
    seconds["train_step"] = round(time.perf_counter() - t0, 1)

    out["worst"] = {key: worst(out["layers"], key) for key in out["layers"][0]
                    if isinstance(out["layers"][0][key], dict) and "ratio" in out["layers"][0][key]}
    out["worst"]["inference"] = worst(out["inference"])
    out["seconds"] = seconds
    return out
