"""Whole ResNet-20 steps at batch 128 (CNN, ANN, KD, PKKD) timed by wall clock AND
by this process's CPU time, side by side round by round.

    python bench/step_cpu_time.py [rounds]

Why CPU time as well: on a 2-core VM that other jobs load to 4-5x its cores,
the wall-clock step ratios of adder_bench.py are decided by time slicing
(once KD, which is a CNN step plus an ANN step, came out faster than the ANN
step alone). Process CPU time counts the work the step's threads did,
whoever else runs; it also counts TensorFlow's thread-pool spinning, so it
is a second opinion, not a replacement. Prints one JSON line.
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adder_bench as ab  # noqa: E402


def main(rounds):
    fns = {}
    for flavour, name in (("conv", "cnn"), ("adder", "ann")):
        step, trace, x, y = ab.make_train_step(flavour, 128, "fast")
        trace()
        fns[name] = (lambda s, x, y: lambda: s(x, y))(step, x, y)
    for method in ("kd", "pkkd"):
        fns[method] = ab.make_distill_step(128, method)
    for fn in fns.values():
        ab._block(fn())
        ab._block(fn())
    wall = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            ab._block(fn())
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    out = {"rounds": rounds, "load_average": os.getloadavg()}
    for times, name in ((wall, "wall"), (cpu, "cpu")):
        out[f"{name}_ms"] = {k: round(1e3 * statistics.median(v)) for k, v in times.items()}
        out[f"{name}_ratio"] = {k: round(statistics.median(
            [a / b for a, b in zip(times[k], times["cnn"])]), 3) for k in times if k != "cnn"}
        out[f"{name}_heads_ms"] = round(1e3 * statistics.median(
            [p - k for p, k in zip(times["pkkd"], times["kd"])]))
    print(json.dumps(out))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
