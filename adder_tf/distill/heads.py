"""The alignment heads of PKKD: kernel transform then 1x1 conv (eq. 11-12).

One head per tapped layer and side. Which parts are used is Table 1's
ablation (`--feature_loss`):

    raw             y = z
    conv1x1         y = rho(standardize(z))
    kernel          y = kernel(z)
    kernel_conv1x1  y = rho(kernel(z))          (the full method)

(raw features go through `standardize` before rho because the adder
outputs are O(K) and negative, the conv outputs O(1).) The heads live only
in training; the exported networks do not contain them.
"""
import keras
import numpy as np
import tensorflow as tf

from adder_tf.config import FEATURE_LOSSES
from adder_tf.layers.kernels import GaussianKernel, LaplaceKernel



def standardize(z, epsilon=1e-5):
    """Per-channel zero mean, unit variance over batch and positions.

    Features of a CNN and an ANN differ in scale by orders of magnitude, and
    a loss that compares raw scales can be lowered by shrinking both sides.
    Comparing standardized features makes the feature loss scale-invariant:
    it becomes 2 (1 - correlation) per channel, bounded, and no head can
    reach zero loss by driving its output to a constant. The moments are
    those of the global batch (summed across replicas), so N replicas
    compute the loss one device would.
    """
    axes = tuple(range(len(z.shape) - 1))
    mean = _global_mean(z, axes)
    var = _global_mean(tf.square(z - mean), axes)
    return (z - mean) * tf.math.rsqrt(var + epsilon)


def _global_mean(z, axes):
    total = tf.reduce_sum(z, axis=axes, keepdims=True)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(z), axes)), z.dtype)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return total / count


@keras.saving.register_keras_serializable(package="adder_tf")
class AlignmentHead(keras.layers.Layer):
    """Kernel transform (Gaussian for a CNN tap, Laplace for an ANN tap) + 1x1 conv."""

    def __init__(self, side, feature_loss="kernel_conv1x1", **kwargs):
        super().__init__(**kwargs)
        if side not in ("teacher", "student"):
            raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
        if feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"feature_loss must be one of {FEATURE_LOSSES}, got {feature_loss!r}")
        self.side = side
        self.feature_loss = feature_loss
        self.use_kernel = feature_loss.startswith("kernel")
        self.use_conv = feature_loss.endswith("conv1x1")
        self.kernel_transform = None
        if self.use_kernel:
            self.kernel_transform = (GaussianKernel(name="gaussian") if side == "teacher"
                                     else LaplaceKernel(name="laplace"))

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.kernel_transform is not None:
            self.kernel_transform.build(input_shape)
        self.rho = None
        if self.use_conv:
            # Identity at the start: alignment begins from the features themselves.
            self.rho = keras.layers.Conv2D(
                channels, 1, name="rho",
                kernel_initializer=keras.initializers.Constant(
                    np.eye(channels, dtype="float32")[None, None]))
            self.rho.build(input_shape)

    def call(self, z):
        y = self.kernel_transform(z) if self.use_kernel else z
        if self.use_conv:
            y = self.rho(y if self.use_kernel else standardize(y))
        return y

    def initialize_from(self, z):
        if self.kernel_transform is not None:
            self.kernel_transform.initialize_from(z)

    def get_config(self):
        config = super().get_config()
        config.update(side=self.side, feature_loss=self.feature_loss)
        return config
