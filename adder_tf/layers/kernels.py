"""PKKD kernel transforms (Xu et al. 2020, eq. 7-8) with a learnable width.

    CNN (Gaussian-alike):  h = exp(-(x * f) / (2 sigma_c^2))
    ANN (Laplace):         g = exp(-(x (.) f) / sigma_a) = exp(+||x - f||_1 / sigma_a)

Both act on a layer's raw output: x * f is a convolution's output, x (.) f
an adder layer's, which eq. 2 defines as -||x - f||_1. Read with that sign,
eq. 8 is exp(+d / sigma_a) (d = l1 distance), so both kernels DECREASE as
the layer's similarity grows: h with the correlation x * f, g with -d.
Writing exp(-d / sigma_a) would flip the ANN side, and a feature loss
would then pull every student channel against its teacher channel.

The width (relative=True, the default) is the feature scale of the current
batch times a learned factor:

    sigma_a   = mean(d)   * exp(t)
    sigma_c^2 = mean(|z|) * exp(2 t)      (z = x * f)

The batch scale (a global-batch mean, without gradient) keeps the exponent
O(1) whatever the layer and however far its features drift in training: a
fixed or freely learned sigma does not, and the exponent then saturates
(g or h constant, zero gradient: the collapse seen on ResNet-20).
`bounded=True` keeps the learned factor within [1/4, 4] with a smooth
squashing function whose slope never reaches 0, so no width can run off to
where the kernel is flat; `bounded=False` learns t freely; `learned=False`
keeps the factor at 1.

relative=False is eq. 7-8 as written: the width itself is the learned
parameter (log sigma, free). The paper does not say where it starts; it
starts at the scale of the first batch the kernel sees (a one-time data
initialisation; from a constant such as 1 the exponent of an adder layer
would be in the hundreds and clipped, with no gradient to leave it).

Either way the exponent is clipped at EXPONENT_LIMIT per element, only so
that no float overflows: exp(30)^2 summed over 1e12 elements is still a
finite float32. With widths at the batch scale only elements beyond 30
times the batch's mean distance (60 times its mean |x*f|) reach it.
"""
import math

import keras
from keras import ops

from adder_tf.ops.fused import exp_map

EXPONENT_LIMIT = 30.0   # exp(30) ~ 1e13: its square, summed over 1e12 elements, is a finite float32
LOG_FACTOR_LIMIT = math.log(4.0)


def _soft_unit(x):
    """x / sqrt(1 + x^2): like tanh, but its slope decays polynomially, never to 0 in float32."""
    return x * ops.rsqrt(1.0 + ops.square(x))


def batch_mean(z):
    """Mean over the global batch (all replicas), without gradient."""
    from adder_tf.ops.moments import global_mean
    return ops.stop_gradient(ops.reshape(global_mean(z, tuple(range(len(z.shape)))), ()))


class _KernelTransform(keras.layers.Layer):
    """A kernel whose width is the batch's feature scale times a learned factor,
    or (relative=False) a learned width of its own."""

    def __init__(self, bounded=True, learned=True, relative=True, **kwargs):
        super().__init__(**kwargs)
        self.bounded = bool(bounded)
        self.learned = bool(learned) or not relative
        self.relative = bool(relative)

    def build(self, input_shape):
        # relative: t is the log-factor on the batch scale; absolute: log sigma = t + offset,
        # the offset set once from the first batch seen (non-trainable, then constant).
        self.log_factor = (self.add_weight(name="log_factor", shape=(), initializer="zeros")
                           if self.learned else None)
        if not self.relative:
            self.log_offset = self.add_weight(name="log_offset", shape=(), initializer="zeros",
                                              trainable=False, aggregation="only_first_replica")
            self.initialized = self.add_weight(name="initialized", shape=(), initializer="zeros",
                                               trainable=False, aggregation="only_first_replica")

    def width(self, scale):
        """The width for a batch whose feature scale (same unit as the width) is `scale`."""
        if self.relative:
            return self.scaled(scale)
        # The first call fixes the offset at log(scale); later calls keep it.
        first = self.initialized < 0.5
        offset = ops.where(first, ops.log(ops.cast(scale, "float32")), self.log_offset)
        self.log_offset.assign(offset)
        self.initialized.assign(1.0)
        return ops.cast(ops.exp(self.log_factor + offset), scale.dtype)

    def scaled(self, base):
        """base * exp(t): the learned factor on the batch's scale (none when not learned)."""
        if self.log_factor is None:
            return base
        return base * ops.cast(ops.exp(self.factor_exponent()), base.dtype)

    def factor_exponent(self):
        t = self.log_factor
        return LOG_FACTOR_LIMIT * _soft_unit(t / LOG_FACTOR_LIMIT) if self.bounded else t

    def get_config(self):
        config = super().get_config()
        config.update(bounded=self.bounded, learned=self.learned, relative=self.relative)
        return config


@keras.saving.register_keras_serializable(package="adder_tf")
class GaussianKernel(_KernelTransform):
    """h = exp(-z / (2 sigma^2)) of a convolution's raw output z: decreases as z grows."""

    def sigma(self, z):
        scale = ops.maximum(batch_mean(ops.abs(z)), 1e-12)
        return self.width(ops.sqrt(scale))

    def call(self, z):
        inv_two_sigma_sq = 0.5 / ops.square(self.sigma(z))
        return exp_map(z, -inv_two_sigma_sq, EXPONENT_LIMIT)   # exp(min(-z / 2s^2, limit))


@keras.saving.register_keras_serializable(package="adder_tf")
class LaplaceKernel(_KernelTransform):
    """g = exp(d / sigma) of an adder layer's output y = -d (eq. 8 with eq. 2's sign):
    decreases as the similarity y grows, like the Gaussian kernel of a conv output."""

    def sigma(self, y):
        # An adder output is -distance <= 0, so mean(-y) is the mean distance.
        return self.width(ops.maximum(-batch_mean(y), 1e-12))

    def call(self, y):
        return exp_map(y, -1.0 / self.sigma(y), EXPONENT_LIMIT)   # exp(min(-y / s, limit))
