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

# compile()'s default for AdderModel and every distiller (Keras's is "auto",
# which picks XLA on a GPU): the compiled CPU adder op cannot run inside XLA,
# and the XLA path has been measured on CPU only.

@keras.saving.register_keras_serializable(package="adder_tf")
class AdderModel(ReestimatingFit, keras.Model):
    """keras.Model(inputs, outputs) whose fit leaves statistics that describe the network.

    compile takes keras.Model.compile's arguments with jit_compile=False by
    default (`adder_tf.ops.JIT_COMPILE`, set by ReestimatingFit.compile).
    """

    def compile_from_config(self, config):
        """What load_model calls (Keras skips an overridden compile otherwise)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)
