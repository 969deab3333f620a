"""Distillers composed of loss terms; per-channel moments from one function; what compile
takes and refuses."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import adder_tf
from adder_tf import ops as adder_ops
from adder_tf.distill.terms import LossTerm
from adder_tf.distill.trainer import DistillationTrainer
from adder_tf.ops.moments import channel_moments, standardize
from adder_tf.optim import AdderSGD


def cnn(name):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv0")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn0")(x))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(x))
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(
        keras.layers.GlobalAveragePooling2D()(x)), name=name)


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 4, n).astype("int32")


class LogitMatching(LossTerm):
    """A method of one's own: the mean squared difference of the logits."""
    name = "match"

    def compute_loss(self, teacher_logits, student_logits, sample_weight=None, **kwargs):
        diff = student_logits - tf.stop_gradient(teacher_logits)
        return tf.reduce_mean(tf.square(diff))


class Matching(DistillationTrainer):
    def __init__(self, teacher, student, weight=1.0, **kwargs):
        super().__init__(student, teacher, terms=[LogitMatching(weight)], **kwargs)


def test_a_new_method_is_one_term_and_one_short_class():
    keras.utils.set_random_seed(0)
    teacher = cnn("teacher")
    trainer = Matching(teacher, adder_tf.to_adder(teacher, name="student"), weight=3.0,
                       progressive=False)
    trainer.compile(optimizer=AdderSGD(0.05))
    x, y = data()
    s_logits, t_logits = trainer.student(x, training=True), teacher(x, training=False)
    ce = np.mean(keras.losses.sparse_categorical_crossentropy(y, s_logits, from_logits=True))
    match = np.mean(np.square(s_logits.numpy() - t_logits.numpy()))
    total, terms = trainer.student_loss(y, s_logits, [], t_logits, [])
    assert float(terms["match"]) == pytest.approx(match, rel=1e-5)
    assert float(total) == pytest.approx((ce + 3.0 * match) / 4.0, rel=1e-5)
    logs = trainer.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    assert logs["loss_match"][-1] < logs["loss_match"][0]


def test_two_terms_of_one_name_are_refused_at_construction():
    # Their losses would be logged and summed under one key, the second overwriting the first.
    teacher = cnn("teacher")
    student = adder_tf.to_adder(teacher, name="student")
    with pytest.raises(ValueError, match="two loss terms are named 'match'"):
        DistillationTrainer(student, teacher, terms=[LogitMatching(1.0), LogitMatching(2.0)])
    from adder_tf.distill.terms import KernelFeatures, SelectivityTransfer
    with pytest.raises(ValueError, match="named 'mid'"):
        DistillationTrainer(student, teacher,
                            terms=[SelectivityTransfer(1.0), KernelFeatures(1.0, "kernel_conv1x1",
                                                                            "standardize", "spread")])


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_channel_moments_against_numpy_in_float64(backend):
    """An adder-like feature (mean a hundred times its spread) and a partner: means,
    variances and covariance per channel, on the fused path and on plain TF ops."""
    rng = np.random.default_rng(4)
    x = (-300.0 + rng.normal(0.0, [1.0, 3.0, 0.5], size=(16, 5, 5, 3))).astype("float32")
    y = (0.5 * x + rng.normal(size=x.shape)).astype("float32")
    rows = x.reshape(-1, 3).astype("float64"), y.reshape(-1, 3).astype("float64")
    with adder_ops.use_backend(backend):
        m = channel_moments(tf.constant(x), tf.constant(y))
        z = standardize(tf.constant(x)).numpy()
        alone = channel_moments(tf.constant(x))
    assert alone.covariance is None and float(alone.count) == 400
    np.testing.assert_allclose(alone.mean, rows[0].mean(0), rtol=1e-12)
    np.testing.assert_allclose(alone.variance, rows[0].var(0), rtol=1e-7)
    assert m.mean.dtype == tf.float64 and float(m.count) == 400
    np.testing.assert_allclose(m.mean, rows[0].mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.variance, rows[0].var(0), rtol=1e-7)
    np.testing.assert_allclose(m.other_variance, rows[1].var(0), rtol=1e-7)
    cov = ((rows[0] - rows[0].mean(0)) * (rows[1] - rows[1].mean(0))).mean(0)
    np.testing.assert_allclose(m.covariance, cov, rtol=1e-7)
    np.testing.assert_allclose(z.reshape(-1, 3).std(0), 1.0, rtol=1e-4)


def test_compile_refuses_a_loss_and_honours_metrics():
    keras.utils.set_random_seed(0)
    teacher = cnn("teacher")
    kd = adder_tf.distill.KD(teacher, adder_tf.to_adder(teacher, name="student"))
    with pytest.raises(ValueError, match="KD computes its own loss.*without loss="):
        kd.compile(optimizer=AdderSGD(0.05), teacher_optimizer="sgd",
                   loss="sparse_categorical_crossentropy")
    kd.compile(optimizer=AdderSGD(0.05), teacher_optimizer="sgd",
               metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    x, y = data()
    history = kd.fit(x, y, batch_size=32, epochs=1, verbose=0, validation_data=(x, y)).history
    assert {"accuracy", "top2", "val_accuracy", "val_top2"} <= set(history)
    scores = kd.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    predicted = kd.student.predict(x, verbose=0)
    assert scores["accuracy"] == pytest.approx(np.mean(predicted.argmax(1) == y))
    top2 = np.argsort(-predicted, axis=1)[:, :2]
    assert scores["top2"] == pytest.approx(np.mean([t in row for t, row in zip(y, top2)]))


def test_adder_model_and_distillers_share_the_jit_compile_default(monkeypatch):
    keras.utils.set_random_seed(0)
    given = []   # what reaches Keras's compile ("auto", its default, is False on a CPU)
    keras_compile = keras.Model.compile

    def recording(self, *args, **kwargs):
        given.append(kwargs.get("jit_compile", "auto"))
        return keras_compile(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", recording)
    teacher = cnn("teacher")
    student = adder_tf.to_adder(teacher, name="student")
    student.compile(optimizer=AdderSGD(0.05), loss="sparse_categorical_crossentropy")
    pkkd = adder_tf.distill.PKKD(teacher, student)
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer="sgd")

    class Own(adder_tf.batchnorm.ReestimatingFit, keras.Model):   # one's own model
        pass

    own = Own(teacher.inputs, teacher.outputs)
    own.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert given == [False, False, False]
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer="sgd", jit_compile=True)
    own.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    assert given[3:] == [True, True]
