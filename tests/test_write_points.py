"""Every write point of the checkpoint callbacks, SIGINT and SIGKILL, epochs 1 and 2 of 3.

A tiny model under the trainer's callbacks (tests/tiny_run.py); the fault is put
inside the write, after the temporary file and before the rename (ADDER_TF_FAULT,
`adder_tf.atomic_io`; SIGKILL with the temporary file cut in half first). The rerun
resumes from a completed epoch and ends with an undisturbed run's weights. The
writes after training (results.json, the exports) and the health log are covered
through the command line (tests/test_stop_anywhere.py, experiments/fault_matrix.py).
"""
import csv
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import tiny_run
from adder_tf.interrupt import Interrupted

HERE = os.path.dirname(os.path.abspath(__file__))
POINTS = ("backup", "metadata", "history")   # the writes of an epoch's end, in this order
EPOCHS = (1, 2)


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    model, _ = tiny_run.fit(str(tmp_path_factory.mktemp("undisturbed")))
    return model.get_weights()


@pytest.fixture
def sigint_delivered():
    """SIGINT handled as a terminal gives it (tests run in the background start with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("point", POINTS)
def test_sigint_inside_a_write(tmp_path, monkeypatch, sigint_delivered, undisturbed, point, epoch):
    monkeypatch.setenv("ADDER_TF_FAULT", f"{point}:{epoch}:sigint")
    with pytest.raises(Interrupted) as stopped:
        tiny_run.fit(str(tmp_path))
    # the write under way finished, and so did the epoch's checkpoint
    assert str(stopped.value) == (f"interrupted after epoch {epoch}; kept the checkpoint of "
                                  f"epoch {epoch} in {tmp_path / 'backup'}")
    monkeypatch.delenv("ADDER_TF_FAULT")
    resumes_and_finishes(tmp_path, undisturbed, epoch)


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_inside_a_write(tmp_path, undisturbed, point, epoch):
    killed = subprocess.run([sys.executable, os.path.join(HERE, "tiny_run.py"), str(tmp_path)],
                            env=dict(os.environ, ADDER_TF_FAULT=f"{point}:{epoch}:sigkill-torn"),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # the history row and the weights come before the epoch counter (kept inside the weights)
    resumes_and_finishes(tmp_path, undisturbed, epoch if point == "metadata" else epoch - 1)


def resumes_and_finishes(folder, undisturbed, completed):
    model, resumed_from = tiny_run.fit(str(folder))
    assert resumed_from == completed
    with open(os.path.join(folder, "history.csv")) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == [0, 1, 2]   # each epoch once, a replayed one included
    for mine, theirs in zip(model.get_weights(), undisturbed):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
