"""`python op_ab.py OLD_SO BATCH [CALLS]` (see op_ab.sh): the old and the current
compiled ops on 7x7x512 -> 512 3x3 "same", called in turn with Conv2D, each
call timed; prints the medians over calls of new/old and of each over Conv2D,
and the best times (ms). The same load falls on both sides of each ratio."""
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adder_tf.ops import adder_fast  # noqa: E402

old, batch = tf.load_op_library(sys.argv[1]), int(sys.argv[2])
calls = int(sys.argv[3]) if len(sys.argv) > 3 else (400 if batch == 1 else 25)
new = adder_fast.load(raise_on_error=True)
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=(batch, 7, 7, 512)).astype("float32"))
w = tf.Variable(rng.normal(size=(3, 3, 512, 512)).astype("float32") * 0.1)
dy = tf.constant(rng.normal(size=(batch, 7, 7, 512)).astype("float32"))
fns = {"fwd_old": tf.function(lambda: old.adder_old_conv2d(x, w, stride=1, padding="SAME")),
       "fwd_new": tf.function(lambda: new.adder_tf_conv2d(x, w, stride=1, padding="SAME")),
       "conv": tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")),
       "igrad_old": tf.function(
           lambda: old.adder_old_conv2d_input_grad(x, w, dy, stride=1, padding="SAME")[0]),
       "igrad_new": tf.function(
           lambda: new.adder_tf_conv2d_input_grad(x, w, dy, stride=1, padding="SAME")[0])}
for kind in ("fwd", "igrad"):
    a, b = fns[f"{kind}_old"]().numpy(), fns[f"{kind}_new"]().numpy()
    print(f"{kind}: outputs bit for bit equal: {np.array_equal(a, b)} (max diff {np.abs(a - b).max():.1e})")
times = {k: [] for k in fns}
for _ in range(calls):
    for k, f in fns.items():
        t0 = time.perf_counter()
        f().numpy()
        times[k].append(time.perf_counter() - t0)


def ratio(a, b):
    return round(statistics.median([p / q for p, q in zip(times[a], times[b])]), 3)


print(f"batch {batch}:", {"fwd new/old": ratio("fwd_new", "fwd_old"),
                          "igrad new/old": ratio("igrad_new", "igrad_old"),
                          "fwd old/conv": ratio("fwd_old", "conv"),
                          "fwd new/conv": ratio("fwd_new", "conv")},
      {f"best {k} ms": round(1e3 * min(v), 3) for k, v in times.items()}, flush=True)
