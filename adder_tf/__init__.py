"""adder_tf: Adder Neural Networks and PKKD distillation in Keras/TensorFlow.

`from adder_tf import AdderConv2D` gives the layer. The import of TensorFlow
is deferred until something needs it, so that the command line can reject
a bad flag in a fraction of a second.
"""
__version__ = "0.1.0"
__all__ = ["AdderConv2D"]


def __getattr__(name):
    if name == "AdderConv2D":
        from adder_tf.layers.adder import AdderConv2D
        return AdderConv2D
    raise AttributeError(f"module 'adder_tf' has no attribute {name!r}")
