"""AdderConv2D as a Keras layer: config, shapes, saving."""
import keras
import numpy as np
import pytest

from adder_tf import AdderConv2D


def test_get_config_round_trip_rebuilds_the_same_layer():
    layer = AdderConv2D(6, (3, 1), strides=2, padding="valid", use_bias=True, name="a")
    clone = AdderConv2D.from_config(layer.get_config())
    for attr in ("filters", "kernel_size", "strides", "padding", "use_bias", "name"):
        assert getattr(clone, attr) == getattr(layer, attr), attr
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype("float32")
    layer(x), clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x), layer(x))


@pytest.mark.parametrize("k, s, padding, size", [(3, 1, "same", 7), (3, 2, "same", 7),
                                                 (3, 2, "valid", 8), (1, 2, "same", 5)])
def test_compute_output_shape_matches_the_output(k, s, padding, size):
    layer = AdderConv2D(4, k, strides=s, padding=padding)
    x = np.zeros((2, size, size + 1, 3), "float32")
    assert tuple(layer(x).shape) == layer.compute_output_shape(x.shape)


def test_model_saves_and_loads_as_keras_file(tmp_path):
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, AdderConv2D(3, 3, name="adder")(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    assert isinstance(loaded.get_layer("adder"), AdderConv2D)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="padding"):
        AdderConv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="equal strides"):
        AdderConv2D(4, 3, strides=(1, 2))
