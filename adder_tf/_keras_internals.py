"""The private Keras names the library relies on, in one place.

Keras has no public form of these; a Keras release that renames one breaks
this module and nothing else. Everything else in adder_tf uses the public
Keras API and the functions and classes here.
"""
import warnings

import keras
from keras.src.trainers import data_adapters
from keras.src.trainers.data_adapters import array_data_adapter, array_slicing


def eager_context():
    """TensorFlow's eager context (private), where MultiWorkerMirroredStrategy's
    coordination service is configured."""
    from tensorflow.python.eager import context
    return context.context()


def in_xla_context():
    """Whether the graph being built is compiled by XLA (TensorFlow's private check). If
    TensorFlow moves it, a warning line says so and no XLA is assumed."""
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError as e:
        warnings.warn(f"adder_tf: TensorFlow's XLA-context check is gone ({e}); "
                      "assuming no XLA", RuntimeWarning, stacklevel=2)
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def flatten_layers(layer, include_self=False):
    """Every layer tracked by `layer`, recursively (nested models and layers of layers)."""
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def producer(tensor):
    """The layer (operation) whose output the symbolic tensor is."""
    return tensor._keras_history[0]


def inbound_tensors(layer):
    """The symbolic tensors `layer` was called on, over all its calls in functional graphs."""
    return [tensor for node in layer._inbound_nodes for tensor in node.input_tensors]


def variable_key(optimizer, variable):
    """The key a Keras optimizer files a variable's slots under."""
    return optimizer._var_key(variable)


def uses_weight_decay(optimizer, variable):
    """Whether the optimizer's weight decay applies to this variable
    (`exclude_from_weight_decay` honoured)."""
    return optimizer._use_weight_decay(variable)


def data_adapter(x, batch_size=None, shuffle=False):
    """Keras's own reader of what `fit` takes as x (arrays, tf.data, PyDataset,
    generator, ...): the adapter `fit` would build, yielding `(x,)` for arrays."""
    return data_adapters.get_data_adapter(x, batch_size=batch_size, shuffle=shuffle)


def stop_adapter(adapter):
    """Stop the worker threads or processes of an adapter read only in part (a PyDataset's)."""
    enqueuer = getattr(adapter, "enqueuer", None)
    if enqueuer is not None and enqueuer.is_running():
        enqueuer.stop()


def is_array_data(x):
    """True when `fit` reads x as arrays (one, or a list, tuple or dict of them)."""
    return array_data_adapter.can_convert_arrays((x,))


def training_part(x, y, sample_weight, validation_split):
    """(x, y, sample_weight) that `fit` trains on after taking `validation_split` off the end,
    as `fit` computes it (it refuses the split for anything but arrays)."""
    return array_slicing.train_validation_split((x, y, sample_weight),
                                                validation_split=validation_split)[0]


class BuiltModelSkipsSymbolicBuild:
    """Mixin for a keras.Model that builds every layer and its optimizers itself:
    `fit`, `evaluate` and `predict` skip Keras's symbolic build once it is built.

    Keras's symbolic build pulls a batch and reduces it across workers, which
    fails under MultiWorkerMirroredStrategy (an eager reduce of a PerReplica batch).
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not self.built or self.optimizer is None or not self.optimizer.built:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


class TensorBoardWithWeightGroups(keras.callbacks.TensorBoard):
    """keras.callbacks.TensorBoard whose weight histograms a subclass can group:
    `weight_groups()` returns [(prefix, variables), ...], or None for Keras's own tags."""

    def weight_groups(self):
        return None

    def _log_weights(self, epoch):
        groups = self.weight_groups()
        if groups is None:
            return super()._log_weights(epoch)
        with self._train_writer.as_default():
            for prefix, variables in groups:
                for variable in variables:
                    name = variable.path.replace(":", "_")
                    self.summary.histogram(f"{prefix}/{name}/histogram", variable, step=epoch)
            self._train_writer.flush()


class BackupAndRestoreBase(keras.callbacks.BackupAndRestore):
    """keras.callbacks.BackupAndRestore with its private state under public names.

    A subclass writes the backup in `save_backup()` (Keras calls its private
    `_save_model` at each epoch's end) and reads the paths and counters below.
    """

    @property
    def weights_path(self):
        return self._weights_path

    @property
    def prev_weights_path(self):
        return self._prev_weights_path

    @property
    def training_metadata_path(self):
        return self._training_metadata_path

    @property
    def prev_training_metadata_path(self):
        return self._prev_training_metadata_path

    @property
    def current_epoch(self):
        """The epoch count the next backup holds (epochs completed)."""
        return self._current_epoch

    @property
    def last_batch_seen(self):
        return self._last_batch_seen

    def set_initial_epoch(self, epoch):
        """Make the running `fit` start at `epoch` (what Keras's own restore does)."""
        self.model._initial_epoch = epoch

    def save_backup(self):
        super()._save_model()

    def _save_model(self):
        self.save_backup()
