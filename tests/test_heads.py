"""PKKD kernel transforms, alignment heads and the feature loss."""
import keras
import numpy as np
import tensorflow as tf

from adder_tf.distill import losses
from adder_tf.distill.heads import AlignmentHead
from adder_tf.ops.moments import standardize
from adder_tf.layers.kernels import GaussianKernel, LaplaceKernel


def test_gaussian_kernel_formula_follows_the_batch_scale():
    z = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 5, 5, 6)).astype("float32")
    k = GaussianKernel()
    k.build(z.shape)
    sigma = float(k.sigma(z))
    np.testing.assert_allclose(sigma ** 2, np.mean(np.abs(z)), rtol=1e-5)  # exponent O(1)
    np.testing.assert_allclose(k(z), np.exp(-z / (2 * sigma ** 2)), rtol=1e-5)
    # 1000x larger features: same kernel output (the width follows the scale).
    np.testing.assert_allclose(k(1000.0 * z), np.exp(-1000.0 * z / (2 * 1000.0 * sigma ** 2)),
                               rtol=1e-4)


def test_laplace_kernel_is_eq_8_with_eq_2s_sign():
    distance = np.random.default_rng(1).uniform(50, 150, size=(2, 3, 3, 4)).astype("float32")
    k = LaplaceKernel(width="mean")
    k.build(distance.shape)
    sigma = float(k.sigma(-distance))         # an adder layer outputs -distance
    np.testing.assert_allclose(sigma, distance.mean(), rtol=1e-5)
    # exp(-(x (.) f) / sigma) = exp(+distance / sigma): larger distance, larger g
    np.testing.assert_allclose(k(-distance), np.exp(distance / sigma), rtol=1e-5)
    np.testing.assert_allclose(k(-7.0 * distance), k(-distance), rtol=1e-5)  # scale-free


def test_absolute_width_starts_at_the_first_batch_then_is_free():
    """relative=False (eq. 7-8 as written): a learned width, not the batch scale."""
    distance = np.random.default_rng(5).uniform(50, 150, size=(4, 3, 3, 4)).astype("float32")
    k = LaplaceKernel(relative=False)
    k.build(distance.shape)
    first = float(k.sigma(-distance))
    np.testing.assert_allclose(first, distance.mean(), rtol=1e-5)
    # A batch 10x farther: the width does not follow it (it would if relative).
    np.testing.assert_allclose(float(k.sigma(-10.0 * distance)), first, rtol=1e-5)
    k.log_factor.assign(3.0)                 # free: no bound on the learned log-width
    np.testing.assert_allclose(float(k.sigma(-distance)), first * np.exp(3.0), rtol=1e-4)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(k(-tf.constant(distance)))
    assert float(tf.abs(tape.gradient(out, k.log_factor))) > 0


def _corr(a, b):
    """Mean over channels of the correlation over batch and positions (the loss is per channel)."""
    a = np.reshape(a, (-1, np.shape(a)[-1])).astype("float64")
    b = np.reshape(b, (-1, np.shape(b)[-1])).astype("float64")
    return float(np.mean([np.corrcoef(a[:, c], b[:, c])[0, 1] for c in range(a.shape[1])]))


def kernel_tap_correlations(seed=0):
    """Per tap of a ResNet-8 pair on random images: corr(kernel output, raw tap), both sides."""
    from adder_tf import distill
    from adder_tf.models import build_model, tap_names
    from adder_tf.optim import AdderSGD
    keras.utils.set_random_seed(seed)
    student = build_model("resnet8", "adder", (16, 16, 3), 10)
    teacher = build_model("resnet8", "conv", (16, 16, 3), 10)
    pkkd = distill.PKKD(teacher, student, taps=[(n, n) for n in tap_names(student)])
    pkkd.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")   # as a step finds it
    images = np.random.default_rng(seed).random((32, 16, 16, 3)).astype("float32")
    _, s_taps, _, t_taps = pkkd.tap_outputs(images, training=True)
    student_side = [_corr(h.kernel_transform(z), z) for h, z in zip(pkkd.student_heads, s_taps)]
    teacher_side = [_corr(h.kernel_transform(z), z) for h, z in zip(pkkd.teacher_heads, t_taps)]
    return student_side, teacher_side


def test_both_kernels_decrease_with_their_layers_similarity():
    """One orientation: g falls as the adder output -d rises, h as x * f rises."""
    student_side, teacher_side = kernel_tap_correlations()
    assert len(student_side) == len(teacher_side) >= 4
    assert max(student_side) < -0.5, student_side
    assert max(teacher_side) < -0.5, teacher_side


