"""AdderSGD: the adaptive rescaling, coupled L2, and replica-count invariance."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from adder_tf.optim import AdderSGD, adaptive_rescale

HERE = os.path.dirname(os.path.abspath(__file__))


def test_adaptive_rescale_matches_formula():
    g = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype("float32")
    expected = 0.2 * np.sqrt(g.size) * g / np.linalg.norm(g)
    np.testing.assert_allclose(adaptive_rescale(tf.constant(g), 0.2), expected, rtol=1e-5)


def test_one_step_rescales_adder_filter_then_adds_l2_then_momentum():
    rng = np.random.default_rng(1)
    w0, g = rng.normal(size=(2, 2, 3, 4)), rng.normal(size=(2, 2, 3, 4))
    b0, gb = rng.normal(size=(4,)), rng.normal(size=(4,))
    w, b = keras.Variable(w0, dtype="float32"), keras.Variable(b0, dtype="float32")
    opt = AdderSGD(learning_rate=0.1, momentum=0.9, eta=0.2, l2=5e-4)
    opt.mark_adder_filters([w])
    for _ in range(2):  # the second step exercises the momentum buffer
        opt.apply_gradients([(tf.constant(g, "float32"), w), (tf.constant(gb, "float32"), b)])
    # PyTorch-reference update written out: d = eta*sqrt(n)*g/|g| + wd*w; m = 0.9 m - lr d
    def reference(p, grad, adder):
        m = np.zeros_like(p)
        for _ in range(2):
            d = (0.2 * np.sqrt(grad.size) * grad / np.linalg.norm(grad) if adder else grad) + 5e-4 * p
            m = 0.9 * m - 0.1 * d
            p = p + m
        return p
    np.testing.assert_allclose(w.numpy(), reference(w0, g, True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.numpy(), reference(b0, gb, False), rtol=1e-5, atol=1e-6)


def test_eta_zero_is_plain_sgd():
    w = keras.Variable(np.ones((2, 2)), dtype="float32")
    opt = AdderSGD(learning_rate=0.5, momentum=0.0, eta=0.0)
    opt.mark_adder_filters([w])
    opt.apply_gradients([(tf.fill((2, 2), 2.0), w)])
    np.testing.assert_allclose(w.numpy(), np.zeros((2, 2)))


def test_mirrored_two_replicas_match_one_device():
    """Same global batch on 1 and 2 logical CPUs: same weights after PKKD steps, and the
    statistics of the whole data re-estimated where each replica sees half of each batch."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "replica_check.py")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2]
    assert report["max_abs_diff_student"] < 1e-9, report
    assert report["max_abs_diff_teacher"] < 1e-9, report
    assert report["weights_moved"] > 1e-3, report
    one, two = report["bn_statistics_error"]   # a replica alone: 5e-2
    assert two < 1e-3 and abs(two - one) < 1e-9, report
