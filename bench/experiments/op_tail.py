"""`python op_tail.py OLD_SO [KERNEL]` (OLD_SO as op_ab.sh builds it): the old and the
current forward ops and Conv2D at batch 1, called in turn 600 times each; prints each
one's 10th, 50th, 90th and 99th percentile call time (ms). Where op_ab.py's medians
hide it, this shows how often a call runs slow. OP_AB_SHAPE="H,W,C_IN,C_OUT,STRIDE"
as in op_ab.py; KERNEL: 3 (default) or 1."""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adder_tf.ops import adder_fast  # noqa: E402

old, new = tf.load_op_library(sys.argv[1]), adder_fast.load(raise_on_error=True)
k = int(sys.argv[2]) if len(sys.argv) > 2 else 3
h, wd, c_in, c_out, s = (int(v) for v in os.environ.get("OP_AB_SHAPE", "7,7,512,512,1").split(","))
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=(1, h, wd, c_in)).astype("float32"))
w = tf.Variable(rng.normal(size=(k, k, c_in, c_out)).astype("float32") * 0.1)
fns = {"old": tf.function(lambda: old.adder_old_conv2d(x, w, stride=s, padding="SAME")),
       "new": tf.function(lambda: new.adder_tf_conv2d(x, w, stride=s, padding="SAME")),
       "conv": tf.function(lambda: tf.nn.conv2d(x, w, s, "SAME"))}
times = {name: [] for name in fns}
for f in fns.values():
    f()
for _ in range(600):
    for name, f in fns.items():
        t0 = time.perf_counter()
        f().numpy()
        times[name].append(1e3 * (time.perf_counter() - t0))
print(f"{h}x{wd}x{c_in} -> {c_out}, {k}x{k} /{s}, batch 1:")
for name, v in times.items():
    v = sorted(v)
    print(f"  {name}: p10 {v[60]:.3f} median {v[300]:.3f} p90 {v[540]:.3f} p99 {v[594]:.3f}")
