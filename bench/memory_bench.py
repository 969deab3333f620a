"""The bench's memory section (`adder_bench.py`'s `memory`, and the XLA section's):
peak resident memory of a training step, each configuration in a fresh process.

    python bench/memory_bench.py FLAVOUR PATH BATCH [JIT]

is one such child (FLAVOUR conv, adder or pkkd; PATH the adder path; JIT 0
or 1); it prints one JSON object.
"""
import json
import os
import subprocess
import sys

from bench_common import _block, make_distill_step, make_train_step, progress
import tensorflow as tf  # noqa: E402 (after bench_common, which quiets TF's log)


def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024   # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(flavour, path, batch, jit_compile=False):
    """Runs in a fresh process: resident memory the training step adds at its peak.

    Uses the kernel's per-process high-water mark VmHWM (/proc/self/status),
    reset to the current RSS just before the first step by writing 5 to
    /proc/self/clear_refs. (ru_maxrss is not used: Linux carries the parent's
    high-water mark into a child across fork+exec.)
    """
    if flavour == "pkkd":
        run = make_distill_step(batch, "pkkd", jit_compile)
        trace = lambda: None  # noqa: E731 (traced by the first call)
        step = lambda x, y: run()  # noqa: E731
        x = y = None
    else:
        step, trace, x, y = make_train_step(flavour, batch, path, jit_compile)
    before = _status_mb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    trace()
    for _ in range(3):
        _block(step(x, y))
    peak = _status_mb("VmHWM")
    print(json.dumps({"rss_before_mb": round(before, 1), "hwm_reset": reset,
                      "peak_rss_mb": round(peak, 1),
                      "step_peak_delta_mb": round(peak - before, 1),
                      "tf_allocator_mb": _cpu_memory_info_mb()}))


def bench_memory(batch, with_reference, configs=None):
    if configs is None:
        configs = [("conv", "auto", "cnn"), ("adder", "fast", "ann_fast")]
        if with_reference:
            configs.append(("adder", "reference", "ann_reference"))
    out = {"batch": batch, "method": "peak RSS (VmHWM, reset just before the first step) "
           "over trace + 3 training steps, minus RSS before the first step; model, "
           "optimizer and batch already built; fresh subprocess per configuration "
           "(with jit_compile=True this includes XLA's compiler). tf_allocator_mb: "
           "tf.config.experimental.get_memory_info('CPU:0') after the steps: TF's "
           "allocator, which XLA's buffers also come from, peak since process start"}
    for config in configs:
        flavour, path, key = config[:3]
        jit = config[3] if len(config) > 3 else False
        res = subprocess.run([sys.executable, os.path.abspath(__file__),
                              flavour, path, str(batch), str(int(jit))],
                             capture_output=True, text=True)
        if res.returncode != 0:
            errors = [ln for ln in res.stderr.splitlines() if "Error" in ln or "Killed" in ln]
            out[key] = {"error": errors[-3:], "returncode": res.returncode}
            continue
        out[key] = json.loads(res.stdout.strip().splitlines()[-1])
        progress(key, out[key])
    for key in [c[2] for c in configs if c[2] != "cnn"]:
        try:
            out[f"{key}_over_cnn"] = round(out[key]["step_peak_delta_mb"]
                                           / out["cnn"]["step_peak_delta_mb"], 3)
        except (KeyError, TypeError, ZeroDivisionError):
            pass
    return out


def _cpu_memory_info_mb():
    """TF's own allocator statistics for CPU:0 in MB (peak since process start)."""
    info = cpu_memory_info()
    if isinstance(info, dict):
        return {k: round(v / 2 ** 20, 1) for k, v in info.items()}
    return info


def cpu_memory_info():
    try:
        return tf.config.experimental.get_memory_info("CPU:0")
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    flavour, path, batch, *jit = sys.argv[1:]
    memory_child(flavour, path, int(batch), bool(int(jit[0])) if jit else False)
