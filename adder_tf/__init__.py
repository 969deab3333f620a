"""adder_tf: Adder Neural Networks and PKKD distillation in Keras/TensorFlow."""
from adder_tf.layers.adder import AdderConv2D

__version__ = "0.1.0"
__all__ = ["AdderConv2D"]
