"""to_adder from Python, as a Keras user meets it."""
import keras
import numpy as np
import pytest

import adder_tf
from adder_tf import AdderConv2D

from keras_user import small_cnn


# -- to_adder ------------------------------------------------------------------------------
def test_to_adder_converts_every_conv_but_the_first_and_keeps_names():
    cnn = small_cnn()
    ann = adder_tf.to_adder(cnn)
    assert [l.name for l in ann.layers] == [l.name for l in cnn.layers]
    kinds = {l.name: type(l).__name__ for l in ann.layers}
    assert (kinds["conv0"], kinds["conv1"], kinds["conv2"], kinds["fc"]) == (
        "Conv2D", "AdderConv2D", "AdderConv2D", "Dense")
    # BatchNorm after adder layers as the library's models have it; the first one as written
    assert [ann.get_layer(f"bn{i}").momentum for i in range(3)] == [0.99, 0.9, 0.9]
    assert ann.get_layer("bn1").epsilon == 1e-5
    assert ann.output.shape == cnn.output.shape
    assert not np.allclose(ann.get_layer("fc").kernel.numpy(), cnn.get_layer("fc").kernel.numpy())
    kept = adder_tf.to_adder(cnn, keep=["conv2"])
    assert type(kept.get_layer("conv2")).__name__ == "Conv2D"


def test_to_adder_takes_sequential_models_and_refuses_what_it_cannot_convert():
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                            keras.layers.Conv2D(4, 3, name="b"),
                            keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
    ann = adder_tf.to_adder(seq)
    assert isinstance(ann, adder_tf.models.AdderModel) and isinstance(ann.get_layer("b"), AdderConv2D)
    assert [l.name for l in ann.layers[1:]] == [l.name for l in seq.layers]
    assert ann.get_layer("bn").momentum == 0.9
    dilated = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                                keras.layers.Conv2D(4, 3, dilation_rate=2, name="d"),
                                keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'d'.*dilation_rate"):
        adder_tf.to_adder(dilated)
    with pytest.raises(ValueError, match="keep"):
        adder_tf.to_adder(seq, keep=["nope"])


def test_to_adder_refuses_a_fused_activation_that_would_make_a_dead_layer():
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                            keras.layers.Conv2D(4, 3, activation="relu", name="b"),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'b'.*'relu'.*dead"):
        adder_tf.to_adder(seq)
    assert type(adder_tf.to_adder(seq, keep=["b"]).get_layer("b")) is keras.layers.Conv2D
    apart = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                              keras.layers.Conv2D(4, 3, name="b"), keras.layers.ReLU(name="r"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'b'.*ReLU 'r' with no normalization.*dead"):
        adder_tf.to_adder(apart)


def test_to_adder_keeps_a_convolutional_classifier_multiplicative():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="mid")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(3, 1, name="head")(x)          # the classifier: a 1x1 conv
    cnn = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    ann = adder_tf.to_adder(cnn)
    kinds = [type(ann.get_layer(n)).__name__ for n in ("stem", "mid", "head")]
    assert kinds == ["Conv2D", "AdderConv2D", "Conv2D"]
    assert type(adder_tf.to_adder(cnn, convert_last=True).get_layer("head")) is AdderConv2D
