"""Moments over the global batch: summed across replicas, so N replicas see what one device sees."""
import tensorflow as tf


def global_mean(z, axes):
    total = tf.reduce_sum(z, axis=axes, keepdims=True)
    count = tf.cast(tf.reduce_prod(tf.gather(tf.shape(z), axes)), z.dtype)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, total)
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return total / count


RELATIVE_EPSILON = 1e-8


def standardize(z, relative_epsilon=RELATIVE_EPSILON):
    """Per-channel zero mean, unit variance over batch and positions.

    The epsilon is relative to the tap's mean channel variance, so the result
    does not depend on the feature's overall scale: a fixed epsilon maps a
    whole tap of small-but-informative features to zero (and a loss of zero
    between two such taps costs nothing).
    """
    axes = tuple(range(len(z.shape) - 1))
    mean = global_mean(z, axes)
    var = global_mean(tf.square(z - mean), axes)
    eps = relative_epsilon * tf.reduce_mean(var) + 1e-30
    return (z - mean) * tf.math.rsqrt(var + eps)
