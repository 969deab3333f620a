"""AdderConv2D and the adaptive learning rate from Python, as a Keras user meets them."""
import warnings

import keras
import numpy as np
import pytest

import adder_tf
from adder_tf import AdderConv2D
from adder_tf.optim import AdderSGD, adaptive

from keras_user import (adder_same_3x3, adder_update_norm, compiled_ann, data, expected_norm,
                        small_cnn)


# -- AdderConv2D is a Conv2D -------------------------------------------------------------
def test_adder_conv2d_takes_conv2d_arguments():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    layer = AdderConv2D(4, 3, padding="same", activation="relu", use_bias=True,
                        bias_initializer=keras.initializers.Constant(20.0),
                        kernel_regularizer="l2", bias_regularizer="l1",
                        kernel_constraint=keras.constraints.MaxNorm(100.0),
                        data_format="channels_last", name="a")
    y = layer(x)
    reference = np.maximum(adder_same_3x3(x, layer.kernel.numpy()) + 20.0, 0)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-4)
    assert 0 < np.mean(np.asarray(y) > 0) < 1          # the ReLU really acts on -l1 + bias
    assert len(layer.losses) == 2                       # both regularizers
    clone = AdderConv2D.from_config(layer.get_config())
    assert clone.activation is keras.activations.relu and clone.use_bias
    assert isinstance(clone.kernel_constraint, keras.constraints.MaxNorm)


@pytest.mark.parametrize("args, kwargs", [((4, 3), {}), ((4, 3, 2), {}), ((4, (3, 1)), {"padding": "same"})])
def test_adder_conv2d_replaces_conv2d_with_the_same_shapes(args, kwargs):
    x = np.zeros((2, 9, 9, 3), "float32")
    conv, adder = keras.layers.Conv2D(*args, **kwargs), AdderConv2D(*args, **kwargs)
    assert adder(x).shape == conv(x).shape
    assert [w.shape for w in adder.weights] == [w.shape for w in conv.weights]   # kernel + bias


@pytest.mark.parametrize("kwargs, culprit", [({"dilation_rate": 2}, "dilation_rate"),
                                             ({"groups": 2}, "groups"),
                                             ({"data_format": "channels_first"}, "channels_first"),
                                             ({"strides": (1, 2)}, "strides")])
def test_adder_conv2d_refuses_what_it_cannot_do(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        AdderConv2D(4, 3, **kwargs)


# -- the adaptive learning rate needs no set-up ---------------------------------------------
def test_adder_sgd_finds_adder_filters_by_itself():
    model = compiled_ann(AdderSGD(0.1, momentum=0.0))
    x, y = data()
    norm = adder_update_norm(model, lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0))
    np.testing.assert_allclose(norm, expected_norm(model, 0.1), rtol=1e-4)
    assert model.optimizer.adder_filter_count == 2


def test_adder_sgd_stays_adaptive_after_save_and_load_model(tmp_path):
    model = compiled_ann(AdderSGD(0.1, momentum=0.0))
    x, y = data()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    model.save(tmp_path / "ann.keras")
    loaded = keras.saving.load_model(tmp_path / "ann.keras")
    norm = adder_update_norm(loaded, lambda: loaded.fit(x, y, batch_size=64, epochs=1, verbose=0))
    np.testing.assert_allclose(norm, expected_norm(loaded, 0.1), rtol=1e-4)


def test_adder_sgd_stays_adaptive_after_backup_and_restore(tmp_path):
    x, y = data()
    backup = str(tmp_path / "backup")

    def run(epochs):
        model = compiled_ann(AdderSGD(0.1, momentum=0.0))
        norms = []

        class Measure(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.before = model.get_layer("conv1").kernel.numpy()

            def on_epoch_end(self, epoch, logs=None):
                norms.append(np.linalg.norm(model.get_layer("conv1").kernel.numpy() - self.before))

        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False), Measure()])
        return model, norms

    run(1)
    model, norms = run(2)          # a new process would do the same: restore, then epoch 2
    assert len(norms) == 1
    np.testing.assert_allclose(norms[0], expected_norm(model, 0.1), rtol=1e-4)


def test_any_keras_optimizer_gets_the_adaptive_rate_with_adaptive(tmp_path):
    model = compiled_ann(adaptive(keras.optimizers.SGD(0.1)))
    x, y = data()
    norm = adder_update_norm(model, lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0))
    np.testing.assert_allclose(norm, expected_norm(model, 0.1), rtol=1e-4)
    adam = adaptive(keras.optimizers.Adam(1e-3), eta=0.1)
    assert type(adam).__name__ == "AdaptiveAdam" and adam.eta == 0.1
    model = compiled_ann(adam)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert adam.adder_filter_count == 2
    model.save(tmp_path / "adam.keras")
    assert type(keras.saving.load_model(tmp_path / "adam.keras").optimizer).__name__ == "AdaptiveAdam"
    with pytest.raises(ValueError, match="already"):
        adaptive(adam)


def test_a_distiller_warns_once_when_the_optimizer_is_not_adaptive():
    teacher = small_cnn(bn_momentum=0.9)
    pkkd = adder_tf.distill.PKKD(teacher, adder_tf.to_adder(teacher))
    with pytest.warns(UserWarning, match="without AdderNet's adaptive learning rate") as record:
        pkkd.compile(optimizer=keras.optimizers.Adam(), teacher_optimizer="sgd")
    assert len([w for w in record if "adaptive" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pkkd.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")
