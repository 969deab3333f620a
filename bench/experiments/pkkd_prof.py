"""TF profiler over whole distillation steps at batch 128 (`python pkkd_prof.py [pkkd|kd]`): time per op,
the heads' ops apart. Its output is printed, not kept as data (docs/speed_2026-12-03.md)."""
import sys, os, glob, collections, time
import paths  # noqa: F401  (the repository and bench/ on sys.path)
import tensorflow as tf
from adder_bench import make_distill_step
from tensorflow.tsl.profiler.protobuf import xplane_pb2
method = sys.argv[1] if len(sys.argv) > 1 else "pkkd"
step = make_distill_step(128, method)
for _ in range(3): step()
logdir = f"/tmp/prof/log_{method}"
os.system(f"rm -rf {logdir}")
tf.profiler.experimental.start(logdir)
for _ in range(3): step()
tf.profiler.experimental.stop()
f = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
xs = xplane_pb2.XSpace(); xs.ParseFromString(open(f, "rb").read())
tot = collections.Counter(); cnt = collections.Counter()
for plane in xs.planes:
    if not plane.name.startswith("/host:CPU"): continue
    md = plane.event_metadata
    for line in plane.lines:
        for ev in line.events:
            name = md[ev.metadata_id].name
            tot[(line.name, name)] += ev.duration_ps / 1e9 / 3
            cnt[(line.name, name)] += 1
lines = collections.Counter()
for (l, n), v in tot.items(): lines[l] += v
print("lines:", lines.most_common(10))
for (l, n), v in tot.most_common(60): print(f"{v:8.2f} ms  {cnt[(l,n)]//3:4d}x  {l[:20]:20s} {n[:120]}")
print("==== by op type (compute lines only)")
bytype = collections.Counter(); byscope = collections.Counter()
for (l, n), v in tot.items():
    if not l.startswith("tf_Compute") or ":" not in n: continue
    name, typ = n.rsplit(":", 1)
    bytype[typ] += v
    head = "head" in name or typ.startswith("AdderTfExp") or typ.startswith("AdderTfMom")
    side = "teacher" if "conv_tapped" in name or "teacher" in name else "student"
    byscope[("heads" if head else "net", typ)] += v
for k, v in bytype.most_common(25): print(f"{v:8.2f} ms {k}")
print("==== heads")
hs = 0
for (s, t), v in byscope.most_common():
    if s == "heads": print(f"{v:8.2f} ms {t}"); hs += v
print("heads total", hs, "all compute", sum(bytype.values()))
