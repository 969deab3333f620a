from adder_tf.layers.adder import AdderConv2D
from adder_tf.layers.binary import BinaryConv2D

__all__ = ["AdderConv2D", "BinaryConv2D"]
