"""Model families: what every flavour shares, and what the binary one must not have."""
import keras
import numpy as np
import pytest

from adder_tf.layers.binary import BinaryConv2D
from adder_tf.models import build_model, tap_names


@pytest.mark.parametrize("arch, shape", [("resnet8", (8, 8, 1)), ("vgg_small", (32, 32, 3))])
def test_binary_layers_see_signed_inputs(arch, shape):
    """sign(ReLU(x)) is +1 everywhere: a 1-bit layer must never follow a ReLU."""
    model = build_model(arch, "binary", shape, 10)
    assert not [l for l in model.layers if isinstance(l, keras.layers.ReLU)]
    binary = [l for l in model.layers if isinstance(l, BinaryConv2D)]
    probe = keras.Model(model.inputs, [l.input for l in binary])
    x = np.random.default_rng(0).random((4, *shape)).astype("float32")
    for layer, seen in zip(binary, probe(x, training=True)):
        seen = np.asarray(seen)
        assert (seen < 0).mean() > 0.2, layer.name


def test_conv_and_adder_flavours_share_structure_and_taps():
    conv = build_model("resnet20", "conv", (32, 32, 3), 10)
    adder = build_model("resnet20", "adder", (32, 32, 3), 10)
    assert len(conv.outputs) == len(adder.outputs) == 1   # logits only
    assert tap_names(conv) == tap_names(adder) and len(tap_names(conv)) == 18
    assert ([conv.get_layer(n).output.shape for n in tap_names(conv)]
            == [adder.get_layer(n).output.shape for n in tap_names(adder)])
    assert [l.name for l in conv.layers] == [l.name for l in adder.layers]
