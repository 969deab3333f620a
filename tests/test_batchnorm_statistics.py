"""After fit, an ANN predicts with BatchNorm statistics that describe it.

Each network is trained at a constant learning rate (the setting where an
adder network's moving averages trail its weights the most), then scored
twice: as `fit` left it, and after re-estimating every BatchNorm statistic
from all training rows with `adder_tf.batchnorm.reestimate`. The two must
agree within a point.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

import adder_tf
from adder_tf.batchnorm import reestimate
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
    reestimate(network, x_train, steps=23, batch_size=64)   # every row
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


def test_reestimate_matches_batch_statistics_written_out_in_numpy():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    c = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="stem")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="b0", epsilon=1e-3)(c))
    a = adder_tf.AdderConv2D(6, 3, padding="same", use_bias=False, name="adder")(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.BatchNormalization(name="b1")(a))
    model = adder_tf.models.AdderModel(inputs, keras.layers.Dense(3)(h))
    b0 = model.get_layer("b0")
    b0.gamma.assign(np.linspace(0.5, 2.0, 4)), b0.beta.assign(np.linspace(-0.5, 0.5, 4))
    x = digits()[0][:40]
    expected = {"b0": [], "b1": []}
    for batch in (x[:16], x[16:32], x[32:]):   # the last batch is short: it weighs half
        stem = model.get_layer("stem")(batch).numpy().astype("float64")
        mean, var = stem.mean((0, 1, 2)), stem.var((0, 1, 2))
        expected["b0"].append((mean, var))
        z = np.maximum((stem - mean) / np.sqrt(var + 1e-3) * b0.gamma.numpy() + b0.beta.numpy(), 0)
        out = model.get_layer("adder")(z.astype("float32")).numpy().astype("float64")
        expected["b1"].append((out.mean((0, 1, 2)), out.var((0, 1, 2))))
    assert reestimate(model, tf.data.Dataset.from_tensor_slices(x).batch(16), steps=5) == 3
    sizes = [16, 16, 8]
    for name, stats in expected.items():
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(),
                                   np.average([m for m, _ in stats], 0, weights=sizes),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(),
                                   np.average([v for _, v in stats], 0, weights=sizes), rtol=1e-3)


class TwoViews(keras.utils.PyDataset):
    """((image, mirrored image), label) batches: a two-input model read by index."""

    def __init__(self, x, y, batch_size=64):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return (self.x[part], self.x[part, :, ::-1]), self.y[part]


def test_a_two_input_model_fit_on_a_py_dataset_ends_with_statistics_of_its_weights():
    keras.utils.set_random_seed(0)
    x, y, _, _ = digits()
    inputs = [keras.Input((8, 8, 1)), keras.Input((8, 8, 1))]
    h = keras.layers.Concatenate()(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    h = adder_tf.AdderConv2D(8, 3, padding="same", use_bias=False)(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="after_adder")(h))
    model = adder_tf.models.AdderModel(
        inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer=AdderSGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = TwoViews(x, y)
    model.bn_reestimation_steps = len(data)   # every batch, in whatever order
    model.fit(data, epochs=3, verbose=0)
    bn = model.get_layer("after_adder")
    after_fit = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    reestimate(model, data, steps=len(data))      # the same batches, the same weights
    np.testing.assert_allclose(after_fit[0], bn.moving_mean.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(after_fit[1], bn.moving_variance.numpy(), rtol=1e-4)


def test_reestimate_moves_no_other_state():
    """Only the re-estimated statistics change: a renorm BatchNorm's statistics and a
    dropout layer's seed, which the training-mode pass moves, are put back."""
    inputs = keras.Input((6, 6, 1))
    x = adder_tf.AdderConv2D(4, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(renorm=True, name="renorm")(x)
    x = keras.layers.Dropout(0.5, seed=1)(x)
    x = keras.layers.BatchNormalization(name="plain")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    data = np.random.default_rng(0).normal(3.0, 1.0, size=(64, 6, 6, 1)).astype("float32")
    before = {v.path: np.array(v.numpy()) for v in model.non_trainable_variables}
    assert reestimate(model, data, steps=2) == 2
    moved = {v.path for v in model.non_trainable_variables
             if not np.array_equal(v.numpy(), before[v.path])}
    assert moved == {"plain/moving_mean", "plain/moving_variance"}


def test_the_callback_given_a_function_of_the_epoch_reads_that_epoch_s_data():
    # Epoch e's data is centred at e + 1 and spread by e + 1: the statistics left after
    # 2 epochs are those of epoch 1's batches (the mean of their means and variances).
    from adder_tf.batchnorm import BatchNormReestimation
    base = np.random.default_rng(0).standard_normal((64, 3)).astype("float32")
    by_epoch = {e: base * (e + 1) + (e + 1) for e in range(2)}
    read = []

    def data(epoch):
        read.append(epoch)
        return tf.data.Dataset.from_tensor_slices(by_epoch[epoch]).batch(16)

    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(by_epoch[0], np.zeros((64, 1), "float32"), epochs=2, batch_size=16, verbose=0,
              callbacks=[BatchNormReestimation(data_of_epoch=data, steps=4)])
    assert read == [0, 1]
    batches = by_epoch[1].astype("float64").reshape(4, 16, 3)
    norm = model.layers[0]
    np.testing.assert_allclose(norm.moving_mean.numpy(), batches.mean((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), batches.var(1).mean(0), rtol=1e-4)
