"""Whole ResNet-20 ANN steps at batch 128, serial against concurrent filter gradient (see serial.py).
Its output is printed, not kept as data (docs/speed_2026-12-03.md)."""
import paths  # noqa: F401  (the repository and bench/ on sys.path)
from adder_bench import make_train_step, interleaved
from adder_tf.ops import adder_fast
orig = adder_fast.adder_input_grad_fast
def dx_only(x, w, dy, stride, padding):
    return orig(x, w, dy, stride, padding)[0]
fns = {}
for name, flavour in (("cnn", "conv"), ("serial", "adder"), ("concurrent", "adder")):
    adder_fast.adder_input_grad_fast = dx_only if name == "concurrent" else orig
    step, trace, x, y = make_train_step(flavour, 128, "fast")
    trace()
    fns[name] = (lambda step, x, y: lambda: step(x, y))(step, x, y)
adder_fast.adder_input_grad_fast = orig
for _ in range(2):
    times, ratios, _ = interleaved(fns, 9)
    print({k: round(v * 1e3, 1) for k, v in times.items()}, {k: round(v, 3) for k, v in ratios.items()}, flush=True)
