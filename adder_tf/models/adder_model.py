"""AdderModel: a functional keras.Model with adder layers, right at inference after `fit`.

An adder network's BatchNorm statistics trail its weights (the adaptive
learning rate moves every filter by the same step norm, and each channel's
mean moves a sizeable part of its spread per step), so moving averages
describe weights that are gone. `AdderModel.fit` re-estimates them on its
own training data before every validation and when training ends
(`adder_tf.batchnorm.ReestimatingFit`), whatever form of data `fit` is
given. `to_adder` and `build_model` return one; it saves, loads and exports
as any functional model. A subclassed model of one's own gets the same `fit`
from the mixin: `class Net(adder_tf.batchnorm.ReestimatingFit, keras.Model)`.
"""
import keras

from adder_tf.batchnorm import ReestimatingFit


@keras.saving.register_keras_serializable(package="adder_tf")
class AdderModel(ReestimatingFit, keras.Model):
    """keras.Model(inputs, outputs) whose fit leaves statistics that describe the network.

    compile takes keras.Model.compile's arguments with jit_compile=False by
    default (`adder_tf.ops.JIT_COMPILE`, set by ReestimatingFit.compile).
    """