def test_bounded_width_cannot_run_off():
    z = tf.constant(np.random.default_rng(4).uniform(50, 150, (2, 3, 3, 4)), tf.float32)
    k = LaplaceKernel()
    k.build(z.shape)
    base = float(k.sigma(-z))
    k.log_factor.assign(50.0)                 # pushed far out by a runaway gradient
    assert float(k.sigma(-z)) <= 4.0 * base * (1 + 1e-5)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(k(-z))
    assert float(tf.abs(tape.gradient(out, k.log_factor))) > 0   # never a dead zone


def test_kernels_stay_finite_on_extreme_features():
    big = tf.constant([[-1e6, -1e3, 0.0, 1e3, 1e6]], tf.float32)[:, None, None, :]
    for k in (GaussianKernel(bounded=False), LaplaceKernel(bounded=False)):
        k.build(big.shape)
        k.log_factor.assign(-20.0)          # a badly small width
        out = k(big)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(np.square(out)))


def test_standardize_is_per_channel():
    z = np.random.default_rng(2).normal([1.0, -100.0], [0.1, 30.0], size=(8, 4, 4, 2)).astype("float32")
    s = standardize(tf.constant(z)).numpy()
    np.testing.assert_allclose(s.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(s.std(axis=(0, 1, 2)), 1.0, rtol=1e-3)


def test_feature_mse_is_zero_for_identical_and_scale_free():
    z = tf.random.normal((4, 3, 3, 5), seed=1)
    np.testing.assert_allclose(losses.feature_mse(z, z), 0.0, atol=1e-6)
    np.testing.assert_allclose(losses.feature_mse(z, 100.0 * z - 7.0), 0.0, atol=1e-5)
    # independent features: 2 (1 - corr) per channel, about 2
    w = tf.random.normal((64, 4, 4, 5), seed=2)
    v = tf.random.normal((64, 4, 4, 5), seed=3)
    assert 1.7 < float(tf.reduce_mean(losses.feature_mse(v, w))) < 2.3


def _train_heads(features_s, features_t, normalize, steps=300):
    """Only the heads learn (both sides), features fixed: can L_mid reach 0?"""
    norm = "standardize" if normalize else "none"
    sh = AlignmentHead("student", feature_norm=norm, name="s")
    th = AlignmentHead("teacher", feature_norm=norm, name="t")
    sh.build(features_s.shape), th.build(features_t.shape)
    variables = sh.trainable_variables + th.trainable_variables
    opt = keras.optimizers.SGD(0.1, momentum=0.9)

    def loss_fn():
        ys, yt = sh(features_s), th(features_t)
        return tf.reduce_mean(losses.feature_mse(ys, yt, norm))

    first = float(loss_fn())
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = loss_fn()
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return first, float(loss_fn())


def test_heads_alone_cannot_collapse_the_feature_loss():
    rng = np.random.default_rng(3)
    conv_tap = tf.constant(rng.normal(0.5, 1.0, size=(32, 4, 4, 8)), tf.float32)
    adder_tap = tf.constant(-rng.uniform(60, 90, size=(32, 4, 4, 8)), tf.float32)
    first, last = _train_heads(adder_tap, conv_tap, normalize=True)
    assert np.isfinite(last)
    assert last > 1.5, (first, last)   # independent features stay about 2 apart
    # Control: the paper-literal heads (plain MSE, rho and widths free on
    # both sides) do drive it towards zero on the same unrelated features.
    first_raw, last_raw = _train_heads(adder_tap, conv_tap, normalize=False)
    assert last_raw < 0.05 * first_raw, (first_raw, last_raw)


def test_head_get_config_round_trip():
    head = AlignmentHead("student", "kernel", name="h")
    clone = AlignmentHead.from_config(head.get_config())
    assert (clone.side, clone.feature_loss, clone.use_kernel, clone.use_conv) == ("student", "kernel", True, False)
    teacher = AlignmentHead.from_config(AlignmentHead("teacher", name="t").get_config())
    assert teacher.feature_norm == "standardize" and not teacher.use_conv   # no rho_c by default
    assert not teacher.kernel_transform.learned and AlignmentHead("student", name="s").kernel_transform.learned
    literal = AlignmentHead("teacher", feature_norm="none", name="t2")
    assert literal.use_conv and not literal.kernel_transform.bounded
