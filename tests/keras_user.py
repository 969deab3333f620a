"""Models and data the Keras-user tests share: a plain Keras CNN as a user writes it,
its adder twin, and the adaptive rate's expected step."""
import os

import keras
import numpy as np

import adder_tf


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_cnn(channels=(8, 8, 8), name="cnn", bn_momentum=0.99):
    """A plain Keras CNN as a user writes it (Keras's default BatchNorm momentum)."""
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, c in enumerate(channels):
        x = keras.layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x), name=name)


def adder_same_3x3(x, w):
    """-sum |x - w| over each 3x3 window, zero padding 1 (stride 1), written out."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[-1]))
    for i in range(h):
        for j in range(wd):
            patch = xp[:, i:i + 3, j:j + 3, :, None]
            out[:, i, j] = -np.abs(patch - w[None]).sum(axis=(1, 2, 3))
    return out


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 4, n).astype("int32")


def adder_update_norm(model, fit, layer="conv1"):
    """||change of one adder filter|| over what `fit` does."""
    before = model.get_layer(layer).kernel.numpy()
    fit()
    return float(np.linalg.norm(model.get_layer(layer).kernel.numpy() - before))


def expected_norm(model, lr, eta=0.2, layer="conv1"):
    """One step of the adaptive rate without momentum moves a filter by lr * eta * sqrt(numel)."""
    return lr * eta * np.sqrt(np.prod(model.get_layer(layer).kernel.shape))


def compiled_ann(optimizer):
    keras.utils.set_random_seed(0)
    model = adder_tf.to_adder(small_cnn())
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def pkkd_pair(**kwargs):
    keras.utils.set_random_seed(0)
    teacher = small_cnn(bn_momentum=0.9)
    return teacher, adder_tf.to_adder(teacher, **kwargs)
