"""A graceful Ctrl-C: the first one finishes the current step, the second one ends the process.

While `model.fit` runs, SIGINT only sets a flag (so it never lands inside a
write); the step under way finishes, the state after it is saved (given the
run's `AtomicBackupAndRestore`: a checkpoint holding (epoch, step)) and the
run stops there; a rerun resumes at that step. One that comes during an
epoch's end (validation, history, backup) or at its last step stops once the
epoch's checkpoint is written. A second SIGINT ends the process at once,
even inside one long TensorFlow op (Python runs its signal handlers only
between ops, so a thread woken through `signal.set_wakeup_fd` does it): one
line on stderr, exit status 130 (every file is written whole or not at
all, so nothing breaks).

Under several workers (MultiWorkerMirroredStrategy) the flag is all-reduced
at every step's end: whichever worker got the signal, all of them stop after
the same step.
"""
import contextlib
import os
import signal
import socket
import sys
import threading

import keras

from adder_tf import atomic_io
from adder_tf.strategy import gather_over_replicas


class Interrupted(KeyboardInterrupt):
    """Training stopped on request; the message says where and what is kept."""


class GracefulStop(keras.callbacks.Callback):
    """Put it last in the callback list (after the checkpoint), and run fit inside `with stop:`.

    `backup`: the run's `AtomicBackupAndRestore`, which saves the step a stop lands on;
    without it a stop inside an epoch keeps the last completed epoch's checkpoint."""

    def __init__(self, backup_dir, strategy=None, backup=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.strategy = strategy
        self.backup = backup
        self.requested = False
        self._previous = None
        self._epoch = 0

    def __enter__(self):
        self._previous = signal.getsignal(signal.SIGINT)
        self._wakeup = None
        if self._previous != signal.SIG_IGN:   # started with Ctrl-C ignored (nohup, `&`): so be it
            signal.signal(signal.SIGINT, self._on_sigint)
            self._wakeup = _SecondSignal(signal.SIGINT, self._second_line)
        return self

    def __exit__(self, exc_type, exc, traceback):
        if self._wakeup is not None:
            self._wakeup.close()
        signal.signal(signal.SIGINT, self._previous)
        if exc_type is None and self._stop():   # a Ctrl-C as fit ended (its last callbacks)
            raise Interrupted(self._after(self._completed()))
        return False

    def _on_sigint(self, signum, frame):
        self.requested = True

    @contextlib.contextmanager
    def after_training(self):
        """A Ctrl-C after fit (final evaluation, exports, results) says what is kept, too."""
        try:
            yield
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted(self._after(self._completed())) from None

    def _second_line(self):
        return (f"interrupted twice: stopped at once; {self._kept(self._completed())}")

    def _completed(self):
        from adder_tf.checkpoint import kept_position   # what is on disk now
        return kept_position(self.backup_dir)

    def _after(self, kept):
        return f"interrupted after epoch {kept[0]}; {self._kept(kept)}"

    def _stop(self):
        if self.strategy is None:
            return self.requested
        return max(gather_over_replicas(self.strategy, float(self.requested))) > 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        atomic_io.fault_after_step(lambda: int(self.model.optimizer.iterations.numpy()))
        if not self._stop() or batch + 1 == self.params.get("steps"):
            return   # at an epoch's last step: its end runs and saves, on_epoch_end stops
        if self.backup is None:
            raise Interrupted(f"interrupted at epoch {self._epoch + 1}, step {batch + 1}; "
                              f"{self._kept((self._epoch, 0))}")
        kept = self.backup.save_step(batch)
        raise Interrupted(f"interrupted at epoch {self._epoch + 1}, step {kept[1]}; "
                          f"{self._kept(kept)}")

    def on_epoch_end(self, epoch, logs=None):
        if self._stop():
            raise Interrupted(self._after((epoch + 1, 0)))

    def _kept(self, position):
        from adder_tf.checkpoint import describe
        if position == (0, 0):
            return "no epoch was completed, nothing kept"
        return f"kept the checkpoint of {describe(position)} in {self.backup_dir}"


class _SecondSignal:
    """Ends the process on the second delivery of `signum`, even while the main thread is
    inside a long C++ call: the C-level handler writes each signal's number to a socket
    (`signal.set_wakeup_fd`), which a daemon thread reads; it prints `line()` and exits 130."""

    def __init__(self, signum, line):
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._signum, self._line = signum, line
        threading.Thread(target=self._watch, daemon=True, name="second-ctrl-c").start()

    def _watch(self):
        seen = 0
        while True:
            try:
                data = self._read.recv(64)
            except OSError:
                return
            if not data:
                return
            seen += data.count(bytes([self._signum]))
            if seen >= 2:
                print(self._line(), file=sys.stderr, flush=True)
                os._exit(130)

    def close(self):
        signal.set_wakeup_fd(self._previous)
        self._write.close()
        self._read.close()
