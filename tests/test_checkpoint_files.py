"""A checkpoint whose optimizer state does not fit is never loaded silently, and an exported
folder's entries are on disk before it is renamed into place (adder_tf.checkpoint, atomic_io)."""
import io
import os

import keras
import numpy as np
import pytest

from adder_tf import atomic_io
from adder_tf.checkpoint import AtomicBackupAndRestore
from adder_tf.errors import UserError

X = np.linspace(-1, 1, 64, dtype="float32").reshape(16, 4)
Y = X[:, :2] - X[:, 2:]


def model_with(optimizer):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer, "mse")
    return model


def test_a_checkpoint_whose_optimizer_slots_do_not_fit_is_refused_in_one_line(tmp_path):
    folder = str(tmp_path / "backup")
    trained = model_with(keras.optimizers.SGD(0.1, momentum=0.9))   # a momentum slot per weight
    trained.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[AtomicBackupAndRestore(folder)])
    # The same run resumed with a plain SGD (no slots): Keras would skip the optimizer's
    # state with a warning and go on from epoch 2 with fresh slots.
    backup = AtomicBackupAndRestore(folder)
    backup.set_model(model_with(keras.optimizers.SGD(0.1)))
    with pytest.raises(UserError) as error:
        backup.restore()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"no checkpoint in {folder} can be read (latest.weights.h5 cannot be "
                              "read (ValueError: Skipping variable loading for optimizer")
    assert message.endswith("move that folder away to start from epoch 1")


class Stopped(Exception):
    pass


class StopAfterSavingStep(keras.callbacks.Callback):
    """What a Ctrl-C does (adder_tf.interrupt.GracefulStop): save the step, leave fit."""

    def __init__(self, backup, batch):
        super().__init__()
        self.backup, self.batch = backup, batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            self.backup.save_step(batch)
            raise Stopped


def test_a_plain_fit_over_a_step_checkpoint_says_it_retrains_that_epoch(tmp_path):
    folder = str(tmp_path / "backup")
    backup = AtomicBackupAndRestore(folder)
    model = model_with(keras.optimizers.SGD(0.1))
    with pytest.raises(Stopped):
        model.fit(X, Y, batch_size=4, epochs=3, verbose=0,
                  callbacks=[backup, StopAfterSavingStep(backup, 1)])   # epoch 1, step 2 of 4
    said = io.StringIO()
    model = model_with(keras.optimizers.SGD(0.1))
    model.fit(X, Y, batch_size=4, epochs=3, verbose=0,
              callbacks=[AtomicBackupAndRestore(folder, stream=said)])
    assert said.getvalue() == (f"warning: the checkpoint in {folder} holds epoch 1, step 2; this "
                               "fit trains epoch 1 from its first step (to continue at step 2, "
                               "first fit that epoch alone on its data past those steps, as "
                               "train/main.py does)\n")
    said = io.StringIO()   # the rest of that epoch alone: nothing to say
    model = model_with(keras.optimizers.SGD(0.1))
    model.fit(X[8:], Y[8:], batch_size=4, epochs=1, verbose=0,
              callbacks=[AtomicBackupAndRestore(folder, stream=said)])
    assert said.getvalue() == ""


def test_an_exported_folder_and_its_subfolders_are_synced_before_the_rename(monkeypatch, tmp_path):
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(
        f"/proc/self/fd/{fd}"))), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(a))),
                                                     replace(a, b))[1])
    target = str(tmp_path / "export" / "student")
    with atomic_io.atomic_dir(target) as tmp:   # a SavedModel's layout
        os.makedirs(os.path.join(tmp, "variables"))
        os.makedirs(os.path.join(tmp, "assets"))
        for name in ("saved_model.pb", "variables/variables.index", "variables/variables.data"):
            with open(os.path.join(tmp, name), "w") as f:
                f.write("x")
    renamed = events.index(("replace", tmp))
    synced = {path for kind, path in events[:renamed] if kind == "fsync"}
    for folder in (tmp, os.path.join(tmp, "variables"), os.path.join(tmp, "assets")):
        assert folder in synced, (folder, events)
    assert os.path.exists(os.path.join(target, "variables", "variables.index"))
