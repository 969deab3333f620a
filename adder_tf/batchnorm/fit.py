"""How `fit` re-estimates: a callback for any model, and a mixin whose `fit` adds it."""
import collections
import inspect
import time
import types
import warnings

import keras

from adder_tf import _keras_internals as internals
from adder_tf.batchnorm.statistics import DEFAULT_STEPS, _Source, reestimate, reestimated_layers
from adder_tf.layers.adder import AdderConv2D, mark_reestimated
from adder_tf.ops import JIT_COMPILE


class BatchNormReestimation(keras.callbacks.Callback):
    """Before every validation and when training ends: BatchNorm statistics re-estimated
    with the weights of that moment (`reestimate`).

    Works with a distiller (its student) and with any model under
    `model.fit`, under any tf.distribute strategy. `AdderModel` and the
    distillers add it by themselves; for a model of one's own, pass it to
    `fit` with the training inputs: `callbacks=[BatchNormReestimation(x)]`.
    Or give `data_of_epoch`, a function of the epoch (counted from 0, as
    Keras counts) returning such inputs: the re-estimation in epoch e reads
    `data_of_epoch(e)`, so a run resumed from a checkpoint re-estimates on
    the batches an undisturbed run does (the trainer passes epoch e's
    training data, drawn from (seed, e) alone: `Data.train_from`).
    """

    def __init__(self, data=None, steps=DEFAULT_STEPS, batch_size=None, data_of_epoch=None):
        super().__init__()
        if (data is None) == (data_of_epoch is None):
            raise ValueError("BatchNormReestimation takes one of data= and data_of_epoch=")
        self.data = data
        self.data_of_epoch = data_of_epoch
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
        epoch from `data_of_epoch`."""
        if self.data_of_epoch is not None:
            self._source = None
        if self._source is None:
            data = self.data if self.data_of_epoch is None else self.data_of_epoch(self._epoch)
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
    _told_train_on_batch = False   # train_on_batch's line is said once per model

    def reestimation_network(self):
        """The network whose BatchNorms `fit` re-estimates (a distiller returns its student)."""
        return self

    def compile(self, *args, jit_compile=JIT_COMPILE, **kwargs):
        # Before any training step is traced (fit, train_on_batch): the network's adder
        # layers do not warn, also with bn_reestimation_steps = 0 (the user's choice).
        # jit_compile: adder_tf.ops.JIT_COMPILE (False) unless given.
        mark_reestimated(_adder_layers(self))
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """What load_model calls (Keras skips an overridden compile otherwise): the
        compile comes back, the optimizers' slots built so they can be restored."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def train_on_batch(self, *args, **kwargs):
        """Keras's, saying once that it leaves the statistics as they are (no epoch ends)."""
        if not self._told_train_on_batch and _adder_layers(self):
            self._told_train_on_batch = True
            warnings.warn(f"{self.name!r}: train_on_batch does not re-estimate BatchNorm "
                          "statistics; call adder_tf.batchnorm.reestimate(model, data) before "
                          "evaluate, predict or save", stacklevel=2)
        return super().train_on_batch(*args, **kwargs)

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
    """The network whose statistics are re-estimated: what a `ReestimatingFit` model
    names (a distiller: its student), or the model itself."""
    return model.reestimation_network() if isinstance(model, ReestimatingFit) else model


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
