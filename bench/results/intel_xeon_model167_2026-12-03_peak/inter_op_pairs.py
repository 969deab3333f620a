"""ANN / CNN whole ResNet-20 steps at batch 128, in pairs (9 rounds, 3 runs),
with TensorFlow's default inter-op threads or with one op at a time.

    python bench/results/intel_xeon_model167_2026-12-03_peak/inter_op_pairs.py [--inter_op 1]
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path[:0] = [os.path.join(ROOT, "bench"), ROOT]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

parser = argparse.ArgumentParser()
parser.add_argument("--inter_op", type=int, default=0)
args = parser.parse_args()

import tensorflow as tf  # noqa: E402

if args.inter_op:
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
from adder_bench import interleaved, make_train_step  # noqa: E402

fns = {}
for name, flavour in (("cnn", "conv"), ("ann", "adder")):
    step, trace, x, y = make_train_step(flavour, 128, "fast")
    trace()
    fns[name] = (lambda step, x, y: lambda: step(x, y))(step, x, y)
for _ in range(3):
    medians, ratios, _ = interleaved(fns, 9)
    print(f"inter_op={args.inter_op or 'default'}",
          {k: round(v * 1e3, 1) for k, v in medians.items()}, f"ann/cnn {ratios['ann']:.3f}",
          flush=True)
