"""The CIFAR ResNets' geometry follows the AdderNet reference (PyTorch padding=1)."""
import keras
import numpy as np
import pytest

from adder_tf import config as C
from adder_tf.errors import UserError
from adder_tf.models import build_model, tap_names
from adder_tf.models.blocks import strided_window
from adder_tf.opcount import count_model


def _windows_hit(flavour, stride2_padding):
    """Which stride-2 output rows/cols see an input impulse at (2, 2) of an 8x8 map."""
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, strided_window(inputs, flavour, 1, 2, "probe", stride2_padding))
    layer = model.get_layer("probe")
    layer.set_weights([np.ones((3, 3, 1, 1), np.float32) * (1.0 if flavour == "conv" else 0.0)])
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 2, 2, 0] = 1.0
    y = np.asarray(model(x))[0, :, :, 0]
    base = np.asarray(model(np.zeros_like(x)))[0, :, :, 0]
    return sorted({(int(i), int(j)) for i, j in zip(*np.nonzero(np.abs(y - base) > 1e-6))})


@pytest.mark.parametrize("flavour", ["conv", "adder"])
def test_stride2_windows_are_centred_like_the_shortcut(flavour):
    # symmetric (1, 1): output i covers inputs 2i-1..2i+1, centred on 2i, where
    # the 1x1 stride-2 shortcut samples; TF "same" (0, 1) covers 2i..2i+2.
    assert _windows_hit(flavour, "symmetric") == [(1, 1)]
    assert _windows_hit(flavour, "same") == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_resnet20_default_is_symmetric_and_counts_are_unchanged():
    sym = build_model("resnet20", "adder", (32, 32, 3), 10)
    same = build_model("resnet20", "adder", (32, 32, 3), 10, stride2_padding="same")
    assert sym.get_layer("stage2_block1_conv1").padding == "valid"
    assert sym.get_layer("stage2_block1_conv1_pad") is not None
    assert same.get_layer("stage2_block1_conv1").padding == "same"
    a, b = count_model(sym).as_dict(), count_model(same).as_dict()
    assert (a["mul"], a["add"]) == (b["mul"], b["add"]) == (443_008, 81_183_360)
    assert len(tap_names(sym)) == len(tap_names(same)) == 18


def test_reference_classifier_is_bias_free_dense_plus_batchnorm():
    model = build_model("resnet8", "adder", (8, 8, 1), 10, classifier_head="conv_bn")
    dense = model.get_layer("classifier")
    assert not dense.use_bias
    assert isinstance(model.get_layer("classifier_bn"), keras.layers.BatchNormalization)
    assert model.outputs[0].shape[-1] == 10


def test_geometry_flags_are_checked():
    with pytest.raises(UserError, match="stride2_padding"):
        C.Config(model_dir="m", stride2_padding="left").validate()
    with pytest.raises(UserError, match="apply to the CIFAR ResNets"):
        C.Config(model_dir="m", arch="vgg_small", classifier="conv_bn").validate()
