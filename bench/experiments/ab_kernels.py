"""Two checkouts side by side: `python ab_kernels.py ROOT` prints the adder/conv
layer ratios at batch 128 (15 rounds) and two ANN/CNN step ratios (9 rounds)
for the repository at ROOT; run it alternately on two checkouts (each with
its own ADDER_TF_CACHE)."""
import sys, os
root = sys.argv[1]
sys.path[:0] = [root + "/bench", root]
import numpy as np, tensorflow as tf, keras
import adder_bench as B
from adder_tf import AdderConv2D
from adder_tf import ops as adder_ops
assert adder_ops.adder_fast.__file__.startswith(root), adder_ops.adder_fast.__file__
out = {}
for name, h, w, cin, cout, k, s in B.STAGES:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(128, h, w, cin)).astype("float32"))
    conv = keras.layers.Conv2D(cout, k, s, padding="same", use_bias=False); conv.build(x.shape)
    add = AdderConv2D(cout, k, s, padding="same", use_bias=False); add.build(x.shape)
    cs = B.layer_step(conv, x)
    with adder_ops.use_backend("fast"):
        fs = B.layer_step(add, x); fs.get_concrete_function(x)
    _, r, _ = B.interleaved({"conv": lambda: cs(x), "adder": lambda: fs(x)}, 15)
    out[name[:6]] = round(r["adder"], 3)
fns = {}
for nm, fl in (("cnn", "conv"), ("ann", "adder")):
    step, trace, xx, yy = B.make_train_step(fl, 128, "fast"); trace()
    fns[nm] = (lambda step, xx, yy: lambda: step(xx, yy))(step, xx, yy)
for i in range(2):
    m, r, _ = B.interleaved(fns, 9)
    out[f"ann_{i}"] = round(r["ann"], 3)
print(root, out, flush=True)
