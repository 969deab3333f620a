"""The adder op under XLA (jit_compile=True): same numbers as the reference path,
no (batch, positions, c_in, c_out) block in the compiled program, and whole
training steps compiled with XLA through Keras's compile(jit_compile=True)."""
import re

import numpy as np
import pytest
import tensorflow as tf
import keras

from adder_tf import distill
from adder_tf import ops as adder_ops
from adder_tf.models import build_model, tap_names
from adder_tf.optim import AdderSGD

# (batch, H, W, c_in, c_out, kernel, stride, padding)
CASES = [(2, 6, 6, 3, 5, 3, 1, "same"), (2, 7, 5, 4, 6, 3, 2, "same"),
         (1, 6, 6, 4, 3, 3, 1, "valid"), (2, 5, 5, 3, 4, 1, 2, "same"),
         (3, 8, 8, 2, 7, 3, 2, "valid")]


def _values_and_grads(fn, x, w, stride, padding):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = fn(x, w, stride, padding)
        loss = tf.reduce_sum(tf.sin(y) * y)      # a non-uniform dY
    dx, dw = tape.gradient(loss, [x, w])
    return y, dx, dw


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_xla_equals_the_reference_path(case):
    b, h, w_, cin, cout, k, s, padding = case
    rng = np.random.default_rng(sum(case[:6]))
    # filters of the same scale as the inputs: many |x - w| < 1, so HardTanh clips some and not others
    x = tf.constant(rng.normal(size=(b, h, w_, cin)).astype(np.float32))
    w = tf.constant(rng.normal(size=(k, k, cin, cout)).astype(np.float32))
    seen = []

    def traced(x, w, stride, padding):
        seen.append(adder_ops.resolve_backend())
        return adder_ops.adder_conv2d(x, w, stride, padding)

    xla = tf.function(lambda x, w: _values_and_grads(traced, x, w, s, padding), jit_compile=True)
    got = xla(x, w)
    want = _values_and_grads(adder_ops.adder_conv2d_reference, x, w, s, padding)
    assert seen == ["xla"]
    for name, g, r in zip(("forward", "input grad", "filter grad"), got, want):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-5,
                                   atol=1e-5 * float(np.abs(r.numpy()).max()), err_msg=name)


def test_xla_program_holds_no_difference_block():
    """The compiled forward + backward never has a buffer as large as the
    (batch, positions, c_in, c_out) block of |x - w| (the patches, 9 c_in rows
    per position, are smaller here since c_out > 9)."""
    b, h, cin, cout = 2, 6, 8, 16
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(b, h, h, cin)).astype(np.float32))
    w = tf.constant(rng.normal(size=(3, 3, cin, cout)).astype(np.float32))
    step = tf.function(lambda x, w: _values_and_grads(adder_ops.adder_conv2d, x, w, 1, "same"),
                       jit_compile=True)
    hlo = step.experimental_get_compiler_ir(x, w)(stage="optimized_hlo")
    sizes = [int(np.prod([int(d) for d in dims.split(",") if d]))
             for dims in re.findall(r"f32\[([\d,]*)\]", hlo)]
    block = b * h * h * cin * cout
    assert max(sizes) < block, (max(sizes), block)


def _trainer(jit_compile):
    keras.utils.set_random_seed(0)
    student = build_model("resnet8", "adder", (8, 8, 1), 10)
    teacher = build_model("resnet8", "conv", (8, 8, 1), 10)
    trainer = distill.PKKD(teacher, student, taps=[(n, n) for n in tap_names(student)],
                           alpha=1.0, beta=1.0)
    trainer.compile(optimizer=AdderSGD(0.05, momentum=0.9, eta=0.2, l2=5e-4),
                    teacher_optimizer=AdderSGD(0.05, eta=0.0), jit_compile=jit_compile)
    return trainer


def test_pkkd_trains_under_xla_as_without():
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 32).astype("int32")
    histories = {}
    for jit in (False, True):
        trainer = _trainer(jit)
        assert trainer.jit_compile is jit
        histories[jit] = trainer.fit(x, y, batch_size=16, epochs=2, verbose=0,
                                     shuffle=False).history
    for key in ("loss", "loss_ce", "loss_kd", "loss_mid", "teacher_loss"):
        np.testing.assert_allclose(histories[True][key], histories[False][key], rtol=1e-4,
                                   err_msg=key)


def test_cli_flag_compiles_the_step_with_xla(tmp_path):
    """--jit_compile trains (the adder layers take the XLA form); with the compiled op
    forced, the same command fails with FastOpUnavailable, which the op raises only
    inside an XLA cluster: the step really is compiled by XLA."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [sys.executable, os.path.join("train", "main.py"), "--dataset=digits", "--arch=resnet8",
            "--method=ann", "--epochs=1", "--steps_per_epoch=2", "--batch_size=16",
            "--bn_reestimation_steps=0", "--verbose=0", "--jit_compile"]

    def run(model_dir, backend):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", ADDER_TF_BACKEND=backend)
        return subprocess.run(args + [f"--model_dir={model_dir}"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)

    out = run(tmp_path / "auto", "auto")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["epochs_completed"] == 1
    if adder_ops.fast_available():
        out = run(tmp_path / "fast", "fast")
        # (the op raises FastOpUnavailable only when traced inside an XLA cluster; the
        # line shows the op's own message, not Keras's wrapper)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 1 and "FastOpUnavailable" in last, out.stderr[-3000:]
        assert "jit_compile=True" in last and "AdderConv2D" in last, last
