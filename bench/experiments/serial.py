"""One layer's fwd+bwd with the filter gradient waiting for the op's sum of dy (serial) or
taking its own (concurrent). Its output is printed, not kept as data (docs/speed_2026-12-03.md)."""
from layer_steps import adder_step, batch_of, conv_step

from adder_bench import interleaved
from adder_tf.ops import adder_fast

orig = adder_fast.adder_input_grad_fast


def dx_only(x, w, dy, stride, padding):
    """The op's dx alone: the filter gradient then takes its own sum of dy."""
    return orig(x, w, dy, stride, padding)[0]


for batch, (h, cin, cout) in [(32, (32, 16, 16)), (128, (32, 16, 16)), (128, (8, 64, 64)),
                              (32, (8, 64, 64))]:
    x = batch_of(batch, h, cin)
    cs, fs = conv_step(x, cout), adder_step(x, cout)
    adder_fast.adder_input_grad_fast = dx_only
    fs2 = adder_step(x, cout)
    adder_fast.adder_input_grad_fast = orig
    times, ratios, _ = interleaved({"conv": lambda: cs(x), "serial": lambda: fs(x), "concurrent": lambda: fs2(x)}, 21)
    print(batch, h, {k: round(v * 1e3, 2) for k, v in times.items()}, {k: round(v, 3) for k, v in ratios.items()}, flush=True)
