"""Moments over the global batch: summed across replicas, so N replicas see what one device sees.

`channel_moments` is the library's one computation of per-channel
statistics of features (means, variances, covariance of two features):
PKKD's feature loss, `standardize`, the kernels' batch widths and the
feature-health probe read them from it. BatchNorm re-estimation does not:
`adder_tf.batchnorm` lets Keras's own BatchNormalization compute each
batch's statistics and pools those across batches and replicas. The sums are accumulated in float64, where it
matters: an adder layer's output has a mean a hundred times its spread, and
E[x^2] - E[x]^2 from float32 sums would cancel the variance away. On the
compiled CPU path they come from one fused pass (`adder_tf.ops.fused`),
elsewhere from plain TF ops; both have gradients.

Partial sums of replicas meet in `adder_tf.strategy.sum_over_replicas`,
the library's one all-reduce.
"""
from typing import NamedTuple, Optional

import tensorflow as tf

from adder_tf.ops import fused
from adder_tf.strategy import sum_over_replicas

RELATIVE_EPSILON = 1e-8


def global_mean(z, axes):
    """Mean of z over `axes` (kept, size 1) and over the global batch."""
    total = tf.reduce_sum(z, axis=axes, keepdims=True)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(z), axes)), z.dtype)
    total, count = sum_over_replicas([total, count])
    return total / count


class ChannelMoments(NamedTuple):
    """Per-channel statistics over every axis but the last and the global batch, float64.

    count: rows per channel (a scalar); mean, variance: of x, shape (C,);
    other_mean, other_variance, covariance: of y and of (x, y), or None
    without y. Variances are population variances (divided by count).
    """
    count: tf.Tensor
    mean: tf.Tensor
    variance: tf.Tensor
    other_mean: Optional[tf.Tensor] = None
    other_variance: Optional[tf.Tensor] = None
    covariance: Optional[tf.Tensor] = None


def channel_moments(x, y=None):
    """The per-channel moments of x (and of y and their covariance, y of x's shape).

    Differentiable in x and y. Under a distribution strategy, called in a
    replica context: every replica gets the moments of the global batch.
    """
    x = tf.convert_to_tensor(x)
    pair = y is not None
    # Without y the sums of (x, x) are asked for: the fused op reads x once either way
    # (the second operand costs register arithmetic only); the plain-op path skips
    # the three repeated sums (`fused.channel_sums` with t=None).
    sums = fused.channel_sums(x, y)
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float64)
    sums, count = sum_over_replicas([sums, count])
    s1, t1, s2, t2, st = tf.unstack(sums / count)
    variance = s2 - s1 * s1
    if not pair:
        return ChannelMoments(count, s1, variance)
    return ChannelMoments(count, s1, variance, t1, t2 - t1 * t1, st - s1 * t1)


def regularized_variance(variance, relative_epsilon=RELATIVE_EPSILON):
    """variance + an epsilon relative to the mean channel variance (see `standardize`)."""
    return variance + relative_epsilon * tf.reduce_mean(variance) + 1e-30


def standardize(z, relative_epsilon=RELATIVE_EPSILON):
    """Per-channel zero mean, unit variance over batch and positions.

    The epsilon is relative to the tap's mean channel variance, so the result
    does not depend on the feature's overall scale: a fixed epsilon maps a
    whole tap of small-but-informative features to zero (and a loss of zero
    between two such taps costs nothing).
    """
    z = tf.convert_to_tensor(z)
    m = channel_moments(z)
    scale = tf.math.rsqrt(regularized_variance(m.variance, relative_epsilon))
    return (z - tf.cast(m.mean, z.dtype)) * tf.cast(scale, z.dtype)
