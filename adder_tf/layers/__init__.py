from adder_tf.layers.adder import AdderConv2D

__all__ = ["AdderConv2D"]
