"""One residual block in three flavours: conv (CNN), adder (ANN), binary (BNN).

The flavours differ only in which layer does the window sum, so a CNN teacher
and its ANN student have identical structure and matching tap names.
"""
import keras
from keras import layers

from adder_tf import _keras_internals as internals
from adder_tf.layers.adder import AdderConv2D

FLAVOURS = ("conv", "adder", "binary")
BN_MOMENTUM = 0.9   # PyTorch's BatchNorm default (0.1 update rate)
BN_EPSILON = 1e-5


STRIDE2_PADDINGS = ("symmetric", "same")


def window_layer(flavour, filters, kernel_size, strides=1, name=None, padding="same"):
    """The layer that replaces a convolution in the given flavour."""
    if flavour == "conv":
        return layers.Conv2D(filters, kernel_size, strides, padding=padding,
                             use_bias=False, kernel_initializer="he_normal",
                             name=name)
    if flavour == "adder":
        return AdderConv2D(filters, kernel_size, strides, padding=padding, use_bias=False,
                           name=name)
    if flavour == "binary":
        from adder_tf.layers.binary import BinaryConv2D
        return BinaryConv2D(filters, kernel_size, strides, padding=padding, use_bias=False,
                            kernel_initializer="he_normal", name=name)
    raise ValueError(f"unknown flavour {flavour!r}; expected one of {FLAVOURS}")


def strided_window(x, flavour, filters, stride, name, stride2_padding="symmetric"):
    """A 3x3 window layer; at stride 2, padded (1, 1) on each side as PyTorch's padding=1.

    TensorFlow's "same" pads a 3x3 stride-2 layer on an even input (0, 1), so
    output pixel i is centred on input 2i + 1 while the block's 1x1 stride-2
    shortcut samples input 2i: the two paths are one pixel apart. The
    reference (PyTorch, padding=1) pads (1, 1) and keeps them aligned. Zero
    padding then "valid" is that, in every flavour (for an adder layer the
    padded taps contribute |0 - w|, as in the reference).
    """
    if stride == 1 or stride2_padding == "same":
        return window_layer(flavour, filters, 3, stride, name)(x)
    if stride2_padding != "symmetric":
        raise ValueError(f"stride2_padding must be one of {STRIDE2_PADDINGS}, got {stride2_padding!r}")
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return window_layer(flavour, filters, 3, stride, name, padding="valid")(x)


def activation(flavour, name):
    """ReLU, except before 1-bit layers: sign(ReLU(x)) would be +1 everywhere.

    In the binary flavour the sign inside the next BinaryConv2D is the
    non-linearity, and BatchNorm before it centres what it binarises (the
    BN -> sign -> XNOR-conv order of XNOR-Net and Bi-Real Net).
    """
    if flavour == "binary":
        return layers.Identity(name=name)
    return layers.ReLU(name=name)


def batch_norm(name, sync=False):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                     synchronized=sync, name=name)


class Taps:
    """Collects the raw (pre-BatchNorm) outputs of the distillation points."""

    def __init__(self):
        self.outputs = []

    def add(self, tensor):
        self.outputs.append(tensor)
        return tensor


def basic_block(x, filters, stride, flavour, name, taps, sync_bn=False,
                stride2_padding="symmetric"):
    """ResNet BasicBlock; both window layers are tapped, the shortcut is not."""
    y = taps.add(strided_window(x, flavour, filters, stride, f"{name}_conv1", stride2_padding))
    y = activation(flavour, f"{name}_relu1")(batch_norm(f"{name}_bn1", sync_bn)(y))
    y = taps.add(window_layer(flavour, filters, 3, 1, f"{name}_conv2")(y))
    y = batch_norm(f"{name}_bn2", sync_bn)(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = window_layer(flavour, filters, 1, stride, f"{name}_proj")(x)
        shortcut = batch_norm(f"{name}_proj_bn", sync_bn)(shortcut)
    return activation(flavour, f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def stem(x, filters, name="stem", sync_bn=False, kernel_size=3, strides=1, flavour="conv"):
    """First layer: always a real convolution (it sees raw pixels)."""
    x = layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return activation(flavour, f"{name}_relu")(batch_norm(f"{name}_bn", sync_bn)(x))


CLASSIFIERS = ("dense", "conv_bn")


def classifier(x, num_classes, head="dense", sync_bn=False):
    """Global average pool and a classifier that keeps its multiplications.

    "dense": a dense layer with bias. "conv_bn": the AdderNet reference
    ANN-20's head, a 1x1 conv without bias on the pooled 1x1 map (a dense
    layer without bias) followed by BatchNorm on the logits.
    """
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if head == "dense":
        return layers.Dense(num_classes, name="classifier")(x)
    if head != "conv_bn":
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {head!r}")
    x = layers.Dense(num_classes, use_bias=False, name="classifier")(x)
    return batch_norm("classifier_bn", sync_bn)(x)


TAPS_ATTR = "_adder_tf_taps"


def assemble(inputs, logits, taps, name):
    """Functional model image -> logits that knows its distillation taps (`tap_names`).

    With adder layers it is an `AdderModel`, whose fit re-estimates BatchNorm statistics.
    """
    model = keras.Model(inputs, logits, name=name)
    if any(isinstance(layer, AdderConv2D) for layer in model.layers):
        from adder_tf.models.adder_model import AdderModel
        model = AdderModel(inputs, logits, name=name)
    setattr(model, TAPS_ATTR, tuple(internals.producer(t).name for t in taps.outputs))
    return model
