"""AdderNet's adaptive learning rate for adder filters, in any Keras optimizer.

AdderNet (eq. 9-10) rescales each adder layer's filter gradient to
    eta * sqrt(numel(g)) * g / ||g||_2
because adder gradients are far smaller than a CNN's and differ per layer.
The reference does this inside backward, per GPU. Here it happens in
`update_step`, which Keras calls after gradients are summed across replicas,
so N replicas at global batch B make exactly the update of one device at
batch B.

The optimizers here find the adder filters by themselves: when they are
built (on the first step, or when a saved model or a checkpoint is
restored) they take every variable that is the kernel of an AdderConv2D.
Nothing has to be marked by hand.

- `AdderSGD`: SGD + the adaptive rate + the reference's coupled L2 (`l2`:
  weight decay added to the gradient as PyTorch SGD does, not rescaled).
  Keras's own `weight_decay` (decoupled: `w -= lr * wd * w` before the step)
  is honoured as in every Keras optimizer; it is not the reference's decay.
  `exclude_from_weight_decay` (Keras's method) exempts variables from both.
- `adaptive(optimizer, eta)`: the same rate for any other Keras optimizer
  (Adam, RMSprop, ...), as a copy of it whose class is `Adaptive<Name>`.
"""
import keras
from keras import ops

from adder_tf import _keras_internals as internals
from adder_tf.layers.adder import is_adder_filter

DEFAULT_ETA = 0.2


class AdaptiveFilters:
    """Mixin for a Keras optimizer class: rescales adder-filter gradients (eq. 10)."""

    def _init_adaptive(self, eta):
        self.eta = float(eta)
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta!r}")
        self._adder_keys = set()

    def build(self, variables):
        super().build(variables)
        self._adder_keys.update(internals.variable_key(self, v) for v in variables
                                if is_adder_filter(v))

    def mark_adder_filters(self, variables):
        """Rescale these variables too (adder filters that are not an AdderConv2D's kernel)."""
        self._adder_keys.update(internals.variable_key(self, v) for v in variables)

    @property
    def adder_filter_count(self):
        """How many variables this optimizer rescales (0 before it is built)."""
        return len(self._adder_keys)

    def _rescaled(self, gradient, variable):
        gradient = ops.cast(gradient, variable.dtype)
        if self.eta > 0 and internals.variable_key(self, variable) in self._adder_keys:
            gradient = adaptive_rescale(gradient, self.eta)
        return gradient

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(self._rescaled(gradient, variable), variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["eta"] = self.eta
        return config


@keras.saving.register_keras_serializable(package="adder_tf")
class AdderSGD(AdaptiveFilters, keras.optimizers.SGD):
    """keras SGD + per-layer adaptive rescaling of adder filters + coupled L2."""

    def __init__(self, learning_rate=0.1, momentum=0.9, nesterov=False,
                 eta=DEFAULT_ETA, l2=0.0, name="adder_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum,
                         nesterov=nesterov, name=name, **kwargs)
        self._init_adaptive(eta)
        self.l2 = float(l2)
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2!r}")

    def update_step(self, gradient, variable, learning_rate):
        gradient = self._rescaled(gradient, variable)
        if self.l2 > 0 and internals.uses_weight_decay(self, variable):
            gradient = gradient + self.l2 * variable
        keras.optimizers.SGD.update_step(self, gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["l2"] = self.l2
        return config


def _adaptive_class(base):
    """Adaptive<Name>: `base` with the adder filters' adaptive rate; registered for load_model."""
    def __init__(self, *args, eta=DEFAULT_ETA, **kwargs):
        base.__init__(self, *args, **kwargs)
        self._init_adaptive(eta)

    cls = type(f"Adaptive{base.__name__}", (AdaptiveFilters, base),
               {"__init__": __init__, "__module__": __name__,
                "__doc__": f"keras.optimizers.{base.__name__} with AdderNet's adaptive rate."})
    return keras.saving.register_keras_serializable(package="adder_tf")(cls)


_ADAPTIVE = {base: _adaptive_class(base) for base in (
    keras.optimizers.Adam, keras.optimizers.AdamW, keras.optimizers.RMSprop,
    keras.optimizers.Adagrad, keras.optimizers.Adadelta, keras.optimizers.Adamax,
    keras.optimizers.Nadam, keras.optimizers.Lion, keras.optimizers.SGD)}


def adaptive(optimizer, eta=DEFAULT_ETA):
    """A copy of a Keras optimizer that also applies the adaptive rate to adder filters.

    `adaptive(keras.optimizers.Adam(1e-3))` is an `AdaptiveAdam` with the
    same configuration; it saves and loads with the model. Refuses
    optimizers that are already adaptive, and ones built already (their
    slots belong to the original).
    """
    if isinstance(optimizer, AdaptiveFilters):
        raise ValueError(f"optimizer {optimizer.name!r} already applies the adaptive rate")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(f"adaptive() takes a keras optimizer, got {type(optimizer).__name__}")
    base = type(optimizer)
    if base not in _ADAPTIVE:
        _ADAPTIVE[base] = _adaptive_class(base)
    if optimizer.built:
        raise ValueError(f"optimizer {optimizer.name!r} is already built; pass a fresh one")
    return _ADAPTIVE[base].from_config({**optimizer.get_config(), "eta": eta})


def is_adaptive(optimizer):
    """True when `optimizer` applies the adaptive rate to adder filters."""
    return isinstance(optimizer, AdaptiveFilters)


def adaptive_rescale(gradient, eta):
    """eta * sqrt(numel) * g / ||g||_2 (AdderNet eq. 10); zero stays zero."""
    numel = float(gradient.shape.num_elements())
    norm = ops.maximum(ops.sqrt(ops.sum(ops.square(gradient))), 1e-12)
    return gradient * (eta * numel ** 0.5 / norm)


def adder_filters(model):
    """The kernels of every AdderConv2D in a model."""
    return [v for v in model.trainable_variables if is_adder_filter(v)]
