"""PKKD kernel transforms (Xu et al. 2020, eq. 7-8) with a learnable width.

    CNN (Gaussian-alike):  h = exp(-(x * f) / (2 sigma_c^2))
    ANN (Laplace):         g = exp(-||x - f||_1 / sigma_a)

Both act on a layer's raw output: x * f is a convolution's output, and the
l1 distance is the negated output of an adder layer. sigma is stored as
log(sigma) so it stays positive, and is set from the first batch of real
features (`initialize_from`) because the raw scales differ by orders of
magnitude between layers and flavours: a sigma far from the feature scale
makes the exponent overflow (CNN) or underflow to a constant (ANN).
"""
import keras
from keras import ops

EXPONENT_LIMIT = 30.0   # exp(30) ~ 1e13: finite, and its square too


class _KernelTransform(keras.layers.Layer):
    """A kernel with one learnable width per tapped layer, kept as log(sigma)."""

    def build(self, input_shape):
        self.log_sigma = self.add_weight(name="log_sigma", shape=(), initializer="zeros")

    def sigma(self):
        return ops.exp(self.log_sigma)


@keras.saving.register_keras_serializable(package="adder_tf")
class GaussianKernel(_KernelTransform):
    """h = exp(-z / (2 sigma^2)) of a convolution's raw output z."""

    def call(self, z):
        two_sigma_sq = 2.0 * ops.exp(2.0 * self.log_sigma)
        return ops.exp(ops.clip(-z / two_sigma_sq, -EXPONENT_LIMIT, EXPONENT_LIMIT))

    def initialize_from(self, z):
        """sigma^2 = mean|z|: the exponent is O(1) on typical features."""
        scale = max(float(ops.mean(ops.abs(z))), 1e-6)
        self.log_sigma.assign(0.5 * float(ops.log(scale)))


@keras.saving.register_keras_serializable(package="adder_tf")
class LaplaceKernel(_KernelTransform):
    """g = exp(-d / sigma) of an adder layer's l1 distance d = -output."""

    def call(self, y):
        distance = ops.maximum(-y, 0.0)
        return ops.exp(ops.maximum(-distance / self.sigma(), -EXPONENT_LIMIT))

    def initialize_from(self, y):
        """sigma = mean distance: g is about exp(-1) and varies, not 0 or 1."""
        scale = max(float(ops.mean(ops.abs(y))), 1e-6)
        self.log_sigma.assign(float(ops.log(scale)))
