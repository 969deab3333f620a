"""A graceful Ctrl-C: the first one finishes the current step, the second one ends the process.

While `model.fit` runs, SIGINT only sets a flag (so it never lands inside a
write); the step under way finishes, and the run stops at the end of that
step or, if it came during an epoch's end (validation, history, backup),
once the epoch's checkpoint is written. What the last completed epoch saved
is what a rerun resumes from. The first SIGINT also restores the system's
default action, so a second one ends the process at once, even inside a
long step (every file is written whole or not at all, so nothing breaks).

Under several workers (MultiWorkerMirroredStrategy) the flag is all-reduced
at every step's end: whichever worker got the signal, all of them stop after
the same step.
"""
import signal

import keras

from adder_tf.strategy import gather_over_replicas


class Interrupted(KeyboardInterrupt):
    """Training stopped on request; the message says where and what is kept."""


class GracefulStop(keras.callbacks.Callback):
    """Put it last in the callback list (after the checkpoint), and run fit inside `with stop:`."""

    def __init__(self, backup_dir, strategy=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.strategy = strategy
        self.requested = False
        self._previous = None
        self._epoch = 0

    def __enter__(self):
        self._previous = signal.getsignal(signal.SIGINT)
        if self._previous != signal.SIG_IGN:   # started with Ctrl-C ignored (nohup, `&`): so be it
            signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._previous)
        return False

    def _on_sigint(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    def _stop(self):
        if self.strategy is None:
            return self.requested
        return max(gather_over_replicas(self.strategy, float(self.requested))) > 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._stop():
            raise Interrupted(f"interrupted at epoch {self._epoch + 1}, step {batch + 1}; "
                              f"{self._kept(self._epoch)}")

    def on_epoch_end(self, epoch, logs=None):
        if self._stop():
            raise Interrupted(f"interrupted after epoch {epoch + 1}; {self._kept(epoch + 1)}")

    def _kept(self, completed):
        if completed == 0:
            return "no epoch was completed, nothing kept"
        return f"kept the checkpoint of epoch {completed} in {self.backup_dir}"
