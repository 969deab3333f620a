"""`python op_ab.py OLD_SO BATCH [CALLS] [cold]` (see op_ab.sh): the old and the
current compiled ops on 7x7x512 -> 512 3x3 "same", called in turn with Conv2D,
each call timed; prints the medians over calls of new/old and of each over
Conv2D, and the best times (ms). The same load falls on both sides of each
ratio. "cold": each call takes the next of 8 kernels (75 MB, more than twice a
32 MB L3), so w comes from memory as in a whole network's inference, where
the layers' weights together outgrow the caches (ResNet-18: 47 MB).
OP_AB_SHAPE="H,W,C_IN,C_OUT,STRIDE" times another 3x3 "same" layer instead."""
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
cold = len(sys.argv) > 4 and sys.argv[4] == "cold"
new = adder_fast.load(raise_on_error=True)
rng = np.random.default_rng(0)
h, wd, c_in, c_out, s = (int(v) for v in os.environ.get("OP_AB_SHAPE", "7,7,512,512,1").split(","))
x = tf.constant(rng.normal(size=(batch, h, wd, c_in)).astype("float32"))
ws = [tf.Variable(rng.normal(size=(3, 3, c_in, c_out)).astype("float32") * 0.1)
      for _ in range(8 if cold else 1)]
oh, ow = -(-h // s), -(-wd // s)
dy = tf.constant(rng.normal(size=(batch, oh, ow, c_out)).astype("float32"))
fns = {"fwd_old": tf.function(lambda w: old.adder_old_conv2d(x, w, stride=s, padding="SAME")),
       "fwd_new": tf.function(lambda w: new.adder_tf_conv2d(x, w, stride=s, padding="SAME")),
       "conv": tf.function(lambda w: tf.nn.conv2d(x, w, s, "SAME")),
       "igrad_old": tf.function(
           lambda w: old.adder_old_conv2d_input_grad(x, w, dy, stride=s, padding="SAME")[0]),
       "igrad_new": tf.function(
           lambda w: new.adder_tf_conv2d_input_grad(x, w, dy, stride=s, padding="SAME")[0])}
for kind in ("fwd", "igrad"):
    a, b = fns[f"{kind}_old"](ws[0]).numpy(), fns[f"{kind}_new"](ws[0]).numpy()
    print(f"{kind}: outputs bit for bit equal: {np.array_equal(a, b)} (max diff {np.abs(a - b).max():.1e})")
times = {k: [] for k in fns}
n = 0
for _ in range(calls):
    for k, f in fns.items():
        w = ws[n % len(ws)]  # cold: the 7 kernels used since then evicted this one
        n += 1
        t0 = time.perf_counter()
        f(w).numpy()
        times[k].append(time.perf_counter() - t0)


def ratio(a, b):
    return round(statistics.median([p / q for p, q in zip(times[a], times[b])]), 3)


print(f"{h}x{wd}x{c_in} -> {c_out} /{s}, batch {batch}{' cold' if cold else ''}:", {"fwd new/old": ratio("fwd_new", "fwd_old"),
                          "igrad new/old": ratio("igrad_new", "igrad_old"),
                          "fwd old/conv": ratio("fwd_old", "conv"),
                          "fwd new/conv": ratio("fwd_new", "conv")},
      {f"best {k} ms": round(1e3 * min(v), 3) for k, v in times.items()}, flush=True)
