"""PKKD kernel transforms (Xu et al. 2020, eq. 7-8) with a learnable width.

    CNN (Gaussian-alike):  h = exp(-(x * f) / (2 sigma_c^2))
    ANN (Laplace):         g = exp(-||x - f||_1 / sigma_a)

Both act on a layer's raw output: x * f is a convolution's output, and the
l1 distance is the negated output of an adder layer.

The width is the feature scale of the current batch times a learned factor:

    sigma_a   = mean(d)   * exp(t)        (d = l1 distance)
    sigma_c^2 = mean(|z|) * exp(2 t)      (z = x * f)

The batch scale (a global-batch mean, without gradient) keeps the exponent
O(1) whatever the layer and however far its features drift in training: a
fixed or freely learned sigma does not, and the exponent then saturates
(g or h constant, zero gradient: the collapse seen on ResNet-20). It needs
no first-batch initialisation. `bounded=True` (the default) keeps the
learned factor within [1/4, 4] with a smooth squashing function whose slope
never reaches 0, so no width can run off to where the kernel is flat;
`bounded=False` learns t freely (the paper's learnable sigma); `learned=False` keeps the factor at 1. The Laplace
exponent is <= 0 and cannot overflow; the Gaussian one is clipped at 30 per
element, which only values beyond 60 times the batch's mean |x*f| reach:
the width follows the batch, so a whole tap cannot saturate.
"""
import math

import keras
from keras import ops

EXPONENT_LIMIT = 30.0   # exp(30) ~ 1e13: finite, and its square too
LOG_FACTOR_LIMIT = math.log(4.0)


def _soft_unit(x):
    """x / sqrt(1 + x^2): like tanh, but its slope decays polynomially, never to 0 in float32."""
    return x * ops.rsqrt(1.0 + ops.square(x))


def batch_mean(z):
    """Mean over the global batch (all replicas), without gradient."""
    from adder_tf.ops.moments import global_mean
    return ops.stop_gradient(ops.reshape(global_mean(z, tuple(range(len(z.shape)))), ()))


class _KernelTransform(keras.layers.Layer):
    """A kernel with one learnable log-factor t on the batch's feature scale."""

    def __init__(self, bounded=True, learned=True, **kwargs):
        super().__init__(**kwargs)
        self.bounded = bool(bounded)
        self.learned = bool(learned)

    def build(self, input_shape):
        self.log_factor = (self.add_weight(name="log_factor", shape=(), initializer="zeros")
                           if self.learned else None)

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
        config.update(bounded=self.bounded, learned=self.learned)
        return config


@keras.saving.register_keras_serializable(package="adder_tf")
class GaussianKernel(_KernelTransform):
    """h = exp(-z / (2 sigma^2)) of a convolution's raw output z."""

    def sigma(self, z):
        scale = ops.maximum(batch_mean(ops.abs(z)), 1e-12)
        return self.scaled(ops.sqrt(scale))

    def call(self, z):
        inv_two_sigma_sq = 0.5 / ops.square(self.sigma(z))
        return ops.exp(ops.minimum(-z * inv_two_sigma_sq, EXPONENT_LIMIT))


@keras.saving.register_keras_serializable(package="adder_tf")
class LaplaceKernel(_KernelTransform):
    """g = exp(-d / sigma) of an adder layer's l1 distance d = -output."""

    def sigma(self, y):
        # An adder output is -distance <= 0, so mean(-y) is the mean distance.
        return self.scaled(ops.maximum(-batch_mean(y), 1e-12))

    def call(self, y):
        # exp(-d / sigma) with d = -y >= 0: in (0, 1], no overflow possible.
        return ops.exp(ops.minimum(y, 0.0) * (1.0 / self.sigma(y)))
