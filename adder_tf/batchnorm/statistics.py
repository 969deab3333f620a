"""The re-estimation itself: batches in training mode at momentum 0, their statistics pooled."""
import weakref

import keras
import tensorflow as tf

from adder_tf import _keras_internals as internals
from adder_tf.config import DEFAULT_REESTIMATION_STEPS as DEFAULT_STEPS
from adder_tf.layers.adder import mark_reestimated
from adder_tf.strategy import sum_over_replicas

_PASSES = weakref.WeakKeyDictionary()   # model -> ((BatchNorm ids, strategy), traced step)


def reestimated_layers(model):
    """The BatchNormalization layers `reestimate` sets: every trainable one (nested models
    included), not a frozen one nor one with batch renormalization."""
    return [layer for layer in internals.flatten_layers(model, include_self=True)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
            and not layer.renorm]


def reestimate(model, data, steps=DEFAULT_STEPS, batch_size=None, strategy=None):
    """Re-estimate every trainable BatchNorm's moving mean and variance on `steps` batches.

    data: what `fit` takes as x: arrays (one, or a list, tuple or dict of
    them for several inputs; shuffled, in batches of `batch_size`, default
    32), a tf.data.Dataset, a `keras.utils.PyDataset` (shuffled when finite),
    a generator (consumed), each yielding inputs or (inputs, labels[,
    weights]) as for `fit`. strategy: the one the model was built in (by
    default the model's own). Returns the number of batches used (0: the
    statistics are unchanged). Nothing else of the model changes: the state a
    training-mode pass moves besides these statistics (a renorm or frozen
    BatchNorm's, a dropout layer's random seed) is put back afterwards.
    """
    layers = reestimated_layers(model)
    if not layers or steps <= 0 or (isinstance(data, keras.utils.PyDataset) and
                                     data.num_batches == 0):
        return 0
    mark_reestimated(internals.flatten_layers(model))   # before its pass is traced
    strategy = strategy or getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    step = _step_function(model, layers, strategy)
    source = data if isinstance(data, _Source) else _Source(data, batch_size)
    momenta = [layer.momentum for layer in layers]
    others = _other_state(model, layers)
    saved = [v.numpy() for v in others]
    totals, used = None, 0
    try:
        for layer in layers:
            layer.momentum = 0.0   # the next training-mode pass leaves its batch's statistics
        batches = strategy.experimental_distribute_dataset(source.dataset.take(steps))
        for batch in batches:
            batch_totals = _batch_statistics(step(batch))
            totals = batch_totals if totals is None else [t + b for t, b in zip(totals, batch_totals)]
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for variable, value in zip(others, saved):
            variable.assign(value)
        internals.stop_adapter(source.adapter)
    if used:
        rows = totals[0]
        for layer, mean, variance in zip(layers, totals[1::2], totals[2::2]):
            layer.moving_mean.assign(tf.cast(mean / rows, layer.moving_mean.dtype))
            layer.moving_variance.assign(tf.cast(variance / rows, layer.moving_variance.dtype))
    return used


def _other_state(model, layers):
    """The model's non-trainable variables other than the statistics `layers` re-estimate."""
    mine = {id(v) for layer in layers for v in (layer.moving_mean, layer.moving_variance)}
    return [v for v in model.non_trainable_variables if id(v) not in mine]


class _Source:
    """`data` as Keras's own adapter reads it, made once: arrays and finite PyDatasets
    shuffled (Keras ignores shuffle for the rest)."""

    def __init__(self, data, batch_size=None):
        shuffle = (data.num_batches is not None if isinstance(data, keras.utils.PyDataset)
                   else internals.is_array_data(data))
        self.adapter = internals.data_adapter(data, batch_size=batch_size or 32, shuffle=shuffle)
        self.dataset = self.adapter.get_tf_dataset()


def _step_function(model, layers, strategy):
    """A traced step: a distributed batch -> [rows, rows * mean, rows * (variance + mean^2),
    ...] per BatchNorm over the global batch: each replica's, from the moving statistics
    a momentum-0 pass leaves, summed by `sum_over_replicas`."""
    key = (tuple(id(layer) for layer in layers), strategy)
    cached = _PASSES.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    network = weakref.ref(model)   # the cache must not keep the model alive

    def replica(batch):
        inputs = keras.utils.unpack_x_y_sample_weight(batch)[0]   # as a train_step reads it
        network()(inputs, training=True)
        rows = tf.cast(tf.shape(tf.nest.flatten(inputs)[0])[0], tf.float64)
        out = [rows]
        for layer in layers:
            mean = tf.cast(layer.moving_mean.value, tf.float64)
            variance = tf.cast(layer.moving_variance.value, tf.float64)
            out += [rows * mean, rows * (variance + tf.square(mean))]
        return sum_over_replicas(out)

    def step(batch):   # every replica holds the global sums: one replica's copy
        return [strategy.experimental_local_results(s)[0]
                for s in strategy.run(replica, args=(batch,))]

    function = tf.function(step, reduce_retracing=True)
    _PASSES[model] = (key, function)
    return function


def _batch_statistics(sums):
    """[rows, rows * mean, rows * variance, ...] of one global batch from its replicas' sums."""
    rows = sums[0]
    out = [rows]
    for total, squares in zip(sums[1::2], sums[2::2]):
        mean = total / rows
        out += [total, rows * tf.maximum(squares / rows - tf.square(mean), 0.0)]
    return out
