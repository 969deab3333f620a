"""After fit, an ANN predicts with BatchNorm statistics that describe it.

Each network is trained at a constant learning rate (the setting where an
adder network's moving averages trail its weights the most), then scored
twice: as `fit` left it, and after re-estimating every BatchNorm statistic
with `recalibrate_batchnorm`. The two must agree within a point.
"""
import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import adder_tf
from adder_tf.callbacks import recalibrate_batchnorm
from adder_tf.optim import AdderSGD


def digits():
    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:1437]], y[order[:1437]], x[order[1437:]], y[order[1437:]]


def cnn(name, widths=((16, 1), (32, 1), (32, 2))):
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, (filters, stride) in enumerate(widths):
        x = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name=name)


def as_trained_and_reestimated(network, x_train, x_test, y_test):
    network.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    as_trained = network.evaluate(x_test, y_test, verbose=0)[1]
    recalibrate_batchnorm(network, x_train, steps=23)
    return as_trained, network.evaluate(x_test, y_test, verbose=0)[1]


def fit_plain(network, epochs):
    x, y, x_test, y_test = digits()
    network.compile(optimizer=AdderSGD(0.05), metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = network.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
    return history.history["accuracy"][-1], as_trained_and_reestimated(network, x, x_test, y_test)


def test_to_adder_model_fit_at_a_constant_rate_predicts_with_its_own_statistics():
    keras.utils.set_random_seed(0)
    train_top1, (as_trained, reestimated) = fit_plain(adder_tf.to_adder(cnn("cnn3")), epochs=12)
    assert train_top1 > 0.95 and reestimated > 0.9
    assert abs(as_trained - reestimated) <= 0.01, (as_trained, reestimated)


def test_build_model_ann_fit_at_a_constant_rate_predicts_with_its_own_statistics():
    keras.utils.set_random_seed(0)
    ann = adder_tf.models.build_model("resnet8", "adder", (8, 8, 1), 10)
    train_top1, (as_trained, reestimated) = fit_plain(ann, epochs=8)
    assert train_top1 > 0.9 and reestimated > 0.85
    assert abs(as_trained - reestimated) <= 0.01, (as_trained, reestimated)


METHODS = {
    "PKKD": lambda t, s: adder_tf.distill.PKKD(t, s, alpha=1.0, beta=1.0),
    "KD": lambda t, s: adder_tf.distill.KD(t, s, alpha=1.0),
    "NST": lambda t, s: adder_tf.distill.NST(t, s, beta=1.0),
    "Supervised": lambda t, s: adder_tf.distill.Supervised(s),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_distilled_student_predicts_with_its_own_statistics(method):
    keras.utils.set_random_seed(0)
    x, y, x_test, y_test = digits()
    teacher = cnn("teacher", ((16, 1), (32, 1), (32, 1)))
    student = adder_tf.to_adder(teacher, name="student")
    trainer = METHODS[method](teacher, student)
    trainer.compile(optimizer=AdderSGD(0.05),
                    teacher_optimizer=AdderSGD(0.05, eta=0.0) if method != "Supervised" else None)
    trainer.fit(x, y, batch_size=64, epochs=6, verbose=0)
    as_trained, reestimated = as_trained_and_reestimated(trainer.student, x, x_test, y_test)
    assert reestimated > 0.8
    assert abs(as_trained - reestimated) <= 0.01, (as_trained, reestimated)
