"""SGD with AdderNet's adaptive learning rate and the reference's coupled L2.

AdderNet (eq. 9-10) rescales each adder layer's filter gradient to
    eta * sqrt(numel(g)) * g / ||g||_2
because adder gradients are far smaller than a CNN's and differ per layer.
The reference does this inside backward, per GPU. Here it happens in
`update_step`, which Keras calls after gradients are summed across replicas,
so N replicas at global batch B make exactly the update of one device at
batch B. Weight decay is then added to the gradient (PyTorch SGD's coupled
L2, not rescaled), as the reference trains; Keras's own `weight_decay` is
decoupled and would not match. `exclude_from_weight_decay` (Keras's own
method) exempts variables from that L2.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="adder_tf")
class AdderSGD(keras.optimizers.SGD):
    """keras SGD + per-layer adaptive rescaling of adder filters + coupled L2."""

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=False,
                 eta=0.2, l2=0.0, name="adder_sgd", **kwargs):
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, momentum=momentum,
                         nesterov=nesterov, name=name, **kwargs)
        self.eta = float(eta)
        self.l2 = float(l2)
        self._adder_keys = set()

    def mark_adder_filters(self, variables):
        """Tell the optimizer which variables are adder filters (rescaled)."""
        self._adder_keys = {self._var_key(v) for v in variables}

    def update_step(self, gradient, variable, learning_rate):
        gradient = ops.cast(gradient, variable.dtype)
        if self.eta > 0 and self._var_key(variable) in self._adder_keys:
            gradient = adaptive_rescale(gradient, self.eta)
        if self.l2 > 0 and self._use_weight_decay(variable):
            gradient = gradient + self.l2 * variable
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(eta=self.eta, l2=self.l2)
        config.pop("weight_decay", None)
        return config


def adaptive_rescale(gradient, eta):
    """eta * sqrt(numel) * g / ||g||_2 (AdderNet eq. 10); zero stays zero."""
    numel = float(gradient.shape.num_elements())
    norm = ops.maximum(ops.sqrt(ops.sum(ops.square(gradient))), 1e-12)
    return gradient * (eta * numel ** 0.5 / norm)


def adder_filters(model):
    """The kernels of every AdderConv2D in a model."""
    from adder_tf.layers.adder import AdderConv2D
    return [layer.kernel for layer in model._flatten_layers()
            if isinstance(layer, AdderConv2D)]
