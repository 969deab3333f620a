"""The adder op: `adder_conv2d(x, w, strides, padding)` dispatches to a path."""
from adder_tf.ops.adder_reference import adder_conv2d_reference


def adder_conv2d(x, w, strides=1, padding="same"):
    return adder_conv2d_reference(x, w, strides, padding)


__all__ = ["adder_conv2d", "adder_conv2d_reference"]
