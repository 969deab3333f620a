"""The compiled adder op: built on first use (see `build`), cached, loaded with tf.load_op_library.

Loading is tried once per process. If the kernels had to be built for a
narrower vector ISA than the CPU offers, one warning line names the reason,
at build time and on every load; if the op cannot be built or loaded, one
warning line says so and the plain-TF path is used.

The op is CPU-only and cannot be compiled by XLA (tf.function(jit_compile=True)
cannot contain it); `adder_tf.ops.adder_conv2d` chooses the path.
"""
import logging
import os
import sys
import threading
import time

import tensorflow as tf

from adder_tf.ops.adder_reference import with_adder_gradients
from adder_tf.ops.build import (ISA_RANK, FastOpUnavailable, build, isa_targets, library_path,
                                machine_isa, read_record)

log = logging.getLogger("adder_tf")

_lock = threading.Lock()
_state = {"module": None, "error": None, "tried": False, "build_seconds": None,
          "path": None, "isa": None, "vector_width": None, "target": None,
          "flags": None, "fallback_reasons": None}


def _say(message, end="\n"):
    print(message, end=end, file=sys.stderr, flush=True)


def degraded_line(got, want, reasons=None):
    """The one warning line a build that runs below this library's best kernels gets, or None.

    Narrower than the CPU: a target failed to build. As wide as the CPU but not
    AVX-512 (AVX2-only x86, ARM, other): the kernels tuned for large layers
    (kernel-row order, multi-image blocks, 7-wide tiles) are AVX-512 only, so the
    figures in docs/speed.md do not describe this machine.
    """
    if ISA_RANK.get(got, 0) < ISA_RANK.get(want, 0):
        reasons = "; ".join(reasons or []) or "no better target was tried"
        return (f"adder_tf: warning: the adder op runs {got} kernels but this CPU offers "
                f"{want} ({reasons}); expect it to be several times slower")
    if got != "avx512":
        return (f"adder_tf: warning: the adder op runs {got} kernels (this CPU has no AVX-512, "
                "which its large-layer paths need); expect ratios to Conv2D above "
                "docs/speed.md's, which are from AVX-512 CPUs")
    return None


def _warn_if_degraded():
    line = degraded_line(_state["isa"], machine_isa(), _state["fallback_reasons"])
    if line:
        _say(line)


def load(raise_on_error=False, targets=None):
    """The loaded op module, building it if needed; None (or raise) if impossible.

    Tried once per process; a failure is logged as one warning line.
    """
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                cxx, path = library_path(targets)
                if not os.path.exists(path):
                    first = (targets or isa_targets())[0]
                    _say(f"adder_tf: building the adder op for {machine_isa()} "
                         f"({' '.join(first[1]) or first[0]}; once per machine) ...", end=" ")
                    t0 = time.perf_counter()
                    try:
                        build(cxx, path, targets)
                    except Exception:
                        _say("failed")
                        raise
                    _state["build_seconds"] = time.perf_counter() - t0
                    _say(f"done in {_state['build_seconds']:.1f} s")
                try:
                    module = tf.load_op_library(path)
                    # The first use is often inside a tf.function (model.fit):
                    # the build-info op must still run eagerly.
                    with tf.init_scope():
                        isa, width = module.adder_tf_build_info()
                except Exception as e:  # tf raises NotFoundError and friends
                    raise FastOpUnavailable(f"loading {path} failed: {e}") from e
                _state.update(read_record(path), module=module, path=path,
                              isa=isa.numpy().decode(), vector_width=int(width))
                _warn_if_degraded()
            except Exception as e:  # never crash: the reference path still works
                _state["error"] = f"{e}"
                log.warning("adder_tf: compiled adder op unavailable, using the "
                            "plain-TF path (%s)", str(e).replace("\n", " ")[:300])
        if _state["module"] is None and raise_on_error:
            raise FastOpUnavailable(
                "the fast adder op is not available: " + str(_state["error"]))
        return _state["module"]


def available():
    return load() is not None


def build_info():
    """What was loaded and how it was built.

    path, build_seconds (None when it came from the cache), error; isa and
    vector_width as reported by the loaded library itself; target and flags
    used for the kernels; fallback_reasons (why better targets failed);
    machine_isa (the best this CPU offers).
    """
    info = {k: _state[k] for k in ("path", "build_seconds", "error", "isa", "vector_width",
                                   "target", "flags", "fallback_reasons")}
    info["machine_isa"] = machine_isa()
    return info


def adder_forward_fast(x, w, stride, padding):
    return load(raise_on_error=True).adder_tf_conv2d(
        x, w, stride=int(stride), padding=padding.upper())


def adder_input_grad_fast(x, w, dy, stride, padding):
    """(dx, sum of dy over batch and positions): the op sums dy as it goes
    (at stride 1 while it reads each dy row; at larger strides in a pass of its own)."""
    dx, dy_sum = load(raise_on_error=True).adder_tf_conv2d_input_grad(
        x, w, dy, stride=int(stride), padding=padding.upper())
    return dx, dy_sum


def adder_conv2d_fast(x, w, strides=1, padding="same"):
    """Adder convolution with the AdderNet gradients, compiled CPU kernels (float32)."""
    load(raise_on_error=True)
    return with_adder_gradients(adder_forward_fast, adder_input_grad_fast, x, w, strides, padding)
