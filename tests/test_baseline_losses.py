"""Hinton KD and NST against values computed by hand with numpy; their loss terms as
Keras distillation losses."""
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


def _kd_numpy(t, s, temperature):
    p, q = _softmax(t / temperature), _softmax(s / temperature)
    return (p * (np.log(p) - np.log(q))).sum(-1) * temperature ** 2


def test_kd_and_nst_terms_are_keras_distillation_losses():
    import keras
    from adder_tf.distill.terms import SelectivityTransfer, SoftLabels
    assert isinstance(SoftLabels(), keras.distillation.DistillationLoss)
    rng = np.random.default_rng(4)
    t, s = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    kd = SoftLabels(temperature=4.0)
    np.testing.assert_allclose(kd.compute_loss(tf.constant(t), tf.constant(s)),
                               _kd_numpy(t, s, 4.0).mean(), rtol=1e-7)
    w = np.array([0.0, 1.0, 3.0])      # Keras's "sum_over_batch_size": sum(w * loss) / batch
    np.testing.assert_allclose(kd.compute_loss(tf.constant(t), tf.constant(s), sample_weight=w),
                               (w * _kd_numpy(t, s, 4.0)).sum() / 3, rtol=1e-7)
    ft, fs = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 2, 2, 3))
    pooled = ft.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    nst = SelectivityTransfer(teacher_layer_name="a", student_layer_name="b")
    for teacher, student in (([tf.constant(ft)], [tf.constant(fs)]), (tf.constant(ft), tf.constant(fs))):
        np.testing.assert_allclose(nst.compute_loss(teacher, student),
                                   _nst_numpy(pooled, fs).mean(), rtol=1e-7)
    for term in (kd, nst):   # Keras's Distiller saves its losses by their config
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(term))
        assert type(again) is type(term) and again.get_config() == term.get_config()
    assert again.student_layer_name == "b"


def test_terms_check_their_arguments_when_built():
    import pytest
    from adder_tf.distill.terms import KernelFeatures, SelectivityTransfer, SoftLabels
    with pytest.raises(ValueError, match="alpha must be a number >= 0, got -1"):
        SoftLabels(-1)
    with pytest.raises(ValueError, match="temperature must be a number > 0, got 0"):
        SoftLabels(1.0, temperature=0)
    with pytest.raises(ValueError, match="beta must be a number >= 0, got nan"):
        SelectivityTransfer(float("nan"))
    with pytest.raises(ValueError, match="feature_norm must be one of .*, got 'l2'"):
        KernelFeatures(1.0, feature_norm="l2")


def _net(name):
    import keras
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x), name=name)


def test_kd_and_nst_terms_train_a_student_in_keras_distiller():
    import keras
    from adder_tf.distill.terms import SelectivityTransfer, SoftLabels
    teacher, student = _net("teacher"), _net("student")
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[SoftLabels(temperature=2.0),
                             SelectivityTransfer(teacher_layer_name="conv",
                                                 student_layer_name="conv")],
        distillation_loss_weights=[1.0, 1.0], student_loss_weight=0.5)
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
    before = student.get_layer("conv").get_weights()[0].copy()
    history = distiller.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert not np.allclose(student.get_layer("conv").get_weights()[0], before)


def test_keras_distiller_refuses_the_kernel_feature_term():
    import keras
    import pytest
    from adder_tf.distill.terms import KernelFeatures
    with pytest.raises(ValueError, match="KernelFeatures trains alignment heads.*adder_tf.distill.PKKD"):
        keras.distillation.Distiller(teacher=_net("teacher"), student=_net("student"),
                                     distillation_losses=[KernelFeatures(1.0)])
