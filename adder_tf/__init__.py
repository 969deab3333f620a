"""adder_tf: Adder Neural Networks and PKKD distillation in Keras/TensorFlow.

    import adder_tf
    adder_tf.AdderConv2D(...)          # a Conv2D whose MACs are additions
    adder_tf.to_adder(cnn)             # the ANN twin of a Keras CNN
    adder_tf.optim.AdderSGD(...)       # finds adder filters by itself
    adder_tf.distill.PKKD(teacher, student)   # a keras.Model: compile, fit
    adder_tf.batchnorm.reestimate(model, x)   # BatchNorm statistics of today's weights

TensorFlow is imported when one of these is first used, so that the
command line can reject a bad flag in a fraction of a second.
"""
import importlib

__version__ = "0.2.0"
__all__ = ["AdderConv2D", "BinaryConv2D", "to_adder", "distill", "optim", "models", "layers",
           "ops", "batchnorm"]

_ATTRIBUTES = {"AdderConv2D": ("adder_tf.layers.adder", "AdderConv2D"),
               "BinaryConv2D": ("adder_tf.layers.binary", "BinaryConv2D"),
               "to_adder": ("adder_tf.convert", "to_adder")}
_SUBMODULES = ("distill", "optim", "models", "layers", "ops", "data", "callbacks", "export",
               "opcount", "batchnorm")


def __getattr__(name):
    if name in _ATTRIBUTES:
        module, attr = _ATTRIBUTES[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"adder_tf.{name}")
    raise AttributeError(f"module 'adder_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ATTRIBUTES) + list(_SUBMODULES))
