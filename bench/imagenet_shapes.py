"""The distinct adder layer shapes of the ImageNet ResNets, read off the built models.

Each shape is what one AdderConv2D sees and does: input height, width and
channels, output channels, kernel size, stride and padding (ResNet-18's
stride-2 3x3 layers are "valid" on a zero-padded input, PyTorch's padding=1;
ResNet-50's are "same", see adder_tf.models.resnet_imagenet). Layers with
the same shape are timed once; `layers` names them all.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from adder_tf import AdderConv2D  # noqa: E402
from adder_tf.models import build_model  # noqa: E402

ARCHS = ("resnet18", "resnet50")
KEY = ("h", "w", "c_in", "c_out", "kernel", "stride", "padding")


def shape_name(shape):
    """56x56x64_128_k3s2_valid: input HxWxC_in, C_out, kernel, stride, padding."""
    return (f"{shape['h']}x{shape['w']}x{shape['c_in']}_{shape['c_out']}"
            f"_k{shape['kernel']}s{shape['stride']}_{shape['padding']}")


def model_layer_shapes(model):
    """One entry per AdderConv2D layer of a built model, in the model's order."""
    rows = []
    for layer in model.layers:
        if not isinstance(layer, AdderConv2D):
            continue
        _, h, w, c_in = layer.input.shape
        _, oh, ow, c_out = layer.output.shape
        kh, kw = layer.kernel_size
        sh, sw = layer.strides
        if kh != kw or sh != sw:
            raise ValueError(f"{layer.name}: non-square kernel {layer.kernel_size} "
                             f"or stride {layer.strides}")
        rows.append({"layer": layer.name, "h": h, "w": w, "c_in": c_in, "c_out": c_out,
                     "kernel": kh, "stride": sh, "padding": layer.padding,
                     "out_h": oh, "out_w": ow})
    return rows


def build_anns(archs=ARCHS, size=224, classes=1000):
    """{arch: the ANN built at size x size x 3} for each of `archs`."""
    return {arch: build_model(arch, "adder", (size, size, 3), classes) for arch in archs}


def distinct_shapes(models):
    """The distinct adder layer shapes of `models` ({arch: built ANN}).

    Returns a list of dicts (first appearance order) with the shape, its name,
    the multiply-accumulate count of one image through it (adds and
    subtractions for an adder layer: as many), and for each model the
    layers that have it.
    """
    shapes = {}
    for arch, model in models.items():
        for row in model_layer_shapes(model):
            key = tuple(row[k] for k in KEY)
            if key not in shapes:
                shape = {k: row[k] for k in KEY + ("out_h", "out_w")}
                shape["name"] = shape_name(shape)
                shape["macs_per_image"] = (row["out_h"] * row["out_w"] * row["c_out"]
                                           * row["kernel"] ** 2 * row["c_in"])
                shape["layers"] = {}
                shapes[key] = shape
            shapes[key]["layers"].setdefault(arch, []).append(row["layer"])
    return list(shapes.values())


def pick_kinds(shapes):
    """The first shape of each (kernel, stride, padding) kind: a small set that still runs
    every kind of layer (for the smoke mode)."""
    kinds = {}
    for shape in shapes:
        kinds.setdefault((shape["kernel"], shape["stride"], shape["padding"]), shape)
    return list(kinds.values())
