"""ANN / CNN whole ResNet-20 steps at batch 128, in pairs (9 rounds, 3 runs),
with TensorFlow's default inter-op threads or with one op at a time.

    python bench/experiments/inter_op_pairs.py [--inter_op 1]
"""
from inter_op_setup import inter_op_from_argv

INTER_OP = inter_op_from_argv()

from adder_bench import interleaved, make_train_step  # noqa: E402

fns = {}
for name, flavour in (("cnn", "conv"), ("ann", "adder")):
    step, trace, x, y = make_train_step(flavour, 128, "fast")
    trace()
    fns[name] = (lambda step, x, y: lambda: step(x, y))(step, x, y)
for _ in range(3):
    medians, ratios, _ = interleaved(fns, 9)
    print(f"inter_op={INTER_OP or 'default'}",
          {k: round(v * 1e3, 1) for k, v in medians.items()}, f"ann/cnn {ratios['ann']:.3f}",
          flush=True)
