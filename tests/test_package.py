"""The package as installed and imported, and its examples."""
import os
import re
import subprocess
import sys

import keras
import pytest

from adder_tf import AdderConv2D

from keras_user import ROOT


def test_the_package_namespace_after_a_plain_import():
    code = ("import adder_tf; print(adder_tf.distill.PKKD.__name__, adder_tf.distill.KD.__name__, "
            "adder_tf.distill.NST.__name__, adder_tf.to_adder.__name__, adder_tf.optim.AdderSGD.__name__, "
            "adder_tf.batchnorm.reestimate.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["PKKD", "KD", "NST", "to_adder", "AdderSGD", "reestimate"]


# -- examples and packaging -------------------------------------------------------------------
# Held-out digits accuracy after the examples' --epochs 2, well under what they reach
# (see test_examples_run_and_learn) and far above chance.
EXAMPLE_TOP1 = {"pkkd_digits.py": 0.3, "adder_layer_fit.py": 0.5}


@pytest.mark.parametrize("script, says, at_least", [
    ("pkkd_digits.py", r"student \(ANN\) top-1 ([0-9.]+)", EXAMPLE_TOP1["pkkd_digits.py"]),
    ("adder_layer_fit.py", r"test accuracy ([0-9.]+)", EXAMPLE_TOP1["adder_layer_fit.py"])])
def test_examples_run_and_learn(script, says, at_least, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    args = [sys.executable, os.path.join(ROOT, "examples", script), "--epochs", "2"]
    if script == "pkkd_digits.py":
        args += ["--out", str(tmp_path / "ann")]
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracy = float(re.search(says, out.stdout).group(1))
    assert accuracy >= at_least, out.stdout[-2000:]     # 10 classes: chance is 0.1
    if script == "pkkd_digits.py":
        saved = keras.saving.load_model(tmp_path / "ann.keras")
        assert sum(isinstance(l, AdderConv2D) for l in saved.layers) == 2


def test_pip_install_puts_the_package_and_its_cc_sources_in_place(tmp_path):
    """`pip install .` (here without build isolation, so nothing is downloaded)."""
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "--target", str(tmp_path / "site"), ROOT],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    site = tmp_path / "site" / "adder_tf"
    for name in ("ops/cc/adder_kernels.cc", "ops/cc/adder_kernels.h", "ops/cc/adder_ops.cc",
                 "distill/methods.py", "convert.py"):
        assert (site / name).is_file(), name
    assert not (tmp_path / "site" / "tests").exists() and not (tmp_path / "site" / "train").exists()
    code = "import adder_tf, sys; print(adder_tf.__file__); print(adder_tf.to_adder.__name__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[0].startswith(str(site))
