"""BatchNorm statistics that describe a network as it is now, under any strategy.

An adder network's BatchNorm inputs move under AdderNet's adaptive learning
rate, so moving averages of past batches describe weights that no longer
exist. `reestimate(model, data)` sets every trainable BatchNorm's moving
mean and variance to the batch-size-weighted average of the statistics of
`steps` batches under today's weights. The data is read as `fit` reads it
(Keras's own adapters; arrays and finite `PyDataset`s shuffled). Each batch
runs in training mode with every momentum at 0, so Keras's own update leaves
that batch's statistics in the moving variables (any model works:
functional, Sequential, nested, subclassed); they are pooled in float64
over batches and replicas (`adder_tf.strategy.sum_over_replicas`), so every
replica and worker ends with the global batch's values. Frozen BatchNorms
keep theirs. An adder layer trained without any of this (a plain
keras.Model fitted without the callback) warns once (docs/batchnorm.md).
"""
import collections
import inspect
import time
import types
import warnings
import weakref

import keras
import tensorflow as tf

from adder_tf import _keras_internals as internals
from adder_tf.config import DEFAULT_REESTIMATION_STEPS as DEFAULT_STEPS
from adder_tf.layers.adder import AdderConv2D, mark_reestimated
from adder_tf.ops import JIT_COMPILE
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


class BatchNormReestimation(keras.callbacks.Callback):
    """Before every validation and when training ends: BatchNorm statistics re-estimated
    with the weights of that moment (`reestimate`).

    Works with a distiller (its student) and with any model under
    `model.fit`, under any tf.distribute strategy. `AdderModel` and the
    distillers add it by themselves; for a model of one's own, pass it to
    `fit` with the training inputs: `callbacks=[BatchNormReestimation(x)]`.
    `data` may also be a function of the epoch (counted from 0, as Keras
    counts) returning such inputs: the re-estimation in epoch e reads
    `data(e)`, so a run resumed from a checkpoint re-estimates on the
    batches an undisturbed run does (the trainer passes epoch e's training
    data, drawn from (seed, e) alone: `Data.train_from`).
    """

    def __init__(self, data, steps=DEFAULT_STEPS, batch_size=None):
        super().__init__()
        self.data = data
        self.steps = steps
        self.batch_size = batch_size
        self.seconds = []
        self._done_at = None
        self._source = None   # the data as Keras reads it, made at the first re-estimation
        self._why_not = "the data gave no batch (a generator read already?)"
        self._warned = False
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_begin(self, logs=None):
        # Before the training step is traced: its adder layers do not warn.
        mark_reestimated(internals.flatten_layers(_network(self.model)))

    def on_test_begin(self, logs=None):
        self.reestimate()

    def on_epoch_end(self, epoch, logs=None):
        # Epochs without a validation: checkpoints and early stopping read the
        # statistics too (callbacks after this one see the re-estimated ones).
        self.reestimate()

    def on_train_end(self, logs=None):
        self.reestimate()

    def reestimate(self):
        optimizer = getattr(self.model, "optimizer", None)
        step = int(optimizer.iterations.numpy()) if optimizer is not None else None
        if step is not None and step == self._done_at:
            return   # the weights have not moved since the last re-estimation
        start = time.time()
        network = _network(self.model)
        source = self._read()
        used = source is not None and reestimate(network, source, self.steps,
                                                 strategy=self.model.distribute_strategy)
        if not used and not self._warned and reestimated_layers(network):
            self._warned = True
            warnings.warn(f"{network.name!r}: BatchNorm statistics not re-estimated: "
                          f"{self._why_not}; call adder_tf.batchnorm.reestimate(model, data)",
                          stacklevel=2)
        self.seconds.append(time.time() - start)
        self._done_at = step

    def _read(self):
        """The data as Keras reads it (None when it cannot be read); made anew at each
        epoch when `data` is a function of the epoch."""
        if callable(self.data):
            self._source = None
        if self._source is None:
            data = self.data(self._epoch) if callable(self.data) else self.data
            if isinstance(data, keras.utils.PyDataset) and data.num_batches == 0:
                return data   # nothing kept yet
            try:
                self._source = _Source(data, self.batch_size)
            except (TypeError, ValueError) as error:
                self._why_not = (f"Keras cannot read {type(data).__name__} as fit's x "
                                 f"({str(error).strip().splitlines()[0]})")
        return self._source


class ReestimatingFit:
    """Mixin for a keras.Model: `fit` leaves BatchNorm statistics that describe the network.

    When the network (a distiller's student) has adder layers, `fit` adds a
    `BatchNormReestimation` on its own training inputs, read as `fit` reads
    them (the training part when `validation_split` is given; the last
    batches a generator yielded), unless one is passed already: statistics
    re-estimated before every validation and when training ends, so
    `evaluate`, `predict`, `save` and `export` after `fit` need no further
    call. `bn_reestimation_steps` (default 20 batches; 0 turns it off) is the cost.
    """

    bn_reestimation_steps = DEFAULT_STEPS

    def compile(self, *args, jit_compile=JIT_COMPILE, **kwargs):
        # Before any training step is traced (fit, train_on_batch): the network's adder
        # layers do not warn, also with bn_reestimation_steps = 0 (the user's choice).
        # jit_compile: adder_tf.ops.JIT_COMPILE (False) unless given.
        mark_reestimated(_adder_layers(self))
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def fit(self, *args, **kwargs):
        arguments = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
        arguments.pop("self")
        callbacks = list(arguments.get("callbacks") or [])
        steps = self.bn_reestimation_steps if _adder_layers(self) else 0
        if steps and not any(isinstance(c, BatchNormReestimation) for c in callbacks):
            data = _training_inputs(arguments, steps)
            callbacks.insert(0, BatchNormReestimation(data, steps, arguments.get("batch_size")))
        arguments["callbacks"] = callbacks
        return super().fit(**arguments)


def _network(model):
    """The network whose statistics are re-estimated: a distiller's student, or the model."""
    return getattr(model, "student", model)


def _adder_layers(model):
    return [layer for layer in internals.flatten_layers(_network(model))
            if isinstance(layer, AdderConv2D)]


def _training_inputs(arguments, steps):
    """What `fit` trains on, as `reestimate` can read it again. A generator is read once:
    `fit` gets one that keeps the inputs of the last `steps` batches it yields."""
    x = arguments.get("x")
    if isinstance(x, types.GeneratorType):
        kept = collections.deque(maxlen=steps)
        arguments["x"] = _keeping_inputs(x, kept)
        return _Kept(kept)
    split = arguments.get("validation_split")
    if split and arguments.get("validation_data") is None:
        return internals.training_part(x, arguments.get("y"), arguments.get("sample_weight"),
                                       split)[0]
    return x


def _keeping_inputs(generator, kept):
    for batch in generator:
        kept.append(keras.utils.unpack_x_y_sample_weight(
            tuple(batch) if isinstance(batch, list) else batch)[0])
        yield batch


class _Kept(keras.utils.PyDataset):
    """The inputs a generator yielded last, as a PyDataset of (inputs,) batches."""

    def __init__(self, kept):
        super().__init__()
        self.kept = kept

    def __len__(self):
        return len(self.kept)

    def __getitem__(self, index):
        return (self.kept[index],)
