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
import time

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
    out = train(run, 2)
    result = summary(out)
    assert "Traceback" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1 and warnings[0].endswith("resuming from the previous one (epoch 1)")
    assert "latest.weights.h5 cannot be read" in warnings[0]
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 2
    assert history_epochs(run) == [0, 1]
    # Epoch 2 ran again from the epoch the .bkp holds, on epoch 2's batches (not on
    # epoch 3's, which the torn file's stored epoch would have given): the undisturbed
    # run's loss, statistics and figure.
    assert history(run, "loss") == pytest.approx(history(two_epochs, "loss"), abs=1e-4)
    assert_same_student(run, two_epochs)


def test_a_run_torn_by_an_interrupted_in_place_write_resumes_from_the_epoch_before(two_epochs,
                                                                                   tmp_path):
    # No test hook: the files as an older version's in-place writes stopped in epoch 2's end
    # left them (the checkpoint with half its objects, closed as the stopped writer's
    # unwinding closes it; the history's last row cut short).
    run = str(tmp_path / "run")
    shutil.copytree(two_epochs, run)
    tear(os.path.join(run, "backup", "latest.weights.h5"))
    with open(os.path.join(run, "history.csv")) as f:
        text = f.read()
    with open(os.path.join(run, "history.csv"), "w") as f:
        f.write(text[:text.rindex("\n", 0, -1) + 40])   # epoch 2's row cut after 39 characters
    out = train(run, 2)
    assert out.returncode == 0 and "Traceback" not in out.stderr, stderr_tail(out)
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].endswith("resuming from the previous one (epoch 1)")
    result = summary(out)
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 2
    assert history_epochs(run) == [0, 1]
    assert history(run, "loss") == pytest.approx(history(two_epochs, "loss"), abs=1e-4)


def tear(path):
    """Rewrites the HDF5 file at `path` as an in-place write stopped half-way leaves it:
    the first half of its datasets, written in order, and the file closed."""
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        data = {name: f[name][()] for name in names}
    with h5py.File(path, "w") as f:
        for name in names[:len(names) // 2]:
            f.create_dataset(name, data=data[name])


def test_a_resumed_run_ends_with_the_statistics_and_figure_of_an_undisturbed_one(two_epochs,
                                                                                 tmp_path):
    # The checkpoint of epoch 1 made the latest, as a kill inside epoch 2 leaves the folder:
    # epoch 2's end re-estimates the BatchNorm statistics on the batches the undisturbed
    # run used there (drawn from (seed, epoch), not from how often the data was read).
    run = str(tmp_path / "run")
    shutil.copytree(two_epochs, run)
    backup = os.path.join(run, "backup")
    for name in ("latest.weights.h5", "training_metadata.json"):
        os.replace(os.path.join(backup, name + ".bkp"), os.path.join(backup, name))
    result = summary(train(run, 2))
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 2
    assert_same_student(run, two_epochs)


def assert_same_student(run, reference):
    """The same final figure and BatchNorm statistics (the exported student's)."""
    with open(os.path.join(run, "results.json")) as f, \
            open(os.path.join(reference, "results.json")) as g:
        assert json.load(f)["student"] == pytest.approx(json.load(g)["student"], abs=1e-6)
    import keras
    import numpy as np
    import adder_tf.models  # noqa: F401  (registers the layers)
    statistics = [[w.numpy() for w in keras.saving.load_model(
        os.path.join(folder, "student.keras")).non_trainable_weights] for folder in (run, reference)]
    assert len(statistics[0]) == len(statistics[1]) > 0
    for mine, theirs in zip(*statistics):
        np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-4)


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
    # Epochs 2 and 3 ran on the batches an undisturbed run trains on (epoch e's data
    # comes from (seed, e) alone), from the same weights and optimizer state: the same
    # training losses. Other batches would move them by far more than the tolerance.
    undisturbed = str(tmp_path / "undisturbed")
    summary(train(undisturbed, 3))
    assert history(run, "loss") == pytest.approx(history(undisturbed, "loss"), abs=1e-4)


def history(model_dir, key):
    with open(os.path.join(model_dir, "results.json")) as f:
        return [row[key] for row in json.load(f)["history"]]


def test_the_data_of_epoch_e_is_the_same_whichever_epoch_the_stream_starts_at():
    from adder_tf.data import load_dataset
    data = load_dataset("digits", 32, seed=3)
    labels = lambda ds, n: [batch[1].numpy().tolist() for batch in ds.take(n)]   # noqa: E731
    from_start = labels(data.train_from(0, 4), 12)
    assert labels(data.train_from(2, 4), 4) == from_start[8:]
    assert from_start[:4] != from_start[4:8]   # and each epoch is shuffled anew
    passes = -(-data.train_examples // 32)   # steps_per_epoch=0: an epoch is one pass
    assert labels(data.train_from(1), passes) == labels(data.train_from(0), 2 * passes)[passes:]


@pytest.mark.parametrize("fault", ["health:2:sigkill-torn", "backup:2:sigkill-torn"])
def test_the_health_log_holds_each_epoch_once_after_a_kill_around_the_checkpoint(tmp_path, fault):
    # health: killed inside epoch 2's health line (before the checkpoint of epoch 2);
    # backup: killed after that line, inside the checkpoint: epoch 2 is replayed.
    run = str(tmp_path / "run")
    killed = train(run, 3, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    result = summary(train(run, 3))
    assert result["resumed_from_epoch"] == 1 and result["epochs_completed"] == 3
    with open(os.path.join(run, "feature_health_epochs.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2, 3]


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


def test_sigint_after_training_names_what_is_kept(tmp_path):
    run = str(tmp_path / "run")
    stopped = train(run, 1, fault="results:1:sigint")   # inside results.json's write
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr
    kept = stopped.stderr.strip().splitlines()[-1].split("; resume with: ")[0]
    assert kept == (f"interrupted after epoch 1; kept the checkpoint of epoch 1 in "
                    f"{os.path.join(run, 'backup')}")


def stderr_tail(out):
    return out.stderr[-2000:]


LONG_STEP = """
import sys, time
import keras, numpy as np, tensorflow as tf
from adder_tf.interrupt import GracefulStop

def slow(x):
    print("inside the long step", flush=True)
    time.sleep(120)   # one op that does not return to Python's main loop
    return x

class Slow(keras.layers.Layer):
    def call(self, x):
        y = tf.numpy_function(slow, [x], tf.float32)
        return tf.ensure_shape(y, x.shape)

model = keras.Sequential([keras.Input((4,)), Slow(), keras.layers.Dense(2)])
model.compile("sgd", "mse")
stop = GracefulStop(sys.argv[1])
with stop:
    model.fit(np.zeros((8, 4), "float32"), np.zeros((8, 2), "float32"), epochs=2, verbose=0,
              callbacks=[stop])
print("fit returned", flush=True)
"""


def test_a_second_ctrl_c_ends_the_process_at_once_even_inside_one_long_op(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", LONG_STEP, str(tmp_path / "backup")],
                            env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    assert proc.stdout.readline() == "inside the long step\n"
    proc.send_signal(signal.SIGINT)   # the first one waits for the step to end (120 s)
    time.sleep(1.0)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    start = time.time()
    try:
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert time.time() - start < 20
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == ("interrupted twice: stopped at once; no epoch "
                                               "was completed, nothing kept")
