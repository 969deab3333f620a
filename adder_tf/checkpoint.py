"""The run's backup and history, written whole or not at all (`adder_tf.atomic_io`).

Keras's BackupAndRestore writes `latest.weights.h5` in place and falls back
to its `.bkp` copy only on OSError; a torn HDF5 file opens and then fails
with ValueError, and the run cannot resume. Here the same two files are
kept, but each is written beside and renamed over, and the epoch it holds
is stored inside the weights file itself (one file, so the weights and the
epoch counter cannot disagree after a kill between two writes). A graceful
stop inside an epoch saves the same way with the step reached (`save_step`):
the checkpoint then holds (epoch, step), and the run resumes there. On resume
the newest checkpoint that loads wins; one that does not (damaged, written
by an older version) is reported in one line and the previous one is used.
Under several workers they first agree on the newest (epoch, step) all of
them can load, so that every worker resumes at the same step. A checkpoint
whose optimizer state does not fit the run's optimizers (Keras would skip
loading it with a warning and train on from fresh slots) counts as unreadable.
"""
import io
import json
import os
import sys
import warnings

import h5py
import keras

from adder_tf import atomic_io
from adder_tf._keras_internals import BackupAndRestoreBase
from adder_tf.errors import UserError
from adder_tf.strategy import gather_over_replicas

EPOCH_ATTR = "adder_tf_epoch"
STEP_ATTR = "adder_tf_step"   # steps of the next epoch done (a stop inside an epoch)


