"""Hinton KD and NST against values computed by hand with numpy."""
import numpy as np
import tensorflow as tf

from adder_tf.distill.baseline_losses import hinton_kd, nst_loss, nst_pair


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_hinton_kd_matches_numpy_with_t_squared():
    rng = np.random.default_rng(0)
    t, s = rng.normal(size=(4, 7)), rng.normal(size=(4, 7))
    for T in (1.0, 4.0):
        p, q = _softmax(t / T), _softmax(s / T)
        expected = (p * (np.log(p) - np.log(q))).sum(-1) * T * T
        np.testing.assert_allclose(hinton_kd(tf.constant(t), tf.constant(s), T), expected, rtol=1e-6)
    np.testing.assert_allclose(hinton_kd(tf.constant(t), tf.constant(t), 2.0), 0.0, atol=1e-6)


def _nst_numpy(t, s):
    def maps(f):
        b, h, w, c = f.shape
        m = f.reshape(b, h * w, c).transpose(0, 2, 1)
        return m / np.linalg.norm(m, axis=-1, keepdims=True)

    def k(a, b):
        return (np.einsum("bik,bjk->bij", a, b) ** 2).mean(axis=(1, 2))
    t, s = maps(t), maps(s)
    return k(t, t) + k(s, s) - 2 * k(s, t)


def test_nst_matches_numpy_and_is_zero_for_identical_maps():
    rng = np.random.default_rng(2)
    t, s = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 3))
    np.testing.assert_allclose(nst_pair(tf.constant(t), tf.constant(s)), _nst_numpy(t, s), rtol=1e-6)
    np.testing.assert_allclose(nst_pair(tf.constant(t), tf.constant(t)), 0.0, atol=1e-9)
    # scale per channel does not matter: maps are l2-normalised
    np.testing.assert_allclose(nst_pair(tf.constant(t), tf.constant(t * [1.0, 5.0, 0.1])), 0.0, atol=1e-9)


def test_nst_pools_the_larger_map_and_averages_over_pairs():
    rng = np.random.default_rng(3)
    big, small = rng.normal(size=(2, 8, 8, 3)), rng.normal(size=(2, 4, 4, 3))
    pooled = big.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(nst_pair(tf.constant(big), tf.constant(small)),
                               _nst_numpy(pooled, small), rtol=1e-6)
    total = nst_loss([tf.constant(small), tf.constant(big)], [tf.constant(small * 2), tf.constant(big)])
    np.testing.assert_allclose(total, 0.0, atol=1e-9)
    # The mean over taps, as PKKD's L_mid (a sum would weigh NST by the number of taps).
    other = rng.normal(size=(2, 4, 4, 3))
    mean = nst_loss([tf.constant(small), tf.constant(big)], [tf.constant(other), tf.constant(small)])
    expected = (_nst_numpy(small, other) + _nst_numpy(pooled, small)) / 2.0
    np.testing.assert_allclose(mean, expected, rtol=1e-6)


def test_no_gradient_reaches_the_teacher():
    t, s = tf.Variable(tf.random.normal((2, 4, 4, 3))), tf.Variable(tf.random.normal((2, 4, 4, 3)))
    with tf.GradientTape(persistent=True) as tape:
        loss = tf.reduce_sum(nst_loss([t], [s])) + tf.reduce_sum(hinton_kd(t[:, 0, 0], s[:, 0, 0]))
    assert tape.gradient(loss, t) is None
    assert tape.gradient(loss, s) is not None


def test_keras_distillation_interface():
    import keras
    from adder_tf.distill import baseline_losses as bl
    if not hasattr(bl, "KDLoss"):
        import pytest
        pytest.skip("this Keras has no keras.distillation")
    assert isinstance(bl.KDLoss(), keras.distillation.DistillationLoss)
    rng = np.random.default_rng(4)
    t, s = tf.constant(rng.normal(size=(3, 5))), tf.constant(rng.normal(size=(3, 5)))
    kd = bl.KDLoss(temperature=4.0)
    np.testing.assert_allclose(kd.compute_loss(t, s), np.mean(hinton_kd(t, s, 4.0)), rtol=1e-7)
    assert bl.KDLoss.from_config(kd.get_config()).temperature == 4.0
    ft, fs = tf.constant(rng.normal(size=(2, 4, 4, 3))), tf.constant(rng.normal(size=(2, 2, 2, 3)))
    nst = bl.NSTLoss("a", "b")
    np.testing.assert_allclose(nst.compute_loss([ft], [fs]), np.mean(nst_pair(ft, fs)), rtol=1e-7)
    np.testing.assert_allclose(nst.compute_loss(ft, fs), np.mean(nst_pair(ft, fs)), rtol=1e-7)
    assert bl.NSTLoss.from_config(nst.get_config()).student_layer_name == "b"


def test_kd_loss_trains_a_student_in_keras_distiller():
    import keras
    from adder_tf.distill import baseline_losses as bl
    if not hasattr(bl, "KDLoss"):
        import pytest
        pytest.skip("this Keras has no keras.distillation")

    def net(name):
        inputs = keras.Input((6, 6, 2))
        x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(3)(x), name=name)
    teacher, student = net("teacher"), net("student")
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[bl.KDLoss(2.0), bl.NSTLoss("conv", "conv")],
        distillation_loss_weights=[1.0, 1.0], student_loss_weight=0.5)
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
    history = distiller.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
