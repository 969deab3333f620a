"""PKKD kernel transforms (Xu et al. 2020, eq. 7-8) with a learnable width.

    CNN (Gaussian-alike):  h = exp(-(x * f) / (2 sigma_c^2))
    ANN (Laplace):         g = exp(-(x (.) f) / sigma_a) = exp(+||x - f||_1 / sigma_a)

Both act on a layer's raw output: x * f is a convolution's output, x (.) f
an adder layer's, which eq. 2 defines as -||x - f||_1. Read with that sign,
eq. 8 is exp(+d / sigma_a) (d = l1 distance), so both kernels DECREASE as
the layer's similarity grows: h with the correlation x * f, g with -d.
Writing exp(-d / sigma_a) would flip the ANN side, and a feature loss
would then pull every student channel against its teacher channel.

The width (relative=True, the default) is a scale of the current batch
times a learned factor:

    sigma_c^2 = mean(|z|) * exp(2 t)                    (z = x * f)
    Laplace, width="spread" (default):
      g = exp((d - mean_c(d)) / sigma_a),   sigma_a = spread(d) * exp(t)
    Laplace, width="mean" (the earlier width, kept for the ablation):
      g = exp(d / sigma_a),                 sigma_a = mean(d) * exp(t)

mean_c(d) is channel c's mean distance over the global batch and spread(d)
the root of the tap's mean per-channel variance (both without gradient).
Why not the mean distance as width: an adder layer's distances have a mean
tens to a hundred times their spread, so d / mean(d) varies by a few
percent across a batch and exp of it is, within about 1%, an affine
function of the tap: after standardization the kernel would be the raw
feature. With the width at the spread the exponent varies by O(1) over the
batch and g bends. Relation to eq. 8: exp(d / s) = exp(mean_c(d) / s) *
exp((d - mean_c(d)) / s); the first factor is one positive constant per
channel for the batch, which the per-channel standardization of the loss
removes (and a 1x1 conv after it can absorb), so the centred kernel is eq. 8
at width s without the factor that would overflow float32 once s is the
spread (the mean distance is many times the spread; exp of the ratio
leaves float32's range past 88).

The batch scale (a global-batch statistic, without gradient) keeps the
exponent O(1) whatever the layer and however far its features drift in
training: a fixed or freely learned sigma does not, and the exponent then
saturates (g or h constant, zero gradient: the collapse seen on ResNet-20).
`bounded=True` keeps the learned factor within [1/4, 4] with a smooth
squashing function whose slope never reaches 0, so no width can run off to
where the kernel is flat; `bounded=False` learns t freely; `learned=False`
keeps the factor at 1.

relative=False is eq. 7-8 as written (uncentred, width="mean" only): the
width itself is the learned parameter (log sigma, free). The paper does not say where it starts; it
starts at the scale of the first batch the kernel sees (a one-time data
initialisation; from a constant such as 1 the exponent of an adder layer
would be in the hundreds and clipped, with no gradient to leave it).

Either way the exponent is clipped at EXPONENT_LIMIT per element, only so
that no float overflows: exp(30)^2 summed over 1e12 elements is still a
finite float32. With widths at the batch scale only elements beyond 30
times the width from the channel's mean distance (the spread width; 30
times the mean distance with the mean width; 60 times its mean |x*f|)
reach it, and a factor of 1/4 moves that to 7.5 spreads.

`exponent(z)` gives the exponent before clipping, and `kernel_statistics`
the width, the exponent's range over the batch and how far the kernel is
from a straight line (R^2 of the best affine fit of its output on the tap):
what `adder_tf.distill.health` reports per tap and side.
"""
import math

import keras
import numpy as np
from keras import ops

from adder_tf.ops.fused import exp_map

EXPONENT_LIMIT = 30.0   # exp(30) ~ 1e13: its square, summed over 1e12 elements, is a finite float32
LOG_FACTOR_LIMIT = math.log(4.0)


def _soft_unit(x):
    """x / sqrt(1 + x^2): like tanh, but its slope decays polynomially, never to 0 in float32."""
    return x * ops.rsqrt(1.0 + ops.square(x))


def _channel_axes(z):
    return tuple(range(len(z.shape) - 1))


def _moments(z):
    from adder_tf.ops.moments import channel_moments
    return channel_moments(z)


def batch_mean(z):
    """Mean over the global batch (all replicas), without gradient."""
    mean = ops.mean(_moments(z).mean)   # every channel has as many rows
    return ops.stop_gradient(ops.cast(mean, z.dtype))


