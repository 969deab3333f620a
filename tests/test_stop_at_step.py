"""A Ctrl-C inside an epoch keeps the step it lands on; the rerun resumes there (train/main.py, digits).

The SIGINT comes right after a known training step through the test hook
ADDER_TF_FAULT=step:<n>:sigint (`adder_tf.atomic_io`), as a Ctrl-C at that
moment would. The reference is an undisturbed run of the same command: the
interrupted and resumed run must end with the very same weights, and its
rerun must train only the steps the first run did not.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--flagfile=flags/quickstart.cfg", "--steps_per_epoch=3", "--verbose=2", "--batch_size=32",
        "--epochs=3"]


def train(model_dir, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "ADDER_TF_FAULT"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if fault:
        env["ADDER_TF_FAULT"] = fault
    return subprocess.run([sys.executable, "train/main.py", *BASE, f"--model_dir={model_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def summary(out):
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("undisturbed") / "run")
    summary(train(folder))
    return folder


def optimizer_steps(weights_file):
    """Both optimizers' step counters as the checkpoint file holds them (Keras's own layout)."""
    with h5py.File(weights_file, "r") as f:
        return [int(f[f"{name}/vars/0"][()]) for name in ("optimizer", "teacher_optimizer")]


def weights(folder):
    import keras
    import adder_tf.models  # noqa: F401  (registers the layers)
    return [[w.numpy() for w in keras.saving.load_model(os.path.join(folder, f"{net}.keras")).weights]
            for net in ("student", "teacher")]


def test_a_ctrl_c_inside_an_epoch_keeps_that_step_and_the_rerun_ends_as_an_undisturbed_run(
        undisturbed, tmp_path):
    run = str(tmp_path / "run")
    stopped = train(run, fault="step:5:sigint")   # epoch 2 of 3 steps, after its step 2
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    backup = os.path.join(run, "backup")
    kept, command = stopped.stderr.strip().splitlines()[-1].split("; resume with: ")
    assert kept == f"interrupted at epoch 2, step 2; kept the checkpoint of epoch 2, step 2 in {backup}"
    assert shlex.split(command)[1:] == ["train/main.py", *BASE, f"--model_dir={run}"]
    # What was saved is the state after step 5, not the end of epoch 1 (step 3).
    assert optimizer_steps(os.path.join(backup, "latest.weights.h5")) == [5, 5]

    result = summary(train(run))
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 3
    with open(os.path.join(run, "results.json")) as f:
        full = json.load(f)
    assert full["resumed_from_step"] == 2 and full["optimizer_steps"] == {"student": 9, "teacher": 9}
    assert [int(row["epoch"]) for row in full["history"]] == [0, 1, 2]
    # The rerun trained steps 6 to 9 on the batches the undisturbed run trained them on
    # (epoch 2's data past its first 2 batches): the same weights, bit for bit up to
    # the float noise of a different thread schedule, and the same figure.
    with open(os.path.join(undisturbed, "results.json")) as f:
        reference = json.load(f)
    assert full["student"] == pytest.approx(reference["student"], abs=1e-6)
    for mine, theirs in zip(weights(run), weights(undisturbed)):
        assert len(mine) == len(theirs) > 0
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Epoch 3's training loss is the undisturbed one; epoch 2's covers its last step only.
    assert full["history"][2]["loss"] == pytest.approx(reference["history"][2]["loss"], abs=1e-5)


def test_a_ctrl_c_at_an_epochs_last_step_keeps_the_whole_epoch(tmp_path):
    run = str(tmp_path / "run")
    stopped = train(run, fault="step:3:sigint")   # the last step of epoch 1: its end runs
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    last = stopped.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted after epoch 1; kept the checkpoint of epoch 1 in "
                        rf"{re.escape(os.path.join(run, 'backup'))}; resume with: .*", last), last
    assert optimizer_steps(os.path.join(run, "backup", "latest.weights.h5")) == [3, 3]
