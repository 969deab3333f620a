"""A tiny model trained with the trainer's checkpoint callbacks, in their order:
the history, the atomic backup, the graceful Ctrl-C (adder_tf.checkpoint, adder_tf.interrupt).

    python tests/tiny_run.py FOLDER [EPOCHS]   (a separate process, to be killed)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from adder_tf.checkpoint import AtomicBackupAndRestore, HistoryLogger  # noqa: E402
from adder_tf.interrupt import GracefulStop  # noqa: E402

X = np.linspace(-1, 1, 32 * 4, dtype="float32").reshape(32, 4)
Y = np.stack([X.sum(1), X[:, 0] - X[:, 3], X[:, 1] * X[:, 2]], axis=1)


def fit(folder, epochs=3):
    """Trains (or resumes) in `folder`; returns (model, the epoch it resumed from)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        3, kernel_initializer=keras.initializers.GlorotUniform(seed=1))])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    backup = AtomicBackupAndRestore(os.path.join(folder, "backup"))
    stop = GracefulStop(backup.backup_dir)
    with stop:
        model.fit(X, Y, batch_size=8, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[HistoryLogger(os.path.join(folder, "history.csv")), backup, stop])
    return model, backup.resumed_from


if __name__ == "__main__":
    fit(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
