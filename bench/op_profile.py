"""Where an adder layer's time goes: each op of its step against the conv's.

    python bench/op_profile.py [--batches 32 128] [--reps 15] > profile.json

A layer's forward + backward is three ops on each side: the forward, the
input gradient and the filter gradient (the adder's filter gradient is TF's
conv2d_backprop_filter minus w * sum(dy), the sum coming from the input-
gradient op). Each op runs alone in a tf.function, the six in turn every
round, on the ResNet-20 stage shapes; ratio = median over rounds of adder /
conv in the same round. Throughput is in G element-ops/s, one element-op
being one (position, tap, c_in, c_out) term: a conv spends one FMA on it,
the adder forward two vector ops (min, add) and its input gradient three
(add, clip, FMA), so at equal issue rates the forward ratio would be 2 and
the input-gradient ratio 3. Prints JSON on stdout.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adder_bench import STAGES, cpu_model, interleaved, progress  # noqa: E402
from adder_tf import ops as adder_ops  # noqa: E402
from adder_tf.ops import adder_fast  # noqa: E402
from adder_tf.ops.adder_reference import adder_filter_grad  # noqa: E402


def op_fns(x, w, dy, stride):
    """The six ops of one layer step, each its own tf.function."""
    shape = tf.shape(w)
    strides = [1, stride, stride, 1]
    dy_sum = tf.reduce_sum(dy, axis=[0, 1, 2])   # what the input-gradient op hands over
    return {
        "conv_forward": tf.function(lambda: tf.nn.conv2d(x, w, strides, "SAME")),
        "conv_input_grad": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=strides,
            padding="SAME")),
        "conv_filter_grad": tf.function(lambda: tf.compat.v1.nn.conv2d_backprop_filter(
            x, shape, dy, strides, "SAME")),
        "adder_forward": tf.function(lambda: adder_fast.adder_forward_fast(x, w, stride, "same")),
        "adder_input_grad": tf.function(
            lambda: adder_fast.adder_input_grad_fast(x, w, dy, stride, "same")),
        "adder_filter_grad": tf.function(
            lambda: adder_filter_grad(x, w, dy, stride, "same", dy_sum)),
    }


def profile(batch, reps):
    rows = []
    rng = np.random.default_rng(0)
    for name, h, wd, cin, cout, k, s in STAGES:
        x = tf.constant(rng.normal(size=(batch, h, wd, cin)).astype("float32"))
        w = tf.constant(0.1 * rng.normal(size=(k, k, cin, cout)).astype("float32"))
        oh, ow = -(-h // s), -(-wd // s)
        dy = tf.constant(rng.normal(size=(batch, oh, ow, cout)).astype("float32"))
        fns = op_fns(x, w, dy, s)
        # conv_forward first: interleaved() divides by the first fn; the ratios
        # below are taken pairwise from the per-round times instead.
        medians, _, times = interleaved(fns, reps)
        terms = batch * oh * ow * k * k * cin * cout
        row = {"shape": name, "batch": batch}
        for op in ("forward", "input_grad", "filter_grad"):
            a, c = times[f"adder_{op}"], times[f"conv_{op}"]
            row[f"{op}_conv_ms"] = round(1e3 * medians[f"conv_{op}"], 3)
            row[f"{op}_adder_ms"] = round(1e3 * medians[f"adder_{op}"], 3)
            row[f"{op}_ratio"] = round(float(np.median(np.array(a) / np.array(c))), 3)
            row[f"{op}_conv_gel_s"] = round(terms / medians[f"conv_{op}"] / 1e9, 1)
            row[f"{op}_adder_gel_s"] = round(terms / medians[f"adder_{op}"] / 1e9, 1)
        total_a = np.sum([times[f"adder_{op}"] for op in ("forward", "input_grad", "filter_grad")], 0)
        total_c = np.sum([times[f"conv_{op}"] for op in ("forward", "input_grad", "filter_grad")], 0)
        row["sum_of_ops_ratio"] = round(float(np.median(total_a / total_c)), 3)
        rows.append(row)
        progress(json.dumps(row))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    p.add_argument("--reps", type=int, default=15)
    a = p.parse_args()
    adder_ops.load_fast_library()
    info = adder_fast.build_info()
    result = {"env": {"tf": tf.__version__, "cpu": cpu_model(), "cores": os.cpu_count(),
                      "adder_op": {k: info.get(k) for k in ("isa", "vector_width", "target")},
                      "reps": a.reps,
                      "statistic": "median time per op; ratio: median over rounds of "
                                   "adder / conv in the same round"},
              "ops": [row for b in a.batches for row in profile(b, a.reps)]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
