"""One layer's fwd+bwd, conv and adder, timed in blocks and alternated (order within a round).
Its output is printed, not kept as data (docs/speed_2026-12-03.md)."""
import statistics
import time

from layer_steps import adder_step, batch_of, conv_step

for batch, (h, cin, cout) in [(32, (32, 16, 16)), (128, (8, 64, 64)), (32, (8, 64, 64))]:
    x = batch_of(batch, h, cin)
    cs, fs = conv_step(x, cout), adder_step(x, cout)
    def t(f):
        t0 = time.perf_counter(); r = f(x); [v.numpy() for v in r[-1:]]; return time.perf_counter() - t0
    for _ in range(3): t(cs); t(fs)
    blk_c = [t(cs) for _ in range(15)]; blk_f = [t(fs) for _ in range(15)]
    alt = [(t(cs), t(fs)) for _ in range(15)]
    alt2 = [(t(fs), t(cs)) for _ in range(15)]
    m = lambda v: round(statistics.median(v) * 1e3, 2)
    print(batch, h, "blocks: conv", m(blk_c), "fast", m(blk_f), "ratio", round(m(blk_f)/m(blk_c), 3),
          "| alternating conv->fast: conv", m([a for a, b in alt]), "fast", m([b for a, b in alt]),
          "| fast->conv: fast", m([a for a, b in alt2]), "conv", m([b for a, b in alt2]), flush=True)
