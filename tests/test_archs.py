"""Every architecture in every flavour: shapes, taps, inference model."""
import numpy as np
import pytest

from adder_tf.layers.adder import AdderConv2D
from adder_tf.layers.binary import BinaryConv2D
from adder_tf.models import architectures, build_model, tap_names

IMAGENET = ("resnet18", "resnet50")
# taps = intermediate window layers (all but the first conv and the classifier,
# projections excluded)
EXPECTED_TAPS = {"resnet8": 6, "resnet14": 12, "resnet20": 18, "resnet32": 30,
                 "resnet44": 42, "resnet56": 54, "vgg_small": 5,
                 "resnet18": 16, "resnet50": 48}
WINDOW = {"conv": "Conv2D", "adder": AdderConv2D, "binary": BinaryConv2D}


def _shape(arch):
    return (64, 64, 3) if arch in IMAGENET else (32, 32, 3)


def test_all_architectures_registered():
    assert set(EXPECTED_TAPS) <= set(architectures())


@pytest.mark.parametrize("arch", sorted(EXPECTED_TAPS))
def test_flavours_share_structure(arch):
    models = {f: build_model(arch, f, _shape(arch), 7) for f in ("conv", "adder", "binary")}
    shapes = {f: [tuple(m.get_layer(n).output.shape) for n in tap_names(m)] for f, m in models.items()}
    assert len(shapes["conv"]) == EXPECTED_TAPS[arch]
    assert shapes["conv"] == shapes["adder"] == shapes["binary"]
    names = {f: [l.name for l in m.layers] for f, m in models.items()}
    assert names["conv"] == names["adder"] == names["binary"]
    for flavour, model in models.items():
        assert tuple(model.outputs[0].shape) == (None, 7)
        assert len(model.outputs) == 1
        # first conv and classifier stay multiplication layers
        assert type(model.get_layer("stem_conv")).__name__ == "Conv2D"
        assert type(model.get_layer("classifier")).__name__ == "Dense"
        if flavour != "conv":
            special = [l for l in model.layers if isinstance(l, WINDOW[flavour])]
            projections = [l for l in special if l.name.endswith("_proj")]
            assert len(special) - len(projections) == EXPECTED_TAPS[arch]
            assert not [l for l in model.layers
                        if type(l).__name__ == "Conv2D" and l.name != "stem_conv"]


def test_imagenet_spatial_sizes():
    m = build_model("resnet50", "conv", (224, 224, 3), 1000)
    assert m.get_layer("stem_pool").output.shape[1:3] == (56, 56)
    assert m.get_layer("stage4_block3_out").output.shape[1:] == (7, 7, 2048)
    assert m.get_layer("stage2_block1_conv2").strides == (2, 2)   # stride on the 3x3
    m = build_model("resnet18", "conv", (224, 224, 3), 1000)
    assert m.get_layer("stage4_block2_out").output.shape[1:] == (7, 7, 512)
    # torchvision's ResNet-18 parameter count (weights, BN scale/offset, FC)
    assert sum(int(np.prod(w.shape)) for w in m.trainable_weights) == 11_689_512


def test_vgg_small_layout():
    m = build_model("vgg_small", "conv", (32, 32, 3), 10)
    assert m.get_layer("flatten").output.shape[1:] == (512 * 4 * 4,)
    assert [m.get_layer(f"conv{i}").filters for i in range(1, 6)] == [128, 256, 256, 512, 512]


@pytest.mark.parametrize("arch", ["resnet8", "vgg_small"])
@pytest.mark.parametrize("flavour", ["conv", "adder", "binary"])
def test_forward_runs(arch, flavour):
    model = build_model(arch, flavour, (16, 16, 3), 5)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    out = model([x], training=False)
    assert out.shape == (2, 5) and np.all(np.isfinite(out))
