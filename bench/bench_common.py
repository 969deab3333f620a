"""What the bench scripts share: the CPU's description, the run's commit and
machine load, side-by-side timing in rounds, and the layer and training steps
they time."""
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

from adder_tf import ops as adder_ops  # noqa: E402


def cpu_model():
    """The CPU's model name, family / model / stepping (x86) or implementer / part
    (ARM), and its vector flags, from /proc/cpuinfo: a model name such as
    "Intel(R) Xeon(R) Processor" alone does not say which CPU it is."""
    name, flags, ids = platform.processor() or platform.machine(), set(), {}
    id_keys = {"cpu family": "family", "model": "model_number", "stepping": "stepping",
               "CPU implementer": "implementer", "CPU part": "part"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name in ("", platform.machine()):
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                elif key in id_keys and id_keys[key] not in ids:
                    ids[id_keys[key]] = value.strip()
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
              "avx512_fp16", "amx_tile", "asimd", "sve")
    return {"model": name, **ids, "vector_flags": [f for f in wanted if f in flags]}



def source_commit():
    """The commit this bench runs from and whether tracked files differ from it
    (None outside a git checkout): a JSON then names the code it measured."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        def git(*args):
            return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                                  check=True, timeout=30).stdout.strip()
        return {"commit": git("rev-parse", "HEAD"),
                "local_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def machine_load(stat_path="/proc/stat"):
    """A snapshot for `load_between`: the 1-minute load average and the
    all-CPU jiffies of /proc/stat's first line (each None where the system
    does not give it)."""
    jiffies = load = None
    try:
        with open(stat_path) as f:
            fields = f.readline().split()
        if fields and fields[0] == "cpu":
            jiffies = [int(v) for v in fields[1:]]
    except (OSError, ValueError):
        pass
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):   # no load average (no /proc, Windows)
        pass
    return {"load_1min": load, "jiffies": jiffies}


def load_between(start, end):
    """What else ran during a bench: the load averages at its start and end (a
    quiet 2-core machine reads below 1 at the start), and the share of CPU time
    the hypervisor gave to other guests (steal, /proc/stat's 8th field), which
    slows the two sides of a round unevenly."""
    out = {"load_1min_start": start["load_1min"], "load_1min_end": end["load_1min"]}
    if start["jiffies"] and end["jiffies"] and min(len(start["jiffies"]), len(end["jiffies"])) >= 8:
        delta = [b - a for a, b in zip(start["jiffies"], end["jiffies"])]
        out["steal_percent"] = round(100 * delta[7] / max(sum(delta[:8]), 1), 2)
    return out


def progress(*a):
    print(*a, file=sys.stderr, flush=True)


def median_time(fn, reps, warmup=2):
    for _ in range(warmup):
        _block(fn())
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fns, reps, warmup=2):
    """Each fn once per round, `reps` rounds: median time of each, and for every fn
    but the first the median over rounds of (its time / the first fn's time).

    On a shared 2-core VM the speed of the machine drifts by tens of percent
    within a minute; timing the two sides of a ratio in the same round makes
    the drift hit both alike (separate medians gave 1.4x to 2.5x for one
    layer ratio in four runs of the same code).
    """
    for _ in range(warmup):
        for fn in fns.values():
            _block(fn())
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            _block(fn())
            times[k].append(time.perf_counter() - t0)
    base = next(iter(fns))
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median([a / b for a, b in zip(times[k], times[base])])
              for k in fns if k != base}
    return medians, ratios, times


def _block(out):
    for t in tf.nest.flatten(out):
        t.numpy() if hasattr(t, "numpy") else t


def layer_step(layer, x=None):
    """Forward and backward of one layer (`x`, unused, is there for older callers). The loss is returned: the gradients of
    a convolution need only x, w and dy, so a step that returned only them would
    let TensorFlow prune the forward pass away (it did: the layer ratios
    measured that way were backward-only)."""
    @tf.function(jit_compile=False)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * 1e-3)
        dx, dw = tape.gradient(loss, [x, layer.kernel])
        return dx, dw, loss
    return step



def make_train_step(flavour, batch, path, jit_compile=False, arch="resnet20", size=32,
                    classes=10):
    """One SGD training step of `arch` (size x size x 3 inputs, `classes` classes) and
    a function that traces it with the adder path `path`."""
    from adder_tf.models import build_model
    keras.utils.set_random_seed(0)
    model = build_model(arch, flavour, (size, size, 3), classes)
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = random_batch(batch, size, classes)

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply(grads, model.trainable_variables)
        return loss

    def trace():
        with adder_ops.use_backend(path if flavour == "adder" else "auto"):
            step.get_concrete_function(x, y)
    return step, trace, x, y


def make_distill_step(batch, method="pkkd", jit_compile=False):
    """One whole distillation step as the trainer runs it: teacher CE step + student
    step, both optimizers. pkkd: + 18 heads and the feature loss; kd: logits only,
    so pkkd - kd is what the heads and feature loss cost."""
    from adder_tf import distill
    from adder_tf.models import build_model, tap_names
    from adder_tf.optim import AdderSGD
    keras.utils.set_random_seed(0)
    student = build_model("resnet20", "adder", (32, 32, 3), 10)
    teacher = build_model("resnet20", "conv", (32, 32, 3), 10)
    if method == "pkkd":
        pairs = [(n, n) for n in tap_names(student)]
        trainer = distill.PKKD(teacher, student, taps=pairs, alpha=10.0, beta=10.0)
    else:
        trainer = distill.KD(teacher, student, alpha=10.0)
    opt = AdderSGD(0.01, momentum=0.9, l2=5e-4)
    trainer.compile(optimizer=opt, teacher_optimizer=AdderSGD(0.01, momentum=0.9, eta=0.0))
    x, y = random_batch(batch, 32, 10)
    step = tf.function(trainer.train_step, jit_compile=jit_compile)
    return lambda: step((x, y))


def random_batch(batch, size, classes):
    """Fixed random images (batch, size, size, 3) and integer labels below `classes`."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, size, size, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, classes, size=(batch,)))
    return x, y