def channel_mean(z, moments=None):
    """Each channel's mean over the global batch and positions, without gradient
    (`moments`: z's `channel_moments`, when already computed)."""
    moments = _moments(z) if moments is None else moments
    return ops.stop_gradient(ops.cast(moments.mean, z.dtype))


def channel_spread(z, moments=None):
    """The root of the mean per-channel variance over the global batch, without gradient
    (`moments`: z's `channel_moments`, when already computed)."""
    moments = _moments(z) if moments is None else moments
    variance = ops.maximum(moments.variance, 0.0)
    return ops.stop_gradient(ops.cast(ops.sqrt(ops.mean(variance)), z.dtype))


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

    def exponent(self, z):
        return -z * (0.5 / ops.square(self.sigma(z)))

    def call(self, z):
        inv_two_sigma_sq = 0.5 / ops.square(self.sigma(z))
        return exp_map(z, -inv_two_sigma_sq, EXPONENT_LIMIT)   # exp(min(-z / 2s^2, limit))


LAPLACE_WIDTHS = ("spread", "mean")


@keras.saving.register_keras_serializable(package="adder_tf")
class LaplaceKernel(_KernelTransform):
    """g = exp(d / sigma) of an adder layer's output y = -d (eq. 8 with eq. 2's sign):
    decreases as the similarity y grows, like the Gaussian kernel of a conv output.

    width="spread" (the default when relative): centred on each channel's batch
    mean distance, sigma at the distances' spread; width="mean" (the default,
    and the only choice, when not relative): sigma at the mean distance
    (nearly a straight line when relative, see the module docstring).
    """

    def __init__(self, width=None, **kwargs):
        super().__init__(**kwargs)
        if width is None:   # the default: spread, or eq. 8's own width when absolute
            width = "spread" if self.relative else "mean"
        if width not in LAPLACE_WIDTHS:
            raise ValueError(f"width must be one of {LAPLACE_WIDTHS}, got {width!r}")
        if width == "spread" and not self.relative:
            raise ValueError("width='spread' needs relative=True (relative=False is eq. 8 as "
                             "written, at the mean width)")
        self.width_kind = width

    def sigma(self, y):
        return self._centred_and_sigma(y)[1]

    def _centred_and_sigma(self, y):
        """(y centred as the width asks, sigma), from one `channel_moments` of y."""
        if self.width_kind == "spread":
            moments = _moments(y)
            return (y - channel_mean(y, moments),
                    self.width(ops.maximum(channel_spread(y, moments), 1e-12)))
        # An adder output is -distance <= 0, so mean(-y) is the mean distance.
        return y, self.width(ops.maximum(-batch_mean(y), 1e-12))

    def exponent(self, y):
        centred, sigma = self._centred_and_sigma(y)
        return -centred / sigma

    def call(self, y):
        # exp(min(-(y - centre) / s, limit)) = exp(min((d - mean_c d) / s, limit))
        centred, sigma = self._centred_and_sigma(y)
        return exp_map(centred, -1.0 / sigma, EXPONENT_LIMIT)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width_kind)
        return config


def kernel_statistics(transform, z):
    """How a kernel maps this batch of tap outputs z (numpy floats):

    width: the kernel's width on this batch (sigma; for the Gaussian, sigma
      with sigma^2 the divisor's half);
    exponent_range: the exponent's max minus min over the batch and positions,
      averaged over channels (a straight line has a tiny range);
    r2: the R^2 of the best affine fit of the kernel's output on z, per
      channel over batch and positions, averaged over channels (1.0 for an
      affine kernel); r2_max: the largest channel's.
    """
    from adder_tf.ops.moments import channel_moments
    z = ops.convert_to_tensor(z)
    axes = _channel_axes(z)
    e = ops.minimum(transform.exponent(z), EXPONENT_LIMIT)
    m = channel_moments(z, ops.exp(e))
    keep = ops.logical_and(m.variance > 0, m.other_variance > 0)
    r2 = ops.where(keep, ops.square(m.covariance) /
                   ops.maximum(m.variance * m.other_variance, 1e-300), float("nan"))
    r2 = ops.convert_to_numpy(r2)
    span = ops.convert_to_numpy(ops.max(e, axis=axes) - ops.min(e, axis=axes))
    finite = r2[np.isfinite(r2)]
    return {"width": float(ops.convert_to_numpy(transform.sigma(z))),
            "exponent_range": float(np.mean(span)),
            "r2": float(np.mean(finite)) if finite.size else float("nan"),
            "r2_max": float(np.max(finite)) if finite.size else float("nan")}
