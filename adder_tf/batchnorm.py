"""BatchNorm statistics that describe a network as it is now, under any strategy.

An adder network's BatchNorm inputs move under AdderNet's adaptive learning
rate (every filter step has the same norm, whatever the gradient), so
moving averages of past batches describe weights that no longer exist.
`reestimate(model, data)` replaces every moving mean and variance by the
plain average of the batch statistics of `steps` batches computed with
today's weights. It runs through `tf.distribute` (one device, Mirrored and
MultiWorkerMirrored strategies): each global batch's statistics are summed
across all replicas and workers, so every worker ends with the same
values, those of the global batch (each replica still normalises its own
share of the batch on the way, as it does in training, so statistics after
the first BatchNorm can differ from one replica's by a fraction of a
percent).
"""
import inspect
import time
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

_REPLICA_FUNCTIONS = weakref.WeakKeyDictionary()   # model -> traced replica function


def batchnorm_layers(model):
    """Every BatchNormalization of `model`, nested models included."""
    return [l for l in model._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]


def reestimate(model, data, steps=20, batch_size=64, strategy=None):
    """Re-estimate every BatchNorm's moving mean and variance on `steps` batches of `data`.

    data: what `fit` takes as x: a tf.data.Dataset of inputs or (inputs,
    labels[, weights]) batches, a `keras.utils.PyDataset`, or arrays (an
    array, or a list or dict of arrays for several inputs; the first
    `steps * batch_size` rows are used). strategy: the one the model was
    built in (by default the model's own). Returns the number of batches
    used. Training is unaffected (it uses batch statistics).
    """
    layers = batchnorm_layers(model)
    if not layers or steps <= 0:
        return 0
    data = _input_batches(data, steps, batch_size)
    strategy = strategy or getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    sums = _REPLICA_FUNCTIONS.get(model)
    if sums is None:
        sums = _REPLICA_FUNCTIONS[model] = _batch_moments(model, layers)
    totals, used = None, 0
    for images in strategy.experimental_distribute_dataset(data):
        moments = strategy.run(sums, args=(images,))
        moments = [strategy.reduce(tf.distribute.ReduceOp.SUM, m, axis=None) for m in moments]
        batch = _mean_and_variance(moments)
        totals = batch if totals is None else [t + b for t, b in zip(totals, batch)]
        used += 1
    if not used:
        return 0
    for layer, mean, variance in zip(layers, totals[0::2], totals[1::2]):
        layer.moving_mean.assign(tf.cast(mean / used, layer.moving_mean.dtype))
        layer.moving_variance.assign(tf.cast(variance / used, layer.moving_variance.dtype))
    return used


def _input_batches(data, steps, batch_size):
    """A tf.data.Dataset of the model's inputs, `steps` batches of them."""
    if isinstance(data, tf.data.Dataset):
        return data.map(_inputs).take(steps)
    if isinstance(data, keras.utils.PyDataset):
        batches = [_inputs(data[i]) for i in range(min(steps, len(data)))]
        if not batches:
            return tf.data.Dataset.from_tensor_slices(np.zeros((0, 1), "float32"))
        spec = tf.nest.map_structure(
            lambda a: tf.TensorSpec((None,) + tuple(np.shape(a))[1:], tf.as_dtype(np.asarray(a).dtype)),
            batches[0])
        return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
    rows = steps * batch_size
    data = tf.nest.map_structure(lambda a: np.asarray(a)[:rows], _inputs(data))
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def _inputs(*element):
    """The inputs of a batch that may carry labels and sample weights."""
    element = element[0] if len(element) == 1 else tuple(element)
    return keras.utils.unpack_x_y_sample_weight(element)[0] if isinstance(element, tuple) \
        else element


def _batch_moments(model, layers):
    """A replica function: per BatchNorm, (count, sum, sum of squares) of its input per channel.

    The network runs in training mode (each BatchNorm normalises with the
    batch's own statistics, as in a training step); the moving statistics
    it updates on the way are overwritten afterwards. Sums are float64:
    adder outputs have a mean a hundred times their spread, and a float32
    sum of squares would cancel away the variance.
    """
    view = keras.Model(model.inputs, [layer.input for layer in layers]) if _is_flat(model, layers) \
        else None
    network = weakref.ref(model)   # the cache must not keep the model alive

    def replica(images):
        inputs = view(images, training=True) if view is not None else \
            _capture(network(), layers, images)
        out = []
        for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs]):
            x = tf.cast(x, tf.float64)
            axes = list(range(len(x.shape) - 1))
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float64)
            out += [tf.fill(tf.shape(x)[-1:], count), tf.reduce_sum(x, axes),
                    tf.reduce_sum(tf.square(x), axes)]
        return out

    return tf.function(replica, reduce_retracing=True)


def _is_flat(model, layers):
    top = {id(l) for l in model.layers}
    return all(id(l) in top for l in layers) and bool(getattr(model, "inputs", None))


