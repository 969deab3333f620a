"""TF profiler over the stage-1 forward at batch 128: the adder op alone, then the conv alone.
Its output is printed, not kept as data (docs/speed_2026-12-03.md)."""
import os, glob, collections, statistics
import paths  # noqa: F401  (the repository and bench/ on sys.path)
import numpy as np, tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2
from adder_tf.ops import adder_fast
rng = np.random.default_rng(0)
B, H, C = 128, 32, 16
x = tf.constant(rng.normal(size=(B, H, H, C)).astype("float32"))
w = tf.constant(0.1 * rng.normal(size=(3, 3, C, C)).astype("float32"))
f = tf.function(lambda: adder_fast.adder_forward_fast(x, w, 1, "same"))
c = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME"))
for _ in range(5): f(); c()
for name, fn in (("adder", f), ("conv", c)):
    logdir = "/tmp/prof/opdur_" + name; os.system(f"rm -rf {logdir}")
    tf.profiler.experimental.start(logdir)
    for _ in range(20): fn()
    tf.profiler.experimental.stop()
    xs = xplane_pb2.XSpace(); xs.ParseFromString(open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb").read())
    d = collections.defaultdict(list)
    for plane in xs.planes:
        if not plane.name.startswith("/host:CPU"): continue
        md = plane.event_metadata
        for line in plane.lines:
            for ev in line.events:
                d[(line.name[:14], md[ev.metadata_id].name[:60])].append(ev.duration_ps / 1e9)
    print("==", name)
    for k, v in sorted(d.items(), key=lambda kv: -sum(kv[1]))[:14]: print("   ", k, len(v), round(statistics.median(v), 3), round(sum(v) / 20, 3))
