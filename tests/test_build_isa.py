"""The compiled adder op uses the widest vector ISA the CPU offers, and says so.

Regression guard for a real failure: with GCC 12, `-march=native` on an
Intel CPU with AVX512-FP16 breaks TensorFlow's bundled Eigen, and the op used
to fall back silently to baseline SSE2 (13-46x slower than Conv2D). The
kernels now live in a translation unit with no TensorFlow/Eigen header, are
built from an ordered list of targets, and a narrower build warns.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from adder_tf import ops as adder_ops
from adder_tf.ops import adder_fast, build

INTEL_FP16 = ("fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx f16c fma bmi1 bmi2 movbe avx2 "
              "avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 "
              "avx512fp16 amx_tile amx_bf16 amx_int8")
AVX2_LAPTOP = "fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt avx f16c fma bmi1 bmi2 movbe avx2"
OLD_X86 = "fpu sse sse2"


def _need_compiler():
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no C++ compiler on this machine: the compiled op is not built here")


def test_machine_isa_from_cpu_flags():
    assert adder_fast.machine_isa(INTEL_FP16, "x86_64") == "avx512"
    assert adder_fast.machine_isa(AVX2_LAPTOP, "x86_64") == "avx2"
    assert adder_fast.machine_isa(OLD_X86, "x86_64") == "sse2"
    assert adder_fast.machine_isa("fp asimd", "aarch64") == "neon"


def test_targets_only_list_what_the_cpu_runs_best_first():
    intel = [name for name, _ in adder_fast.isa_targets(INTEL_FP16, "x86_64")]
    assert intel == ["native", "x86-64-v4", "x86-64-v3", "x86-64-v2", "baseline"]
    laptop = [name for name, _ in adder_fast.isa_targets(AVX2_LAPTOP, "x86_64")]
    assert laptop == ["native", "x86-64-v3", "x86-64-v2", "baseline"]  # never v4 (SIGILL)
    assert [n for n, _ in adder_fast.isa_targets("fp asimd", "aarch64")] == ["native", "baseline"]


def test_kernels_unit_includes_no_tensorflow_or_eigen_header():
    """What keeps Eigen's -march trouble away from the kernels' ISA."""
    _need_compiler()
    import tensorflow as tf
    deps = subprocess.run([os.environ.get("CXX", "g++"), "-std=c++17", "-M",
                           build.KERNELS_SOURCE], capture_output=True, text=True, check=True)
    assert tf.sysconfig.get_include() not in deps.stdout
    assert "Eigen" not in deps.stdout and "tensorflow" not in deps.stdout


def test_loaded_library_is_as_wide_as_the_cpu():
    """Fails when the op runs narrower vectors than this machine has (e.g. SSE2 on AVX2)."""
    _need_compiler()
    info = adder_ops.build_info()
    assert info["error"] is None, info["error"]
    assert info["isa"] in adder_fast.ISA_RANK
    assert adder_fast.ISA_RANK[info["isa"]] >= adder_fast.ISA_RANK[info["machine_isa"]], info
    assert info["vector_width"] == (16 if info["isa"] == "avx512" else 8)
    assert info["flags"] is not None and info["target"] is not None


def test_a_failed_target_falls_back_loudly(tmp_path):
    """First target broken on purpose: the next one is used and one warning line says why.
    The baseline library's kernels (a narrower vector width than the machine's) must
    still give the reference path's forward and gradients."""
    _need_compiler()
    script = textwrap.dedent("""
        import json
        import numpy as np
        import tensorflow as tf
        from adder_tf.ops import adder_fast, adder_reference
        adder_fast.load(raise_on_error=True,
                        targets=[("broken", ["-march=not-a-cpu"]), ("baseline", [])])
        rng = np.random.default_rng(0)
        for shape, kernel, stride in [((2, 7, 6, 5), (3, 3, 5, 9), 1),
                                      ((1, 8, 9, 3), (3, 2, 3, 4), 2),
                                      ((1, 5, 5, 2), (5, 5, 2, 3), 1)]:
            x = tf.constant(rng.normal(size=shape).astype(np.float32))
            w = tf.constant(rng.normal(size=kernel).astype(np.float32))
            outs = []
            for conv in (adder_fast.adder_conv2d_fast, adder_reference.adder_conv2d_reference):
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    y = conv(x, w, stride, "same")
                    loss = tf.reduce_sum(y * tf.sin(y))
                outs.append([y] + tape.gradient(loss, [x, w]))
            for a, b in zip(*outs):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4,
                                           atol=1e-4 * float(np.abs(b.numpy()).max()))
        print(json.dumps(adder_fast.build_info()))
    """)
    env = dict(os.environ, ADDER_TF_CACHE=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["target"] == "baseline"
    assert "-march=not-a-cpu" in info["fallback_reasons"][0]
    stderr = res.stderr.splitlines()
    assert any(line.startswith("adder_tf: building the adder op for") and "done in" in line
               for line in stderr), res.stderr[-2000:]
    narrower = adder_fast.ISA_RANK[info["isa"]] < adder_fast.ISA_RANK[info["machine_isa"]]
    warnings = [line for line in stderr if line.startswith("adder_tf: warning:")]
    if narrower:
        assert len(warnings) == 1 and "-march=not-a-cpu" in warnings[0], res.stderr[-2000:]
    else:   # a machine with nothing above the baseline: only the no-AVX-512 line
        assert len(warnings) == (info["isa"] != "avx512"), res.stderr[-2000:]


def test_every_build_below_avx512_says_so_in_one_line():
    """Narrower than the CPU names the failed target; as wide as an AVX2-only or ARM CPU
    still warns (the large-layer kernels are AVX-512 only); AVX-512 is silent."""
    narrow = adder_fast.degraded_line("sse2", "avx512", ["x86-64-v4: g++ refused"])
    assert "runs sse2" in narrow and "x86-64-v4: g++ refused" in narrow
    for isa in ("avx2", "neon", "generic"):
        line = adder_fast.degraded_line(isa, isa)
        assert line.startswith("adder_tf: warning:") and "no AVX-512" in line
        assert "\n" not in line
    assert adder_fast.degraded_line("avx512", "avx512") is None


def test_first_use_inside_model_fit_loads_the_compiled_op():
    """model.fit traces the first adder call in a tf.function: the op must load there too
    (it used to fall back to the plain-TF path when its first use was in a graph)."""
    _need_compiler()
    script = textwrap.dedent("""
        import json
        import keras, numpy as np
        from adder_tf import AdderConv2D
        from adder_tf.ops import adder_fast
        inputs = keras.Input((6, 6, 2))
        model = keras.Model(inputs, keras.layers.Flatten()(AdderConv2D(3, 3)(inputs)))
        model.compile("sgd", "mse")
        model.fit(np.ones((4, 6, 6, 2), "float32"), np.zeros((4, 48), "float32"), verbose=0)
        print(json.dumps(adder_fast.build_info()))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["error"] is None and info["isa"] is not None, info
    assert "plain-TF path" not in res.stderr
