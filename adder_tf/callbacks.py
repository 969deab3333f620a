"""Training callbacks of our own: only what Keras's callbacks do not do."""
import math

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
    """TensorBoard scalars Keras does not log: kernel widths and both learning rates."""

    def __init__(self, log_dir):
        super().__init__()
        self._writer = tf.summary.create_file_writer(f"{log_dir}/distill")

    def on_epoch_end(self, epoch, logs=None):
        trainer = self.model
        with self._writer.as_default(step=epoch):
            for side, heads in (("student", trainer.student_heads), ("teacher", trainer.teacher_heads)):
                for i, head in enumerate(heads):
                    if head.kernel_transform is not None:
                        tf.summary.scalar(f"sigma/{side}_{i}", head.kernel_transform.sigma())
            for name, opt in (("student", trainer.optimizer), ("teacher", trainer.teacher_optimizer)):
                if opt is not None:
                    tf.summary.scalar(f"learning_rate/{name}", opt.learning_rate)
        self._writer.flush()