def _capture(model, layers, images):
    """BatchNorm inputs of a model whose BatchNorms are nested: recorded on the way through
    (a BatchNorm called twice in one pass keeps its last input)."""
    seen = {}
    for layer in layers:
        original = layer.call

        def call(inputs, *args, _layer=layer, _original=original, **kwargs):
            seen[id(_layer)] = inputs
            return _original(inputs, *args, **kwargs)
        layer.call = call
    try:
        model(images, training=True)
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)   # the class's own call again
    return [seen[id(l)] for l in layers]


def _mean_and_variance(moments):
    """[mean, variance, mean, variance, ...] from [count, sum, sum of squares, ...]."""
    out = []
    for count, total, squares in zip(moments[0::3], moments[1::3], moments[2::3]):
        mean = total / count
        out += [mean, tf.maximum(squares / count - tf.square(mean), 0.0)]
    return out


class BatchNormRecalibration(keras.callbacks.Callback):
    """Before every validation and when training ends: BatchNorm statistics
    re-estimated with the weights of that moment (`adder_tf.batchnorm.reestimate`).

    Works with a distiller (its student) and with any model under
    `model.fit`, under any tf.distribute strategy. The distillers add it by
    themselves; a model of one's own can use it directly.
    """

    def __init__(self, data, steps=20, batch_size=64):
        super().__init__()
        self.data = data
        self.steps = steps
        self.batch_size = batch_size
        self.seconds = []

    def on_test_begin(self, logs=None):
        self.reestimate()

    def on_epoch_end(self, epoch, logs=None):
        # Epochs without a validation: checkpoints and early stopping read the
        # statistics too (callbacks after this one see the re-estimated ones).
        self.reestimate()

    def on_train_end(self, logs=None):
        self.reestimate()

    def reestimate(self):
        step = int(self.model.optimizer.iterations.numpy()) if self.model.optimizer else None
        if step is not None and step == getattr(self, "_done_at", None):
            return   # the weights have not moved since the last re-estimation
        start = time.time()
        network = getattr(self.model, "student", self.model)
        reestimate(network, self.data, self.steps, self.batch_size,
                   strategy=self.model.distribute_strategy)
        self.seconds.append(time.time() - start)
        self._done_at = step


class ReestimatingFit:
    """Mixin for a keras.Model: `fit` leaves BatchNorm statistics that describe the network.

    `fit` adds a `BatchNormRecalibration` on its own training data (unless
    one is passed already): statistics re-estimated before every
    validation and when training ends, so `evaluate`, `predict`, `save` and
    `export` after `fit` need no further call. Training data that cannot be
    read twice (a Python generator) gets one warning instead.
    `bn_reestimation_steps` (default 20 batches; 0 turns it off) is the cost.
    """

    bn_reestimation_steps = 20

    def fit(self, *args, **kwargs):
        arguments = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
        arguments.pop("self")
        callbacks = list(arguments.get("callbacks") or [])
        steps = self.bn_reestimation_steps if _has_adder_layers(self) else 0
        if steps and not any(isinstance(c, BatchNormRecalibration) for c in callbacks):
            data = _training_images(arguments)
            if data is not None:
                callbacks.insert(0, BatchNormRecalibration(data, steps,
                                                           arguments.get("batch_size") or 32))
            else:
                warnings.warn(f"{self.name!r}: BatchNorm statistics cannot be re-estimated from "
                              f"training data of type {type(arguments.get('x')).__name__}; pass a "
                              "tf.data.Dataset or arrays, or call adder_tf.batchnorm.reestimate(model, "
                              "data) before evaluating", stacklevel=2)
        arguments["callbacks"] = callbacks
        return super().fit(**arguments)


def uncovered_batchnorms(model):
    """(BatchNorm, AdderConv2D) names where a BatchNorm follows an adder layer in a model whose
    fit does not re-estimate statistics (anything but an AdderModel or a distiller)."""
    from adder_tf.convert import batchnorms_after
    from adder_tf.layers.adder import AdderConv2D
    if isinstance(model, ReestimatingFit) or not hasattr(model, "layers"):
        return []
    found = []
    graphs = [m for m in model._flatten_layers(include_self=True) if isinstance(m, keras.Model)]
    for graph in graphs:   # the model and every model nested in it (an AdderModel too)
        for layer in getattr(graph, "layers", []):
            if isinstance(layer, AdderConv2D):
                found += [(bn, layer.name) for bn in sorted(batchnorms_after(graph, {layer.name}))]
    return found


def _has_adder_layers(model):
    from adder_tf.layers.adder import AdderConv2D
    network = getattr(model, "student", model)
    return any(isinstance(layer, AdderConv2D) for layer in network._flatten_layers())


def _training_images(arguments):
    """What fit trains on, as something `reestimate` can read again; None if it cannot
    (a Python generator)."""
    x = arguments.get("x")
    if isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)):
        return x
    arrays = tf.nest.flatten(x)
    if arrays and all(isinstance(a, (np.ndarray, tf.Tensor)) and len(a.shape) >= 2 for a in arrays):
        split = float(arguments.get("validation_split") or 0.0)
        return tf.nest.map_structure(lambda a: a[: int(len(a) * (1.0 - split))], x)
    return None
