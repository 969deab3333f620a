"""A distiller's loss under tf.distribute, scaled once, the way Keras scales a loss.

Each replica computes its loss as one device would on the batch (see
`adder_tf.distill.losses`); the replicas' gradients are then summed, so the
loss a gradient is taken of is divided by the number of replicas in sync
(`keras.losses.Loss` does the same in its reduction; Keras's own
`train_step` then applies the optimizer's loss scale, as `for_gradient`
does here). Logged values are the unscaled ones.
"""
import tensorflow as tf


def scale_for_distribution(loss):
    """loss / the number of replicas in sync (unchanged on one replica)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss * tf.cast(1.0 / replicas, loss.dtype)
    return loss


def for_gradient(loss, optimizer):
    """What a replica takes the gradient of: loss / replicas, times `optimizer`'s loss scale
    (mixed precision; 1 otherwise). Call it under the tape."""
    return optimizer.scale_loss(scale_for_distribution(loss))
