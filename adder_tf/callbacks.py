"""Training callbacks of our own: only what Keras's callbacks do not do."""
import json
import math
import os

import keras
import tensorflow as tf

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


class DistillationLogger(keras.callbacks.Callback):
    """TensorBoard scalars Keras does not log: both learning rates, and per-tap health.

    Health (PKKD only): each tapped layer's head-output spread on both sides,
    their correlation and kernel widths, on a fixed batch of test images
    (`adder_tf.distill.health`), once before training and after every epoch.
    The first measurement is kept in `start_path` so that a resumed run
    counts dead taps against the true start.
    """

    def __init__(self, log_dir, probe_images=None, start_path=None):
        super().__init__()
        self._writer = tf.summary.create_file_writer(f"{log_dir}/distill")
        self._images = probe_images
        self._start_path = start_path
        self.start = None
        self.health = None

    def _probe(self):
        from adder_tf.distill.health import feature_health
        return feature_health(self.model, self._images)

    def on_train_begin(self, logs=None):
        if not self.model.uses_heads or self._images is None:
            return
        if self._start_path and os.path.exists(self._start_path):
            with open(self._start_path) as f:
                self.start = json.load(f)
            return
        self.start = self._probe()
        if self._start_path:
            with open(self._start_path, "w") as f:
                json.dump(self.start, f)

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
        self._writer.flush()
