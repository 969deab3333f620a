"""Speed and memory of AdderConv2D against keras Conv2D, on this machine.

    python bench/adder_bench.py [--quick] [--reps N] [--no_reference]
                                [--skip_layers] [--skip_step] [--skip_memory] [--skip_xla]
    python bench/adder_bench.py --imagenet [--budget_minutes M] [--reps N]
                                [--imagenet_train_size {224,112}] [--smoke]

(--reps sets the layer rounds and the batch-32 step rounds; the batch-128
steps with --quick take 9 rounds, the XLA steps 3, or 5 without --quick.)

The sections below are ResNet-20's (CIFAR). --imagenet runs instead the
ImageNet sections, ResNet-18 and ResNet-50 at 224x224: every distinct adder
layer shape, whole-model inference and a ResNet-18 training step, each adder
against Conv2D side by side (imagenet_bench.py says how); --smoke runs them
in a minute at tiny batches to check the bench.

Prints one JSON object on stdout (progress goes to stderr).

layers:  forward+backward (grads w.r.t. input and kernel) of one layer, inside
         a tf.function (jit_compile=False), median wall time of repeated runs
         after warm-up, for Conv2D and both adder paths (fast, reference), on
         ResNet-20's shapes; each adder path runs against Conv2D in rounds of
         its own (conv, adder, conv, adder, ...; the reference path with a
         third of the rounds). ratio_* = median over rounds of adder time /
         conv time in that round; conv_ms is from the fast path's rounds.
headline: the worst (largest) fast-path ratio over the three stage shapes at
         batch 32.
train_step: one SGD training step (forward, backward, apply) of the whole
         ResNet-20, ANN vs CNN; also whole KD and PKKD steps (CNN
         teacher step + ANN student step, with the heads and feature loss for
         PKKD, alpha = beta = 10; at batch 128 with --quick, at both batches
         without). Each step against the CNN step in rounds of its own (two
         steps a round), PKKD against KD for the heads' share; ratios are
         medians over rounds, cnn_ms the median over all pairs. The plain-TF
         ANN step (ratio_reference) is timed apart and its ratio is a quotient
         of medians.
memory:  peak resident set size of the training step at batch 128, each
         configuration in a fresh subprocess: VmHWM (the process's high-water
         mark of RSS, reset just before the first step) after 3 steps minus
         the RSS right before the first step (model, optimizer and batch
         already built). The delta is what the step itself (tracing,
         activations kept for backward, gradients, temporaries) adds on top.
         (Tracing and XLA's compiler are inside it: freed memory stays
         resident, so RSS does not come down after the first step.)
xla:     the ANN and PKKD ResNet-20 steps at batch 128 compiled with XLA
         (jit_compile=True: the adder layers take the XLA form of the portable
         path, `adder_tf.ops.adder_xla`) against the same steps without XLA
         (compiled adder op), each pair side by side round by round;
         first-call seconds (XLA's compile; for pkkd and pkkd_xla the trace
         too, the ANN steps being traced beforehand); and each step's peak memory
         as above (fresh subprocess per configuration, VmHWM, XLA's compiler
         included). Each child also records
         tf.config.experimental.get_memory_info('CPU:0'): TF's allocator, from
         which XLA's buffers come too, without the compiler's memory; its peak
         counts from process start (model building included) and misses what
         is not allocated through it.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from adder_tf import AdderConv2D  # noqa: E402
from adder_tf import ops as adder_ops  # noqa: E402
import imagenet_bench  # noqa: E402
from bench_common import (_block, cpu_model, interleaved, layer_step,  # noqa: E402,F401
                          load_between, machine_load, make_distill_step, make_train_step,
                          median_time, progress, random_batch, source_commit)
from memory_bench import bench_memory, cpu_memory_info  # noqa: E402

# (name, H, W, c_in, c_out, kernel, stride)
SHAPES = [
    ("stage1_32x32x16_16_k3s1", 32, 32, 16, 16, 3, 1),
    ("stage2_16x16x32_32_k3s1", 16, 16, 32, 32, 3, 1),
    ("stage3_8x8x64_64_k3s1", 8, 8, 64, 64, 3, 1),
    ("down_32x32x16_32_k3s2", 32, 32, 16, 32, 3, 2),
    ("shortcut_32x32x16_32_k1s2", 32, 32, 16, 32, 1, 2),
]
STAGES = SHAPES[:3]


def bench_layers(batches, reps, with_reference):
    rows = []
    for batch in batches:
        for name, h, w, cin, cout, k, s in SHAPES:
            rng = np.random.default_rng(0)
            x = tf.constant(rng.normal(size=(batch, h, w, cin)).astype("float32"))
            conv = keras.layers.Conv2D(cout, k, s, padding="same", use_bias=False)
            conv.build(x.shape)
            conv_step = layer_step(conv, x)
            paths = ["fast"] + (["reference"] if with_reference else [])
            row = {"shape": name, "batch": batch}
            for path in paths:
                adder = AdderConv2D(cout, k, s, padding="same", use_bias=False)
                adder.build(x.shape)
                with adder_ops.use_backend(path):
                    step = layer_step(adder, x)
                    step.get_concrete_function(x)   # trace under this backend
                # Each path against conv in rounds of its own: with the plain-TF
                # path (40-70x slower, gigabytes of temporaries) in the same
                # round, the compiled path's ratios came out 0.04-0.40 lower
                # than without it (Intel 167, the same code back to back).
                times, ratios, _ = interleaved(
                    {"conv": lambda: conv_step(x), path: lambda: step(x)},
                    reps if path == "fast" else max(3, reps // 3))
                row["conv_ms" if path == "fast" else "conv_ms_reference_rounds"] = (
                    1e3 * times["conv"])
                row[f"adder_{path}_ms"] = 1e3 * times[path]
                row[f"ratio_{path}"] = ratios[path]
            rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
            progress(json.dumps(rows[-1]))
    return rows


def bench_train_step(batches, reps, with_reference, with_pkkd=False):
    """ANN (and KD, PKKD) steps, each against the CNN step in rounds of its own,
    and PKKD against KD for the heads' share; the plain-TF path, 25-30x slower,
    apart (its ratio a quotient of medians). Two steps per round: each follows
    the other equally often (with three or more per round, one step always ran
    right after the heaviest)."""
    rows = []
    for batch in batches:
        row = {"batch": batch}
        fns = {}
        for flavour, path in (("conv", "cnn"), ("adder", "fast")):
            step, trace, x, y = make_train_step(flavour, batch, path)
            trace()
            fns["cnn" if flavour == "conv" else "ann_fast"] = (
                lambda step, x, y: lambda: step(x, y))(step, x, y)
        if with_pkkd:
            for method in ("kd", "pkkd"):
                fns[method] = make_distill_step(batch, method)
        cnn_rounds = []
        for key in [k for k in fns if k != "cnn"]:
            times, ratios, rounds = interleaved({"cnn": fns["cnn"], key: fns[key]}, reps)
            row[f"{key}_ms"] = 1e3 * times[key]
            row["ratio_fast" if key == "ann_fast" else f"ratio_{key}"] = ratios[key]
            cnn_rounds += rounds["cnn"]
        row["cnn_ms"] = 1e3 * statistics.median(cnn_rounds)
        if with_pkkd:
            # per round, so that the difference of two drifting times is not read off
            _, _, rounds = interleaved({"kd": fns["kd"], "pkkd": fns["pkkd"]}, reps)
            row["heads_and_feature_loss_ms"] = 1e3 * statistics.median(
                [p - k for p, k in zip(rounds["pkkd"], rounds["kd"])])
        if with_reference:
            step, trace, x, y = make_train_step("adder", batch, "reference")
            trace()
            row["ann_reference_ms"] = 1e3 * median_time(lambda: step(x, y), max(3, reps // 3))
            row["ratio_reference"] = row["ann_reference_ms"] / row["cnn_ms"]
        rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
        progress(json.dumps(rows[-1]))
    return rows


def bench_xla(batch, reps, with_memory=True):
    """ANN and PKKD steps with and without XLA, each pair side by side in rounds of
    its own. (With the CNN step in the same rounds, the CNN step that followed the
    XLA PKKD step ran up to 18% slower than in `train_step`: the step ratios
    against the CNN are train_step's.)"""
    fns, first_call_s = {}, {}
    for key, jit in (("ann", False), ("ann_xla", True)):
        step, trace, x, y = make_train_step("adder", batch, "auto" if jit else "fast", jit)
        trace()
        fns[key] = (lambda step, x, y: lambda: step(x, y))(step, x, y)
    for key, jit in (("pkkd", False), ("pkkd_xla", True)):
        fns[key] = make_distill_step(batch, "pkkd", jit)
    for key, fn in fns.items():    # the first call traces and, with XLA, compiles
        t0 = time.perf_counter()
        _block(fn())
        first_call_s[key] = round(time.perf_counter() - t0, 1)
        progress(f"xla section: first call of {key}: {first_call_s[key]} s")
    out = {"batch": batch, "rounds": reps, "first_call_s": first_call_s}
    for base in ("ann", "pkkd"):
        xla = f"{base}_xla"
        times, ratios, _ = interleaved({base: fns[base], xla: fns[xla]}, reps,
                                       warmup=0)   # the first calls warmed up
        out[f"{base}_ms"] = round(1e3 * times[base], 1)
        out[f"{xla}_ms"] = round(1e3 * times[xla], 1)
        out[f"ratio_{xla}_over_{base}"] = round(ratios[xla], 3)
    progress(json.dumps(out))
    if with_memory:
        out["memory"] = bench_memory(batch, False, [
            ("conv", "auto", "cnn"), ("adder", "fast", "ann"), ("adder", "auto", "ann_xla", True),
            ("pkkd", "fast", "pkkd"), ("pkkd", "auto", "pkkd_xla", True)])
        out["memory"]["get_memory_info_cpu"] = str(cpu_memory_info())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions; the reference path only at batch 32 for the "
                        "training step, and not in the memory test")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--skip_layers", action="store_true")
    p.add_argument("--skip_step", action="store_true")
    p.add_argument("--skip_memory", action="store_true")
    p.add_argument("--skip_xla", action="store_true", help="skip the jit_compile=True steps")
    p.add_argument("--no_reference", action="store_true", help="skip the plain-TF path")
    p.add_argument("--imagenet", action="store_true",
                   help="only the ImageNet sections (ResNet-18/50 layers, inference, step)")
    p.add_argument("--budget_minutes", type=float, default=12.0,
                   help="with --imagenet: time for the timed rounds (building, tracing and "
                        "warm-up add 3-5 minutes on 2 cores); --reps fixes the rounds instead")
    p.add_argument("--imagenet_train_size", type=int, default=224, choices=(224, 112),
                   help="with --imagenet: image size of the ResNet-18 training step")
    p.add_argument("--smoke", action="store_true",
                   help="with --imagenet: every section at tiny batches, one round each")
    a = p.parse_args()
    if a.smoke and not a.imagenet:
        p.error("--smoke goes with --imagenet")
    if a.reps is not None and a.reps < 1:
        p.error(f"--reps must be at least 1, got {a.reps}")
    if not a.budget_minutes > 0:
        p.error(f"--budget_minutes must be positive, got {a.budget_minutes}")

    reps = a.reps or (5 if a.quick else 15)
    layer_reps = a.reps or (15 if a.quick else 31)     # milliseconds each: cheap
    rounds = {"layers": layer_reps, "layers_reference": max(3, layer_reps // 3),
              "train_step": max(3, reps // 3), "xla": 3 if a.quick else 5}
    if a.quick:   # batch 32 at `train_step` rounds, batch 128 (with KD and PKKD) at 9
        rounds["train_step_batch_128"] = 9
    t0, load0 = time.perf_counter(), machine_load()
    adder_ops.load_fast_library()
    info = adder_ops.adder_fast.build_info()
    result = {
        "env": {"tf": tf.__version__, "keras": keras.__version__,
                "cpu": cpu_model(), "machine": platform.machine(), "source": source_commit(),
                "adder_op": {k: info.get(k) for k in ("isa", "vector_width", "target", "flags",
                                                  "fallback_reasons", "machine_isa")},
                "cores": os.cpu_count(),
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "fast_op_build_s_this_run": info["build_seconds"],
                "statistic": "median; ratios: median over rounds of side-by-side runs"},
    }
    if a.imagenet:
        result["imagenet"] = imagenet_bench.run(a.smoke, a.budget_minutes,
                                                a.imagenet_train_size, a.reps)
    else:
        result["env"]["rounds"] = rounds
        run_cifar_sections(a, result, rounds, layer_reps)
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    result["env"]["machine_load"] = load_between(load0, machine_load())
    print(json.dumps(result, indent=1))


def run_cifar_sections(a, result, rounds, layer_reps):
    ref = not a.no_reference
    if not a.skip_layers:
        rows = bench_layers([32, 128], layer_reps, ref)
        result["layers"] = rows
        stage32 = [r for r in rows if r["batch"] == 32 and r["shape"] in {s[0] for s in STAGES}]
        worst = max(stage32, key=lambda r: r["ratio_fast"])
        result["headline"] = {
            "what": "adder(fast)/conv fwd+bwd time, worst of the 3 ResNet-20 stage shapes, batch 32",
            "ratio": worst["ratio_fast"], "shape": worst["shape"]}
        if ref:
            result["headline"]["ratio_reference_same_shape"] = worst["ratio_reference"]
    if not a.skip_step:
        result["train_step"] = bench_train_step([32] if a.quick else [32, 128],
                                                rounds["train_step"], ref, with_pkkd=not a.quick)
        if a.quick:
            result["train_step"] += bench_train_step([128], rounds["train_step_batch_128"],
                                                     False, with_pkkd=True)
    if not a.skip_memory:
        result["memory"] = bench_memory(128, ref and not a.quick)
    if not a.skip_xla:
        result["xla"] = bench_xla(128, rounds["xla"], with_memory=not a.skip_memory)


if __name__ == "__main__":
    main()