class AtomicBackupAndRestore(BackupAndRestoreBase):
    """keras.callbacks.BackupAndRestore (every epoch, the previous one kept) with atomic writes.

    `restore()` loads the checkpoint and returns its epoch, the one home of "which epoch
    does this run resume from" (`resumed_from`, 0 for a fresh run): call it before
    making the training data when that data depends on the epoch; otherwise fit's
    on_train_begin does. A checkpoint saved inside an epoch (`save_step`) also gives
    `resumed_step`, the steps of epoch `resumed_from` + 1 it holds: the caller runs the
    rest of that epoch (`steps_per_epoch - resumed_step` steps, on that epoch's data
    past them) as a fit of its own, then `continue_at(resumed_from + 1)`. `strategy`: a
    MultiWorkerMirroredStrategy makes the workers agree on the position to load.
    """

    def __init__(self, backup_dir, strategy=None, stream=None):
        super().__init__(backup_dir, delete_checkpoint=False, double_checkpoint=True)
        self.strategy = strategy
        self.stream = stream
        self.resumed_from = 0
        self.resumed_step = 0
        self._restored = False
        self._epoch = 0

    def _candidates(self):
        return [(self.weights_path, self.training_metadata_path),
                (self.prev_weights_path, self.prev_training_metadata_path)]

    def on_train_begin(self, logs=None):
        if not self._restored:
            self.restore()
        self._restored = False   # a later fit reads the folder again
        self.set_initial_epoch(self.resumed_from)
        if self.resumed_step and (self.params or {}).get("epochs") != self.resumed_from + 1:
            # Only a fit of the rest of that epoch alone continues at the step.
            print(f"warning: the checkpoint in {self.backup_dir} holds "
                  f"{describe((self.resumed_from, self.resumed_step))}; this fit trains epoch "
                  f"{self.resumed_from + 1} from its first step (to continue at step "
                  f"{self.resumed_step}, first fit that epoch alone on its data past those "
                  "steps, as train/main.py does)", file=self.stream or sys.stderr, flush=True)

    def continue_at(self, epoch):
        """The model holds `epoch` whole epochs (a fit that finished a partial epoch ended):
        the next fit starts there, without reading the folder again."""
        self.resumed_from, self.resumed_step, self._restored = epoch, 0, True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def step_of(self, batch):
        """The step of the running epoch that `batch` (fit's index, from 0) completes."""
        offset = self.resumed_step if self._epoch == self.resumed_from else 0
        return offset + batch + 1

    def save_step(self, batch):
        """Saves the state after `batch` of the running epoch; returns (epoch, step) kept:
        `epoch` whole epochs and `step` steps of the next."""
        position = (self._epoch, self.step_of(batch))
        self._write(*position)
        return position

    def restore(self):
        """Loads the newest checkpoint that can be read into the model (set_model first);
        returns the epoch it holds (0: none), also kept in `resumed_from`."""
        present = [c for c in self._candidates() if os.path.exists(c[0])]
        if present and self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)   # slots to load into
        fresh = self._state() if present and self.strategy is not None else None
        loaded, failures = None, []
        for weights, metadata in present:
            try:
                position = self._load(weights, metadata)
            except Exception as e:  # noqa: BLE001 - any unreadable file: try the previous one
                failures.append((weights, e))
                continue
            loaded = (weights, metadata, position)
            break
        if present and loaded is None:
            raise UserError(f"no checkpoint in {self.backup_dir} can be read ({_reasons(failures)}); "
                            "move that folder away to start from epoch 1")
        position = loaded[2] if loaded else (0, 0)
        agreed = self._agree(position)
        if loaded and agreed == (0, 0):   # another worker has none (killed in epoch 1's end)
            for variable, value in zip(self._model_and_optimizer_variables(), fresh):
                variable.assign(value)
            position = (0, 0)
        elif loaded and agreed != position:   # another worker has only the one before
            position = self._load_position(agreed, present)
        for weights, _ in failures:   # never rotated into .bkp, kept aside to look at
            os.replace(weights, weights + ".unreadable")
        if failures:
            print(f"warning: checkpoint {_reasons(failures)}; resuming from the previous one "
                  f"({describe(position)})", file=self.stream or sys.stderr, flush=True)
        (self.resumed_from, self.resumed_step), self._restored = position, True
        return self.resumed_from

    def _model_and_optimizer_variables(self):
        optimizer = self.model.optimizer
        return list(self.model.variables) + (list(optimizer.variables) if optimizer else [])

    def _state(self):
        return [variable.numpy() for variable in self._model_and_optimizer_variables()]

    def _agree(self, position):
        """The (epoch, step) every worker resumes from: the smallest any of them holds.

        Two workers' checkpoints differ by one epoch when a kill came between
        their saves of an epoch: all resume from the older, with one line. A
        larger gap (a worker given an empty or another run's folder) would
        silently throw away the others' epochs: refused, in one line.
        """
        if self.strategy is None:
            return position
        epoch = position[0]
        positions = sorted(set(zip(*(map(int, gather_over_replicas(self.strategy, value))
                                     for value in position))))
        held = sorted({e for e, _ in positions})
        if held[-1] - held[0] > 1:
            raise UserError(f"the workers' checkpoints disagree: they hold epochs "
                            f"{', '.join(map(str, held))} (this worker: {epoch} in "
                            f"{self.backup_dir}); give every worker its own folder of this run "
                            "back, or move every worker's backup away to start from epoch 1")
        if len(positions) > 1:
            print(f"warning: the workers' checkpoints differ ({describe(positions[0])} and "
                  f"{describe(positions[-1])}); every worker resumes from "
                  f"{describe(positions[0])}", file=self.stream or sys.stderr, flush=True)
        return positions[0]

    def _load_position(self, position, present):
        for weights, metadata in present:
            try:
                if _stored_position(weights, metadata) == position:
                    return self._load(weights, metadata)
            except Exception:  # noqa: BLE001
                continue
        raise UserError(f"the workers' checkpoints disagree: this worker has no readable "
                        f"{describe(position)} in {self.backup_dir}; move every worker's backup "
                        "away to start afresh")

    def _load(self, weights, metadata):
        """Loads one checkpoint into the model; returns its (epoch, step)."""
        position = _stored_position(weights, metadata)
        named = weights
        if not weights.endswith(".weights.h5"):
            named = atomic_io.temp_name(weights, ".weights.h5")   # Keras wants this ending
            _link_or_copy(weights, named)
        try:
            with warnings.catch_warnings():
                # One line for a checkpoint that cannot be read, not one warning per layer;
                # and a file that would leave some layers as initialized is not read.
                warnings.simplefilter("ignore")
                warnings.filterwarnings("error", message=".*freshly-initialized")
                # Optimizer slots that do not fit (another optimizer, momentum on or off):
                # Keras keeps the fresh ones with a warning, here the file is not read.
                warnings.filterwarnings("error", message="Skipping variable loading for optimizer")
                self.model.load_weights(named)
        finally:
            if named != weights:
                os.remove(named)
        return position

    def save_backup(self):
        self._write(self.current_epoch, 0)

    def _write(self, epoch, step):
        os.makedirs(self.backup_dir, exist_ok=True)
        # The previous checkpoint stays whole under .bkp (a hard link: no copy, no window).
        for current, previous in ((self.weights_path, self.prev_weights_path),
                                  (self.training_metadata_path, self.prev_training_metadata_path)):
            if os.path.exists(current):
                with atomic_io.atomic_path(previous) as tmp:
                    _link_or_copy(current, tmp)
        point = epoch + 1 if step else epoch   # the fault hook's epoch: the one written in
        with atomic_io.atomic_path(self.weights_path, "backup", point, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
            with h5py.File(tmp, "a") as f:
                f.attrs[EPOCH_ATTR] = epoch
                f.attrs[STEP_ATTR] = step
        atomic_io.write_text(self.training_metadata_path,
                             json.dumps({"epoch": epoch, "batch": step}), "metadata", point)


class HistoryLogger(keras.callbacks.CSVLogger):
    """keras.callbacks.CSVLogger (append=True) whose file is rewritten whole after every epoch.

    Keras's logger appends to an open file: a kill in the middle of a row
    leaves half a row. Here the rows go to memory and the whole file is
    written beside and renamed over at each epoch's end.
    """

    def __init__(self, filename):
        super().__init__(filename, append=True)

    def on_train_begin(self, logs=None):
        text = ""
        if os.path.exists(self.filename):
            with open(self.filename) as f:
                text = f.read()
            text = text[:text.rfind("\n") + 1]   # a row cut short (an older version's append) goes
        self.append_header = not text.strip()
        self.csv_file = io.StringIO(text)
        self.csv_file.seek(0, io.SEEK_END)
        self.writer, self.keys = None, None

    def on_epoch_begin(self, epoch, logs=None):
        # A kill between the epoch's row and its checkpoint replays that epoch: its
        # first row goes, so the file holds each epoch once (as the health log does).
        rows = self.csv_file.getvalue().splitlines(keepends=True)
        kept = rows[:1] + [row for row in rows[1:] if int(row.split(",", 1)[0]) < epoch]
        if kept != rows:
            self.csv_file = io.StringIO("".join(kept))
            self.csv_file.seek(0, io.SEEK_END)
        super().on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        atomic_io.write_text(self.filename, self.csv_file.getvalue(), "history", epoch + 1)


def kept_position(backup_dir):
    """(epoch, step) the newest readable checkpoint in backup_dir holds ((0, 0): none)."""
    paths = [("latest.weights.h5", "training_metadata.json"),
             ("latest.weights.h5.bkp", "training_metadata.json.bkp")]
    for weights, metadata in paths:
        try:
            return _stored_position(os.path.join(backup_dir, weights),
                                    os.path.join(backup_dir, metadata))
        except Exception:  # noqa: BLE001
            continue
    return (0, 0)


def completed_epochs(backup_dir):
    """Whole epochs the newest readable checkpoint in backup_dir holds (0 when there is none)."""
    return kept_position(backup_dir)[0]


def describe(position):
    """(epoch, step) as a line says it: 'epoch 2' (whole), 'epoch 3, step 7' (inside epoch 3)."""
    epoch, step = position
    return f"epoch {epoch + 1}, step {step}" if step else f"epoch {epoch}"


def _stored_position(weights, metadata):
    """(epoch, step) inside the weights file; a checkpoint from before they were stored
    there: the epoch of its JSON (whole epochs only)."""
    with h5py.File(weights, "r") as f:
        if EPOCH_ATTR in f.attrs:
            return int(f.attrs[EPOCH_ATTR]), int(f.attrs.get(STEP_ATTR, 0))
    with open(metadata) as f:
        return int(json.load(f)["epoch"]), 0


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:
        import shutil
        shutil.copyfile(source, target)


def _reasons(failures):
    return "; ".join(f"{os.path.basename(path)} cannot be read ({type(e).__name__}: "
                     f"{_telling_line(e)})" for path, e in failures)


def _telling_line(error):
    """The error's first line; for Keras's 'A total of N objects could not be loaded. Example
    error message for object <...>:' the example's message, which says why."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("A total of") and "could not be loaded" in lines[0]:
        return lines[1][:160]
    return (lines or [""])[0][:120]
