"""The compiled adder op: built on first use, cached, loaded with tf.load_op_library.

The C++ source (adder_tf/ops/cc/adder_ops.cc) is compiled with the system
C++ compiler ($CXX, default g++) against the installed TensorFlow's headers
and framework library, with -O3 -march=native. The shared library goes to a
cache directory ($ADDER_TF_CACHE, else $XDG_CACHE_HOME/adder_tf, else
~/.cache/adder_tf) under a name keyed by a hash of the source, the TF version,
the compiler, the flags and the CPU's feature flags, so an upgrade of any of
them rebuilds and a cache shared between different machines stays correct.

The op is CPU-only and cannot be compiled by XLA (tf.function(jit_compile=True)
cannot contain it); `adder_tf.ops.adder_conv2d` chooses the path.
"""
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time

import tensorflow as tf

from adder_tf.ops.adder_reference import with_adder_gradients

log = logging.getLogger("adder_tf")

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cc", "adder_ops.cc")
CXX_FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared",
             "-Wno-ignored-attributes", "-Wno-psabi"]

_lock = threading.Lock()
_state = {"module": None, "error": None, "tried": False, "build_seconds": None,
          "path": None}


class FastOpUnavailable(RuntimeError):
    """The compiled adder op could not be built or loaded."""


def cache_dir():
    d = os.environ.get("ADDER_TF_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "adder_tf")
    return d


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _compiler():
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise FastOpUnavailable(f"no C++ compiler ({cxx!r} not on PATH)")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as e:
        raise FastOpUnavailable(f"C++ compiler {path} does not run: {e}") from e
    return path, (version[0] if version else "")


def library_path():
    """Where the shared library for this source / TF / compiler / CPU lives."""
    cxx, cxx_version = _compiler()
    with open(SOURCE, "rb") as f:
        src = f.read()
    key = hashlib.sha256()
    for part in (src, tf.__version__.encode(), cxx_version.encode(),
                 " ".join(CXX_FLAGS + tf.sysconfig.get_compile_flags()
                          + tf.sysconfig.get_link_flags()).encode(),
                 platform.machine().encode(), _cpu_flags().encode()):
        key.update(part)
        key.update(b"\0")
    name = f"adder_ops_tf{tf.__version__}_{key.hexdigest()[:16]}.so"
    return cxx, os.path.join(cache_dir(), name)


def build(cxx, out_path):
    """Compile the op library to out_path (atomically: concurrent builders are safe)."""
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(out_path))
    os.close(fd)
    def command(flags):
        return ([cxx] + flags + tf.sysconfig.get_compile_flags() + [SOURCE, "-o", tmp]
                + tf.sysconfig.get_link_flags())
    try:
        res = subprocess.run(command(CXX_FLAGS), capture_output=True, text=True, timeout=600)
        if res.returncode != 0 and "-march=native" in CXX_FLAGS:
            # Some compilers/targets reject -march=native: build for the baseline ISA.
            res = subprocess.run(command([f for f in CXX_FLAGS if f != "-march=native"]),
                                 capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
            raise FastOpUnavailable("compiling the adder op failed: " + " | ".join(tail))
        os.replace(tmp, out_path)
    except subprocess.TimeoutExpired as e:
        raise FastOpUnavailable("compiling the adder op timed out") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(raise_on_error=False):
    """The loaded op module, building it if needed; None (or raise) if impossible.

    Tried once per process; a failure is logged as one warning line.
    """
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                cxx, path = library_path()
                if not os.path.exists(path):
                    t0 = time.perf_counter()
                    build(cxx, path)
                    _state["build_seconds"] = time.perf_counter() - t0
                try:
                    _state["module"] = tf.load_op_library(path)
                except Exception as e:  # tf raises NotFoundError and friends
                    raise FastOpUnavailable(f"loading {path} failed: {e}") from e
                _state["path"] = path
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
    """Path of the loaded library, the build time this process paid (None if cached), the error."""
    return {k: _state[k] for k in ("path", "build_seconds", "error")}


def adder_forward_fast(x, w, stride, padding):
    return load(raise_on_error=True).adder_tf_conv2d(
        x, w, stride=int(stride), padding=padding.upper())


def adder_input_grad_fast(x, w, dy, stride, padding):
    return load(raise_on_error=True).adder_tf_conv2d_input_grad(
        x, w, dy, stride=int(stride), padding=padding.upper())


def adder_conv2d_fast(x, w, strides=1, padding="same"):
    """Adder convolution with the AdderNet gradients, compiled CPU kernels (float32)."""
    load(raise_on_error=True)
    return with_adder_gradients(adder_forward_fast, adder_input_grad_fast, x, w, strides, padding)
