"""Per-op times inside whole ResNet-20 training steps (batch 128), CNN and ANN.

    python bench/experiments/step_ops.py [--inter_op N]

TF profiler over 5 steps after warm-up; per step, the summed duration of
each op type's events, split by ResNet stage where the op's name says it
(the adder op's gradients carry no layer name: given as totals and per op).
With --inter_op 1 the executor runs one op at a time, so an op's duration is
its own time on both intra-op threads; by default ops overlap and durations
include waiting for threads that another op holds.
"""
import collections
import glob
import re

from inter_op_setup import inter_op_from_argv

INTER_OP = inter_op_from_argv()

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from adder_bench import make_train_step  # noqa: E402

STEPS = 5
KINDS = {"_MklNativeConv2D": "forward", "AdderTfConv2D": "forward",
         "_MklNativeConv2DBackpropInput": "input_grad", "AdderTfConv2DInputGrad": "input_grad",
         "_MklNativeConv2DBackpropFilter": "filter_grad"}


def profile(flavour):
    step, trace, x, y = make_train_step(flavour, 128, "fast")
    trace()
    for _ in range(3):
        step(x, y)
    logdir = f"/tmp/step_ops_{flavour}"
    if tf.io.gfile.exists(logdir):
        tf.io.gfile.rmtree(logdir)
    tf.profiler.experimental.start(logdir)
    for _ in range(STEPS):
        step(x, y).numpy()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    per_op = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" in name:
                    per_op[name] += ev.duration_ps / 1e9 / STEPS
    return per_op


for flavour in ("conv", "adder"):
    per_op = profile(flavour)
    table = collections.Counter()
    for name, ms in per_op.items():
        op, kind = name.rsplit(":", 1)
        if kind not in KINDS:
            continue
        stage = re.search(r"(stage\d)_", op)
        table[(KINDS[kind], stage.group(1) if stage else "unnamed")] += ms
    busy = per_op.get("ExecutorState::Process", float("nan"))
    print(f"{flavour}: executor busy {busy:.1f} ms/step (inter_op={INTER_OP or 'default'})")
    for key in sorted(table):
        print(f"  {key[0]:12s} {key[1]:8s} {table[key]:7.2f} ms")
    grads = sorted(ms for name, ms in per_op.items() if name.endswith(":AdderTfConv2DInputGrad"))
    if grads:
        print("  adder input-gradient ops, ms each:", " ".join(f"{g:.2f}" for g in grads))
