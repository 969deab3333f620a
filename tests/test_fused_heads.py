"""The fused passes of PKKD's heads and feature loss give the numbers of the
plain formulation: one PKKD step's student loss and its gradients, on a fixed
batch, against a straightforward float64 implementation written here."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from adder_tf import distill
from adder_tf.distill import losses
from adder_tf.distill.baseline_losses import hinton_kd
from adder_tf.models import build_model, tap_names
from adder_tf.ops import fused
from adder_tf.ops.moments import standardize
from adder_tf.optim import AdderSGD

F64 = tf.float64


def _pkkd(seed=0):
    keras.utils.set_random_seed(seed)
    student = build_model("resnet8", "adder", (16, 16, 3), 10)
    teacher = build_model("resnet8", "conv", (16, 16, 3), 10)
    trainer = distill.PKKD(teacher, student, taps=[(n, n) for n in tap_names(student)],
                           alpha=3.0, beta=5.0, temperature=2.0)
    trainer.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")   # as a step finds it
    rng = np.random.default_rng(seed)
    for i, head in enumerate(trainer.student_heads):   # away from the initial identity / factor 1
        head.kernel_transform.log_factor.assign(0.2 * (i % 3) - 0.2)
        c = head.rho.kernel.shape[-1]
        head.rho.kernel.assign(np.eye(c, dtype="float32")[None, None]
                               + 0.3 * rng.normal(size=(1, 1, c, c)).astype("float32"))
        head.rho.bias.assign(0.1 * rng.normal(size=(c,)).astype("float32"))
    x = tf.constant(rng.normal(size=(16, 16, 16, 3)).astype("float32"))
    y = tf.constant(rng.integers(0, 10, size=(16,)).astype("int32"))
    return trainer, x, y


def _plain_tap(y, z, s_head):
    """Feature term of one tap, default PKKD (kernel_conv1x1, standardize), as written:
    Laplace map of the adder output's distances d = -y centred on each channel's
    batch mean, at the distances' spread (root of the mean per-channel variance),
    1x1 conv, Gaussian map of the conv output at the batch scale, MSE of the
    per-channel standardized features; float64."""
    y64, z64 = tf.cast(y, F64), tf.cast(tf.stop_gradient(z), F64)
    t = tf.cast(s_head.kernel_transform.log_factor, F64)
    limit = math.log(4.0)
    factor = tf.exp(limit * (t / limit) / tf.sqrt(1.0 + tf.square(t / limit)))
    centred = -y64 - tf.stop_gradient(tf.reduce_mean(-y64, axis=(0, 1, 2)))
    spread = tf.sqrt(tf.reduce_mean(tf.square(tf.stop_gradient(centred))))
    g = tf.exp(tf.minimum(centred / (tf.maximum(spread, 1e-12) * factor), 30.0))
    r = (tf.einsum("bhwc,co->bhwo", g, tf.cast(s_head.rho.kernel[0, 0], F64))
         + tf.cast(s_head.rho.bias, F64))
    sigma_c_sq = tf.maximum(tf.reduce_mean(tf.abs(z64)), 1e-12)
    h = tf.exp(tf.minimum(-z64 / (2.0 * sigma_c_sq), 30.0))
    return tf.reduce_mean(tf.square(standardize(r) - standardize(h)))


def _plain_loss(trainer, labels, s_logits, s_taps, t_logits, t_taps):
    ce = tf.cast(tf.reduce_mean(losses.cross_entropy(labels, s_logits)), F64)
    kd = tf.cast(tf.reduce_mean(hinton_kd(t_logits, s_logits, trainer.temperature)),
                 F64)
    mid = tf.add_n([_plain_tap(s, t, h) for s, t, h in
                    zip(s_taps, t_taps, trainer.student_heads)]) / len(s_taps)
    return (ce + trainer.alpha * kd + trainer.beta * mid) / (1.0 + trainer.alpha + trainer.beta)


def _loss_and_grads(trainer, x, y, loss_fn):
    variables = trainer.student_variables
    with tf.GradientTape() as tape:
        s_logits, s_taps, t_logits, t_taps = trainer.tap_outputs(x, training=True)
        loss = loss_fn(s_logits, s_taps, t_logits, t_taps)
    return float(loss), [g.numpy() for g in tape.gradient(loss, variables)], variables


def test_one_pkkd_step_equals_the_plain_formulation():
    trainer, x, y = _pkkd()
    probe = trainer.tap_outputs(x[:2], training=False)[1][0]
    assert fused.fused_available(probe), "the fused passes should serve float32 on CPU"
    fast_loss, fast, variables = _loss_and_grads(
        trainer, x, y, lambda *out: trainer.student_loss(y, *out)[0])
    plain_loss, plain, _ = _loss_and_grads(
        trainer, x, y, lambda *out: _plain_loss(trainer, y, *out))
    np.testing.assert_allclose(fast_loss, plain_loss, rtol=2e-6)
    scale = max(np.abs(g).max() for g in plain)
    for v, a, b in zip(variables, fast, plain):
        # every weight: 1e-4 of its own largest entry, and of the largest
        # gradient anywhere for entries that are zero in exact arithmetic
        # (a bias before standardization)
        np.testing.assert_allclose(a, b, rtol=2e-4,
                                   atol=max(2e-4 * np.abs(b).max(), 1e-6 * scale),
                                   err_msg=v.path)


def test_fused_ops_match_their_plain_tf_forms_and_gradients():
    rng = np.random.default_rng(3)
    z = tf.constant(rng.normal(2.0, 3.0, size=(4, 5, 7, 24)).astype("float32"))
    t = tf.constant(rng.normal(-1.0, 0.5, size=(4, 5, 7, 24)).astype("float32"))
    c = tf.constant(-0.9)
    assert fused.fused_available(z)
    upstream = tf.constant(rng.normal(size=(4, 5, 7, 24)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z, c])
        got = fused.exp_map(z, c, 5.0)
        want = tf.exp(tf.minimum(z * c, 5.0))    # clips where z < -5.6
        g_got, g_want = tf.reduce_sum(got * upstream), tf.reduce_sum(want * upstream)
    np.testing.assert_allclose(got, want, rtol=3e-7)
    for a, b in zip(tape.gradient(g_got, [z, c]), tape.gradient(g_want, [z, c])):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6 * np.abs(b).max())

    dm = tf.constant(rng.normal(size=(5, 24)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z, t])
        m = fused.channel_sums(z, t)
        z64, t64 = tf.cast(z, F64), tf.cast(t, F64)
        want = tf.stack([tf.reduce_sum(v, axis=(0, 1, 2))
                         for v in (z64, t64, z64 * z64, t64 * t64, z64 * t64)])
        s_got, s_want = tf.reduce_sum(m * dm), tf.reduce_sum(want * dm)
    np.testing.assert_allclose(m, want, rtol=1e-12)
    for a, b in zip(tape.gradient(s_got, [z, t]), tape.gradient(s_want, [z, t])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("bad", ["shape"])
def test_fused_ops_reject_mismatched_features(bad):
    from adder_tf.ops import adder_fast
    module = adder_fast.load(raise_on_error=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in shape"):
        module.adder_tf_moments(tf.zeros((2, 3, 4)), tf.zeros((2, 3, 5)))
