"""The adder op: `adder_conv2d(x, w, strides, padding)` dispatches to a path.

Paths:
  fast       compiled C++ CPU kernels (adder_tf/ops/cc), built with the system
             C++ compiler on first use and cached (see `adder_fast`).
  reference  plain TensorFlow ops; runs anywhere (GPU, XLA), slower. Traced
             inside an XLA cluster (`tf.function(jit_compile=True)`, Keras's
             `compile(jit_compile=True)`, `--jit_compile`) it takes its XLA
             form (`adder_xla`): loops of fused blocks that never form the
             (batch, positions, c_in, c_out) difference block.

Backend choice: `set_backend("auto" | "fast" | "reference")`, or the
environment variable ADDER_TF_BACKEND (read at import). "auto" (the default)
uses the fast path when it builds and loads, no GPU is visible to TensorFlow
(the compiled op has CPU kernels only) and the op is not being traced inside
an XLA cluster (`tf.function(jit_compile=True)` cannot contain custom ops);
otherwise it uses the reference path (in its XLA form inside an XLA
cluster). Inputs that are not float32 always
take the reference path (the compiled kernels are float32). "fast" raises `FastOpUnavailable` when
the op cannot be built, and a clear error under jit_compile=True: train with
jit_compile=False to get the fast kernels.

The fast kernels run on TensorFlow's intra-op thread pool
(`tf.config.threading.set_intra_op_parallelism_threads`), split over
(image, row); each element of the forward output and of the input gradient
is written by one thread in a fixed order, so both are deterministic and
independent of the thread count (the filter gradient is TensorFlow's own
conv2d_backprop_filter).

The choice is made when a function is traced: a tf.function (or Keras
model) traced under one backend keeps it. A SavedModel traced with the fast
path contains the custom ops; load the library (`load_fast_library()`)
before `tf.saved_model.load` in another process, or trace the export under
`use_backend("reference")`.
"""

# The jit_compile default of every model this library compiles (AdderModel, the
# distillers, any ReestimatingFit model): False, where Keras's is "auto" (XLA on a
# GPU), because the compiled CPU op cannot run inside XLA. jit_compile=True is
# honoured: the adder layers then take their XLA form.
JIT_COMPILE = False
import contextlib
import os

import tensorflow as tf

from adder_tf.ops import adder_fast
from adder_tf.ops.adder_fast import FastOpUnavailable, adder_conv2d_fast
from adder_tf.ops.adder_reference import adder_conv2d_reference
from adder_tf.ops.adder_xla import adder_conv2d_xla

BACKENDS = ("auto", "fast", "reference")


def _check(name):
    name = str(name).lower()
    if name not in BACKENDS:
        raise ValueError(f"adder backend must be one of {BACKENDS}, got {name!r}")
    return name


_backend = _check(os.environ.get("ADDER_TF_BACKEND", "auto") or "auto")
_gpu_visible = None


def set_backend(name):
    """Select the adder path for ops traced from now on; "fast" builds it now or raises."""
    global _backend
    name = _check(name)
    if name == "fast":
        adder_fast.load(raise_on_error=True)
    _backend = name


def get_backend():
    return _backend


@contextlib.contextmanager
def use_backend(name):
    """Temporarily select a backend (e.g. to trace an export with the reference path)."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def fast_available():
    """True if the compiled op builds and loads on this machine (builds it on first call)."""
    return adder_fast.available()


def build_info():
    """How the compiled op was built and what it runs: ISA, vector width, flags, fallbacks.

    Builds (or loads) the op if that has not happened yet; `isa` is None when
    it is unavailable, and `error` says why.
    """
    adder_fast.load()
    return adder_fast.build_info()


def load_fast_library():
    """Load the compiled op (so SavedModels that contain it can be loaded); raises if impossible."""
    return adder_fast.load(raise_on_error=True)


def _in_xla_context():
    from adder_tf import _keras_internals as internals   # imports Keras: only when asked
    return internals.in_xla_context()


def _no_gpu():
    global _gpu_visible
    if _gpu_visible is None:
        _gpu_visible = bool(tf.config.list_physical_devices("GPU"))
    return not _gpu_visible


def resolve_backend():
    """The path `adder_conv2d` takes in the current context: "fast", "reference", or
    "xla" (the portable path's XLA form, inside an XLA cluster)."""
    if _backend == "fast":
        if _in_xla_context():
            raise FastOpUnavailable(
                "adder backend 'fast' was forced, but this function is compiled with "
                "XLA (jit_compile=True), which cannot run custom C++ ops; use "
                "jit_compile=False or the 'auto'/'reference' backend")
        adder_fast.load(raise_on_error=True)
        return "fast"
    if _in_xla_context():
        return "xla"
    if _backend == "auto" and _no_gpu() and adder_fast.available():
        return "fast"
    return "reference"


@tf.autograph.experimental.do_not_convert
def adder_conv2d(x, w, strides=1, padding="same"):
    """-sum |x - w| over each window with the AdderNet gradients; NHWC, w (kh, kw, c_in, c_out)."""
    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w, dtype_hint=x.dtype)
    # The compiled kernels are float32 only; other dtypes take the reference path.
    path = resolve_backend()
    if path == "xla":
        return adder_conv2d_xla(x, w, strides, padding)
    if x.dtype == tf.float32 and w.dtype == tf.float32 and path == "fast":
        return adder_conv2d_fast(x, w, strides, padding)
    return adder_conv2d_reference(x, w, strides, padding)


__all__ = ["adder_conv2d", "adder_conv2d_reference", "adder_conv2d_fast", "adder_conv2d_xla",
           "set_backend", "get_backend", "use_backend", "resolve_backend",
           "fast_available", "build_info", "load_fast_library", "FastOpUnavailable", "BACKENDS"]
