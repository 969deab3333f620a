"""BatchNorm statistics that describe a network as it is now, under any strategy.

An adder network's BatchNorm inputs move under AdderNet's adaptive learning
rate (every filter step has the same norm, whatever the gradient), so
moving averages of past batches describe weights that no longer exist.
`reestimate(model, data)` replaces every moving mean and variance by the
plain average of the batch statistics of `steps` batches computed with
today's weights. It runs through `tf.distribute`: under a strategy with N
replicas (or workers) each batch's statistics are summed across all of
them, so one and N replicas give the same figures, and every worker ends
with the same values.
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


def reestimate(model, data, steps=20, batch_size=64):
    """Re-estimate every BatchNorm's moving mean and variance on `steps` batches of `data`.

    data: a tf.data.Dataset of images or (images, labels[, weights]) batches,
    or an array of images (batched by `batch_size`). Returns the number of
    batches used. Training is unaffected (it uses batch statistics).
    """
    layers = batchnorm_layers(model)
    if not layers or steps <= 0:
        return 0
    if not isinstance(data, tf.data.Dataset):
        data = tf.data.Dataset.from_tensor_slices(np.asarray(data)).batch(batch_size)
    data = data.map(_images).take(steps)
    strategy = _strategy(model)
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


def _images(*batch):
    """The images of a batch that may carry labels and sample weights."""
    first = batch[0]
    return first[0] if isinstance(first, (tuple, list)) else first


def _strategy(model):
    """The strategy the model's variables live in (the default one outside any)."""
    variable = model.weights[0].value if model.weights else None
    return getattr(variable, "_distribute_strategy", None) or tf.distribute.get_strategy()


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

    def replica(images):
        inputs = view(images, training=True) if view is not None else _capture(model, layers, images)
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
    """BatchNorm inputs of a model whose BatchNorms are nested: recorded on the way through."""
    seen = {}
    originals = []
    for layer in layers:
        original = layer.call

        def call(inputs, *args, _layer=layer, _original=original, **kwargs):
            seen[id(_layer)] = inputs
            return _original(inputs, *args, **kwargs)
        originals.append((layer, original))
        layer.call = call
    try:
        model(images, training=True)
    finally:
        for layer, original in originals:
            layer.call = original
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

    def on_train_end(self, logs=None):
        self.reestimate()

    def reestimate(self):
        step = int(self.model.optimizer.iterations.numpy()) if self.model.optimizer else None
        if step is not None and step == getattr(self, "_done_at", None):
            return   # the weights have not moved since the last re-estimation
        start = time.time()
        network = getattr(self.model, "student", self.model)
        reestimate(network, self.data, self.steps, self.batch_size)
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
    for layer in model.layers:
        if isinstance(layer, AdderConv2D):
            found += [(bn, layer.name) for bn in sorted(batchnorms_after(model, {layer.name}))]
    return found


def _has_adder_layers(model):
    from adder_tf.layers.adder import AdderConv2D
    network = getattr(model, "student", model)
    return any(isinstance(layer, AdderConv2D) for layer in network._flatten_layers())


def _training_images(arguments):
    """What fit trains on, as something `reestimate` can read again; None if it cannot."""
    x = arguments.get("x")
    if isinstance(x, tf.data.Dataset):
        return x
    if isinstance(x, (np.ndarray, tf.Tensor)) and len(x.shape) >= 2:
        split = float(arguments.get("validation_split") or 0.0)
        return x[: int(len(x) * (1.0 - split))]
    return None
