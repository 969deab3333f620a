"""A run stopped inside any write resumes from a completed epoch (train/main.py, digits).

The faults are put where they hurt with ADDER_TF_FAULT (`adder_tf.atomic_io`):
inside the write, after the temporary file and before the rename; a torn
checkpoint is made by hand, as an older version's kill left it.
experiments/fault_matrix.py runs every write point, both signals, 3 epochs.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import h5py
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--flagfile=flags/quickstart.cfg", "--steps_per_epoch=3", "--verbose=2", "--batch_size=32"]


def train(model_dir, epochs, fault=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("ADDER_TF_FAULT", None)
    if fault:
        env["ADDER_TF_FAULT"] = fault
    return subprocess.run([sys.executable, "train/main.py", *BASE, f"--epochs={epochs}",
                           f"--model_dir={model_dir}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=default_sigint)


def default_sigint():
    """SIGINT as a terminal gives it, even when the tests run in the background (ignored there)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def summary(out):
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def history_epochs(model_dir):
    with open(os.path.join(model_dir, "results.json")) as f:
        return [int(row["epoch"]) for row in json.load(f)["history"]]


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("two_epochs") / "run")
    summary(train(folder, 2))
    return folder


def test_a_torn_checkpoint_falls_back_to_the_previous_epoch_in_one_line(two_epochs, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(two_epochs, run)
    weights = os.path.join(run, "backup", "latest.weights.h5")
    with h5py.File(weights, "a") as f:   # opens, then fails in Keras with ValueError, as a
        del f["layers"]                  # file whose write stopped before the layers is
    out = train(run, 3)
    result = summary(out)
    assert "Traceback" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1 and warnings[0].endswith("resuming from the previous one (epoch 1)")
    assert "latest.weights.h5 cannot be read" in warnings[0]
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 3
    assert history_epochs(run) == [0, 1, 2]


def test_no_readable_checkpoint_is_one_line_and_never_a_silent_restart(two_epochs, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(two_epochs, run)
    backup = os.path.join(run, "backup")
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        with open(os.path.join(backup, name), "w") as f:
            f.write("not a checkpoint")
    out = train(run, 3)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no checkpoint in {backup} can be read (latest.weights.h5 cannot")
    assert last.endswith("move that folder away to start from epoch 1")
    assert history_epochs(run) == [0, 1]   # results.json of the finished run untouched


def test_sigkill_inside_the_backup_write_resumes_from_the_epoch_before(tmp_path):
    run = str(tmp_path / "run")
    killed = train(run, 3, fault="backup:2:sigkill-torn")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    result = summary(train(run, 3))
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 3
    assert history_epochs(run) == [0, 1, 2]


def test_sigint_inside_a_write_stops_after_it_and_prints_the_command_that_resumes(tmp_path):
    run = str(tmp_path / "run")
    stopped = train(run, 3, fault="history:2:sigint")
    assert stopped.returncode == 130, stderr_tail(stopped)
    assert "Traceback" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    kept, command = last.split("; resume with: ")
    # The history write under way finished and so did the epoch's checkpoint.
    assert kept == (f"interrupted after epoch 2; kept the checkpoint of epoch 2 in "
                    f"{os.path.join(run, 'backup')}")
    argv = shlex.split(command)
    assert argv[1:] == ["train/main.py", *BASE, "--epochs=3", f"--model_dir={run}"]
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={k: v for k, v in os.environ.items() if k != "ADDER_TF_FAULT"},
                           preexec_fn=default_sigint)
    result = summary(again)
    assert result["resumed_from_epoch"] == 2 and result["epochs_completed"] == 3
    assert history_epochs(run) == [0, 1, 2]


def stderr_tail(out):
    return out.stderr[-2000:]


def test_a_second_ctrl_c_ends_the_process_at_once():
    code = ("import os, signal, time\n"
            "from adder_tf.interrupt import GracefulStop\n"
            "with GracefulStop('backup') as stop:\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(0.2)\n"
            "    print('first one only asked', stop.requested, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(30)\n"
            "    print('still running', flush=True)\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=120, preexec_fn=default_sigint)
    assert out.stdout == "first one only asked True\n"
    assert out.returncode == -signal.SIGINT
