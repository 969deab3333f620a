"""Training callbacks of our own: only what Keras's callbacks do not do."""
import json
import math
import os
import sys
import time

import keras
import tensorflow as tf

from adder_tf import _keras_internals as internals
from adder_tf.atomic_io import write_text
from adder_tf.errors import UserError


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops at the first non-finite loss, before the epoch's checkpoint is written.

    Keras's TerminateOnNaN only sets stop_training, after which the epoch
    still ends and BackupAndRestore would save the broken weights; raising
    here leaves the last good checkpoint as it was.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise UserError(f"loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1}; "
                            "training stopped, the last completed epoch's checkpoint is kept")


class EpochLine(keras.callbacks.Callback):
    """One short line per epoch (--verbose=2): loss, student top-1, teacher top-1, time.

    Everything else still goes to TensorBoard and history.csv; Keras's own
    verbose=2 line lists every metric (hundreds of characters).
    """

    def __init__(self, epochs, stream=None):
        super().__init__()
        self.epochs = epochs
        self.stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_began = time.time()

    def on_epoch_end(self, epoch, logs=None):
        print(self.line(epoch, logs or {}, time.time() - self._epoch_began),
              file=self.stream or sys.stdout, flush=True)

    def line(self, epoch, logs, seconds):
        def pct(key):
            value = float(logs.get(key, float("nan")))
            return f"{100 * value:.2f}" if math.isfinite(value) else "-"
        parts = [f"epoch {epoch + 1}/{self.epochs}", f"loss {float(logs.get('loss', float('nan'))):.4f}",
                 f"top1 train {pct('top1')} val {pct('val_top1')}"]
        if "teacher_top1" in logs:
            parts.append(f"teacher {pct('teacher_top1')} val {pct('val_teacher_top1')}")
        parts.append(f"{seconds:.0f}s")
        return " | ".join(parts)


class DistillationLogger(keras.callbacks.Callback):
    """TensorBoard scalars Keras does not log: both learning rates, and per-tap health.

    Health (PKKD only): each tapped layer's head-output spread on both sides,
    their correlation and kernel widths, on a fixed batch of test images
    (`adder_tf.distill.health`: each network with the batch's own BatchNorm
    statistics, nothing persisted), once before training and after every epoch.
    The first measurement is kept in `start_path` so that a resumed run
    counts dead taps against the true start; every epoch's is appended to
    `epochs_path` (JSON lines, {"epoch": n, "taps": [...]}), so the kernels'
    statistics can be read at the start, middle and end of a run. Put it
    before the checkpoint in the callback list, so that an epoch's line is
    written before its checkpoint; a resumed run first drops the lines of
    epochs past the one it resumed from (written, then killed before the
    checkpoint), so the file holds each epoch once, as the checkpoint saw it.
    """

    def __init__(self, log_dir, probe_images=None, start_path=None, epochs_path=None):
        super().__init__()
        self._epochs_path = epochs_path
        self._writer = tf.summary.create_file_writer(f"{log_dir}/distill")
        self._images = probe_images
        self._start_path = start_path
        self.start = None
        self.health = None
        self._trimmed = False

    def _probe(self):
        from adder_tf.distill.health import feature_health
        return feature_health(self.model, self._images, self.start)

    def on_train_begin(self, logs=None):
        if not self.model.uses_heads or self._images is None:
            return
        if self._start_path and os.path.exists(self._start_path):
            with open(self._start_path) as f:
                self.start = json.load(f)
            return
        self.start = self._probe()
        if self._start_path:
            write_text(self._start_path, json.dumps(self.start))

    def _lines(self):
        if not self._epochs_path or not os.path.exists(self._epochs_path):
            return []
        with open(self._epochs_path) as f:
            return [line for line in f if line.strip()]

    def _append_epoch(self, epoch):
        """One line more in epochs_path, the file rewritten whole (never a torn line)."""
        line = json.dumps({"epoch": epoch, "taps": self.health}) + "\n"
        write_text(self._epochs_path, "".join(self._lines()) + line, "health", epoch)

    def on_epoch_begin(self, epoch, logs=None):
        if self._trimmed:
            return
        self._trimmed = True   # the first epoch of this session: `epoch` epochs are kept
        lines = self._lines()
        kept = [line for line in lines if json.loads(line)["epoch"] <= epoch]
        if kept != lines:
            write_text(self._epochs_path, "".join(kept))

    def on_epoch_end(self, epoch, logs=None):
        trainer = self.model
        with self._writer.as_default(step=epoch):
            for name, opt in (("student", trainer.optimizer), ("teacher", trainer.teacher_optimizer)):
                if opt is not None:
                    tf.summary.scalar(f"learning_rate/{name}", opt.learning_rate)
            if self.start is not None:
                from adder_tf.distill.health import dead_taps
                self.health = self._probe()
                for row in self.health:
                    for key in ("student_std", "teacher_std", "corr", "sigma_student",
                                "sigma_teacher"):
                        tf.summary.scalar(f"{key}/{row['tap']}", row[key])
                tf.summary.scalar("dead_taps", dead_taps(self.health, self.start))
                if self._epochs_path:
                    self._append_epoch(epoch + 1)
        self._writer.flush()


class ValidationPlaceholders(keras.callbacks.Callback):
    """On epochs without validation (--validation_freq), val_<name> = NaN, so that a CSV
    log whose header comes from the first epoch keeps the validation columns."""

    def __init__(self, names):
        super().__init__()
        self.names = [f"val_{n}" for n in names]

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for name in self.names:
                logs.setdefault(name, float("nan"))


class GradientShares(keras.callbacks.Callback):
    """After every epoch: each loss term's share of the student's gradient on a fixed
    training batch (`adder_tf.distill.shares`), as `grad_share_<term>` in the epoch's logs
    (history.csv, results.json's history, TensorBoard)."""

    def __init__(self, images, labels):
        super().__init__()
        self.images, self.labels = images, labels

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.model.terms:   # no teacher, no terms to share
            return
        from adder_tf.distill.shares import gradient_shares
        for name, share in gradient_shares(self.model, self.images, self.labels).items():
            logs[f"grad_share_{name}"] = share


class TensorBoard(internals.TensorBoardWithWeightGroups):
    """keras.callbacks.TensorBoard whose weight histograms keep the networks apart.

    A distiller holds two networks whose layers have the same names (that
    is how taps pair up), so Keras's own callback writes the teacher's and
    the student's histograms under one tag. Here they go under "student/",
    "teacher/" and "heads/"; any other model is logged as Keras does.
    """

    def weight_groups(self):
        return _weight_groups(self.model)


def _weight_groups(model):
    student = getattr(model, "student", None)
    if student is None:
        return None
    groups = [("student", student.weights)]
    if getattr(model, "teacher", None) is not None:
        groups.append(("teacher", model.teacher.weights))
    heads = getattr(model, "head_variables", [])
    if heads:
        groups.append(("heads", heads))
    return groups
