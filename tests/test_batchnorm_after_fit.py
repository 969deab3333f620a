"""BatchNorm statistics after `fit` in the cases that went wrong: a frozen BatchNorm,
class-sorted arrays, and a Keras model of one's own with the public callback."""
import keras
import numpy as np
from sklearn.datasets import load_digits

import adder_tf
from adder_tf import batchnorm
from adder_tf.batchnorm import reestimate
from adder_tf.optim import AdderSGD

from fit_forms import (BATCH, SPARSE_CE, OwnNet, arrays, assert_statistics_describe_the_weights,
                       cnn, statistics_on_all_rows)


def test_a_frozen_batchnorm_keeps_its_statistics():
    keras.utils.set_random_seed(0)
    model = adder_tf.to_adder(cnn())
    frozen = model.get_layer("bn2")
    frozen.moving_mean.assign(np.full(4, 5.0)), frozen.moving_variance.assign(np.full(4, 3.0))
    frozen.trainable = False
    model.compile(optimizer=AdderSGD(0.05), loss=SPARSE_CE)
    x, _, y = arrays()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), 5.0)
    np.testing.assert_array_equal(frozen.moving_variance.numpy(), 3.0)
    mean, _ = statistics_on_all_rows(model, x)["bn1"]   # the trainable one is re-estimated
    assert np.all(np.abs(model.get_layer("bn1").moving_mean.numpy() - mean) < 0.2 * np.abs(mean))


def test_class_sorted_arrays_are_reestimated_from_the_whole_training_set():
    data = load_digits()
    order = np.argsort(data.target, kind="stable")   # class 0 first, class 9 last
    x = (data.images[order, :, :, None] / 16.0).astype("float32")
    y = data.target[order].astype("int32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv0")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn0")(h))
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(h))
    h = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(h))
    model = adder_tf.to_adder(keras.Model(inputs, h))
    model.compile(optimizer=AdderSGD(0.05), loss=SPARSE_CE, metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)   # 20 batches: 640 of 1797 rows
    after_fit = [v.numpy() for v in model.non_trainable_variables]
    reestimate(model, x, steps=1000, batch_size=64)      # every row
    for fitted, everything in zip(after_fit, model.non_trainable_variables):
        spread = np.sqrt(model.get_layer("bn1").moving_variance.numpy()).max()
        np.testing.assert_allclose(fitted, everything.numpy(), atol=0.05 * spread, rtol=0.1)


def test_a_keras_model_of_ones_own_takes_the_public_callback():
    keras.utils.set_random_seed(0)

    class Plain(keras.Model):   # keras.Model's own fit: the callback does the work
        def __init__(self):
            super().__init__()
            self.net = OwnNet()

        def call(self, x, training=False):
            return self.net(x, training=training)

    model = Plain()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SPARSE_CE)
    x, _, y = arrays()
    callback = batchnorm.BatchNormReestimation(x, steps=100, batch_size=BATCH)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[callback])
    assert len(callback.seconds) >= 1
    assert_statistics_describe_the_weights(model.net, x)


def test_a_model_of_ones_own_loads_compiled_with_its_optimizer_state(tmp_path):
    keras.utils.set_random_seed(0)
    model = OwnNet()
    model.compile(optimizer=AdderSGD(0.05), loss=SPARSE_CE)
    x, _, y = arrays()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    model.save(tmp_path / "own.keras")
    loaded = keras.models.load_model(tmp_path / "own.keras")
    assert loaded.optimizer is not None
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
