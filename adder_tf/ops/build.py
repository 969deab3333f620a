"""Compiling the adder op: compiler, flags, target ISA, cache location, build record.

Two translation units, built with the system C++ compiler ($CXX, default g++):

  cc/adder_kernels.cc  the arithmetic; includes no TensorFlow or Eigen header,
                       compiled -O3 for the best vector ISA the CPU accepts.
  cc/adder_ops.cc      the TensorFlow glue (shapes, buffers, thread pool),
                       compiled against the installed TensorFlow's headers
                       for the baseline ISA.

Keeping Eigen out of the kernels' unit matters: TensorFlow's bundled Eigen
does not compile under every -march (with GCC 12 and -march=native on an
Intel CPU with AVX512-FP16, Eigen's PacketMathFP16.h fails), and a failure
there must not cost the kernels their vector ISA. The kernels are tried with
an ordered list of targets that this CPU supports: -march=native, then the
x86-64 levels v4 (AVX-512), v3 (AVX2), v2, then the compiler's baseline
(on aarch64: -mcpu=native, then the baseline). The first that compiles is
used.

The shared library goes to a cache directory ($ADDER_TF_CACHE, else
$XDG_CACHE_HOME/adder_tf, else ~/.cache/adder_tf) under a name keyed by a
hash of the sources, the TF version, the compiler, the flags and the CPU's
feature flags, so an upgrade of any of them rebuilds and a cache shared
between different machines stays correct. A JSON file beside it records the
target used and why better ones failed.
"""
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile

import tensorflow as tf

CC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cc")
KERNELS_SOURCE = os.path.join(CC_DIR, "adder_kernels.cc")
GLUE_SOURCE = os.path.join(CC_DIR, "adder_ops.cc")
HEADER = os.path.join(CC_DIR, "adder_kernels.h")
SOURCE = GLUE_SOURCE   # kept for callers that point at "the" source
COMMON_FLAGS = ["-fPIC", "-std=c++17", "-Wno-ignored-attributes", "-Wno-psabi"]
KERNEL_FLAGS = ["-O3", "-ffp-contract=fast"]
GLUE_FLAGS = ["-O2"]

# Vector ISAs by width, narrowest first; "neon" is 128-bit like SSE.
ISA_RANK = {"generic": 0, "sse2": 1, "neon": 1, "sse4.2": 2, "avx": 3, "avx2": 4,
            "avx512": 5}
_V4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
_V3 = {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"}
_V2 = {"sse4_2", "popcnt", "ssse3"}

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


def machine_isa(flags=None, machine=None):
    """The widest vector ISA the kernels can use on a CPU with these /proc/cpuinfo flags."""
    flags = set((_cpu_flags() if flags is None else flags).split())
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        return "neon"
    if machine not in ("x86_64", "amd64", "i686", "x86"):
        return "generic"
    if "avx512f" in flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    if "avx" in flags:
        return "avx"
    if "sse4_2" in flags:
        return "sse4.2"
    return "sse2"


def isa_targets(flags=None, machine=None):
    """Ordered (name, compiler flags) for the kernels: best first, each one this CPU runs."""
    flags = set((_cpu_flags() if flags is None else flags).split())
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64"):
        return [("native", ["-mcpu=native"]), ("baseline", [])]
    targets = [("native", ["-march=native"])]
    if machine in ("x86_64", "amd64"):
        if _V4 <= flags:
            targets.append(("x86-64-v4", ["-march=x86-64-v4", "-mtune=native"]))
        if _V3 <= flags:
            targets.append(("x86-64-v3", ["-march=x86-64-v3", "-mtune=native"]))
        if _V2 <= flags:
            targets.append(("x86-64-v2", ["-march=x86-64-v2", "-mtune=native"]))
    return targets + [("baseline", [])]


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


def library_path(targets=None):
    """Where the shared library for these sources / TF / compiler / CPU lives."""
    cxx, cxx_version = _compiler()
    key = hashlib.sha256()
    for source in (KERNELS_SOURCE, GLUE_SOURCE, HEADER):
        with open(source, "rb") as f:
            key.update(f.read())
        key.update(b"\0")
    flags = COMMON_FLAGS + KERNEL_FLAGS + GLUE_FLAGS + tf.sysconfig.get_compile_flags() \
        + tf.sysconfig.get_link_flags() + [repr(targets or isa_targets())]
    for part in (tf.__version__, cxx_version, " ".join(flags), platform.machine(),
                 _cpu_flags()):
        key.update(part.encode())
        key.update(b"\0")
    name = f"adder_ops_tf{tf.__version__}_{key.hexdigest()[:16]}.so"
    return cxx, os.path.join(cache_dir(), name)


def _run(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        raise FastOpUnavailable(f"compiling the adder op timed out: {' '.join(command[:3])}") from e


def _first_error(res):
    lines = (res.stderr or res.stdout).strip().splitlines()
    errors = [ln for ln in lines if "error" in ln.lower()]
    return ((errors or lines or ["no output"])[0]).strip()[:240]


def _compile_kernels(cxx, workdir, targets):
    """Kernel object for the first target that compiles, its (name, flags), and why others failed."""
    reasons = []
    for name, flags in targets:
        obj = os.path.join(workdir, f"kernels_{len(reasons)}.o")
        res = _run([cxx, "-c"] + COMMON_FLAGS + KERNEL_FLAGS + flags
                   + [KERNELS_SOURCE, "-o", obj])
        if res.returncode == 0:
            return obj, (name, flags), reasons
        reasons.append(f"{' '.join(flags) or name} failed: {_first_error(res)}")
    raise FastOpUnavailable("compiling the adder kernels failed: " + " | ".join(reasons))


def build(cxx, out_path, targets=None):
    """Compile the op library to out_path (atomically: concurrent builders are safe).

    Returns the build record also written to out_path + ".json".
    """
    targets = targets or isa_targets()
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out_path)) as workdir:
        kernels, (target, flags), reasons = _compile_kernels(cxx, workdir, targets)
        glue = os.path.join(workdir, "glue.o")
        res = _run([cxx, "-c"] + COMMON_FLAGS + GLUE_FLAGS + tf.sysconfig.get_compile_flags()
                   + [GLUE_SOURCE, "-o", glue])
        if res.returncode != 0:
            raise FastOpUnavailable("compiling the adder op's TensorFlow glue failed: "
                                    + _first_error(res))
        tmp = os.path.join(workdir, "lib.so")
        res = _run([cxx, "-shared", kernels, glue, "-o", tmp] + tf.sysconfig.get_link_flags())
        if res.returncode != 0:
            raise FastOpUnavailable("linking the adder op failed: " + _first_error(res))
        record = {"target": target, "flags": flags, "fallback_reasons": reasons}
        with open(tmp + ".json", "w") as f:
            json.dump(record, f)
        os.replace(tmp + ".json", out_path + ".json")
        os.replace(tmp, out_path)
    return record


def read_record(path):
    """The build record beside the library at `path` (empty when there is none)."""
    try:
        with open(path + ".json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"target": None, "flags": None, "fallback_reasons": []}
