"""Nothing a user trained is lost: kill -9 and resume, non-finite loss, several workers."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = ["--flagfile=flags/quickstart.cfg", "--steps_per_epoch=3", "--verbose=0", "--batch_size=32"]


def command(*args):
    return [sys.executable, os.path.join(ROOT, "train", "main.py"), *BASE, *args]


def env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)


def epochs_done(model_dir):
    path = os.path.join(model_dir, "history.csv")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return max(len([line for line in f if line.strip()]) - 1, 0)


def test_kill_9_then_same_command_resumes_with_optimizer_state(tmp_path):
    args = command("--epochs=6", f"--model_dir={tmp_path}")
    proc = subprocess.Popen(args, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while epochs_done(tmp_path) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = epochs_done(tmp_path)
    assert 2 <= killed_after < 6, killed_after
    out = subprocess.run(args, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    with open(os.path.join(tmp_path, "results.json")) as f:
        full = json.load(f)
    # The resumed run starts after the last epoch whose checkpoint was written.
    assert killed_after - 1 <= results["resumed_from_epoch"] <= killed_after
    assert results["epochs_completed"] == 6
    # Both optimizers' step counters (and so the cosine schedule) carried on.
    assert full["optimizer_steps"] == {"student": 18, "teacher": 18}
    # and the resumed run's figure describes its student (statistics of its weights)
    as_saved, reestimated = _scores(os.path.join(tmp_path, "student.keras"))
    assert as_saved == pytest.approx(full["student"]["top1"], abs=1e-6)
    assert abs(as_saved - reestimated) <= 0.01, (as_saved, reestimated)
    assert [int(h["epoch"]) for h in full["history"]][-1] == 5


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    ok = subprocess.run(command("--epochs=1", f"--model_dir={tmp_path}"), cwd=ROOT, env=env(),
                        capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr[-3000:]
    backup = os.path.join(tmp_path, "backup")
    before = {name: os.path.getmtime(os.path.join(backup, name)) for name in os.listdir(backup)}
    bad = subprocess.run(command("--epochs=3", "--lr=1e38", "--eta=0", f"--model_dir={tmp_path}"),
                         cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert "loss became" in last and "epoch 2, step" in last, last
    after = {name: os.path.getmtime(os.path.join(backup, name)) for name in os.listdir(backup)}
    assert after == before   # the epoch-1 checkpoint was not overwritten


def _start_two_workers(model_dir, *args, extra_env=None):
    """Worker i gets extra_env[i] in its environment, if any."""
    from adder_tf.strategy import loopback_tf_configs
    return [subprocess.Popen(command("--strategy=multi_worker", f"--model_dir={model_dir}", *args),
                             cwd=ROOT, env=env(TF_CONFIG=tf_config, **(extra_env or {}).get(i, {})),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=default_sigint)
            for i, tf_config in enumerate(loopback_tf_configs(2))]


def default_sigint():
    """SIGINT as a terminal gives it, even when the tests run in the background (ignored there)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _two_workers(model_dir, *args):
    """Both workers of a loopback cluster run the same command; their (process, stdout, stderr)."""
    return [(p, *p.communicate(timeout=600)) for p in _start_two_workers(model_dir, *args)]


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_lost_worker_ends_its_peer_within_the_worker_timeout(tmp_path, how):
    # killed: kill -9 a few steps into epoch 2 (its connections close; else the heartbeat).
    # hung: it stops inside its epoch-1 backup write, alive (heartbeats go on), the chief
    # waiting in epoch 2's first step: only the collective's timeout can tell
    # (--collective_timeout=1000: the chief was still waiting after 120 s).
    hang = {1: {"ADDER_TF_FAULT": "backup:1:hang"}} if how == "hung" else {}
    procs = _start_two_workers(tmp_path, "--epochs=3", "--steps_per_epoch=12",
                               "--worker_timeout=10", "--collective_timeout=10", extra_env=hang)
    if how == "killed":
        _wait_for_both_checkpoints(tmp_path)
        time.sleep(2.0)   # into epoch 2
        procs[1].kill()
    else:
        while not (tmp_path / "backup" / "latest.weights.h5").exists():
            time.sleep(0.2)   # the chief's epoch-1 checkpoint: it goes on to epoch 2
    lost_at = time.time()
    try:
        _, stderr = procs[0].communicate(timeout=120)
        seconds = time.time() - lost_at
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert seconds < 25, (seconds, stderr[-2000:])   # 10 s and the exit, on a loaded host
    assert procs[0].returncode == 1
    assert stderr.strip().splitlines()[-1].startswith("error: another worker stopped answering")


def test_ctrl_c_to_one_of_two_workers_stops_both_after_the_same_step(tmp_path):
    procs = _start_two_workers(tmp_path, "--epochs=3", "--steps_per_epoch=12")
    _wait_for_both_checkpoints(tmp_path)
    time.sleep(2.0)   # into epoch 2
    procs[1].send_signal(signal.SIGINT)   # the other worker gets none
    outs = [p.communicate(timeout=300) for p in procs]
    stops = []
    for p, (_, stderr) in zip(procs, outs):
        assert p.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
        last = stderr.strip().splitlines()[-1]
        match = re.fullmatch(r"interrupted (?:at epoch (\d+), step (\d+)|after epoch (\d+)); kept "
                             r"the checkpoint of (epoch \d+(?:, step \d+)?) in .*; resume with: .*",
                             last)
        assert match, last
        stops.append(match.groups())
    assert stops[0] == stops[1]   # the same step, the same kept position
    at, step, after, kept = stops[0]
    # Kept where it stopped: that step inside an epoch, or the whole epoch it ended.
    assert kept == (f"epoch {at}, step {step}" if at else f"epoch {after}")
    whole = int(at) - 1 if at else int(after)
    for p, stdout, stderr in _two_workers(tmp_path, "--epochs=3", "--steps_per_epoch=12"):
        assert p.returncode == 0, stderr[-3000:]
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["resumed_from_epoch"] == whole >= 1 and result["epochs_completed"] == 3
    with open(os.path.join(tmp_path, "results.json")) as f:
        assert json.load(f)["resumed_from_step"] == (int(step) if at else 0)


def _wait_for_both_checkpoints(model_dir):
    kept = [model_dir / "backup" / "latest.weights.h5",
            model_dir / "workertemp_1" / "backup" / "latest.weights.h5"]
    deadline = time.time() + 300
    while not all(p.exists() for p in kept) and time.time() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="module")
def two_worker_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_workers")
    return folder, _two_workers(folder, "--epochs=2", "--steps_per_epoch=12")


def test_two_workers_on_localhost_finish_one_run(two_worker_run):
    tmp_path, outs = two_worker_run
    for p, stdout, stderr in outs:
        assert p.returncode == 0, stderr[-3000:]
    with open(os.path.join(tmp_path, "results.json")) as f:
        results = json.load(f)
    assert results["replicas"] == 2 and results["epochs_completed"] == 2
    # The figures describe the trained student: its saved weights, with statistics
    # re-estimated here on the training images, score the same on the test images.
    as_saved, reestimated = _scores(os.path.join(tmp_path, "student.keras"))
    assert as_saved == pytest.approx(results["student"]["top1"], abs=1e-6)
    # Two re-estimations from different draws of 20 training batches differ by a few of
    # the 360 test images (0.011 seen); statistics that trail the weights cost tens of points.
    assert abs(as_saved - reestimated) <= 0.03, (results["student"], reestimated)
    assert results["history"][-1]["val_top1"] == pytest.approx(results["student"]["top1"], abs=1e-6)
    assert os.path.exists(os.path.join(tmp_path, "export", "student", "saved_model.pb"))
    # the non-chief checkpointed in its own folder, never over the chief's files
    assert os.path.isdir(os.path.join(tmp_path, "workertemp_1", "backup"))
    assert not os.path.exists(os.path.join(tmp_path, "workertemp_1", "export"))


def test_workers_whose_checkpoints_disagree_refuse_in_one_line(two_worker_run, tmp_path):
    # Worker 1 given an empty folder while the chief holds epoch 2: resuming would
    # restart every worker from epoch 0 and overwrite the chief's checkpoint.
    shutil.copytree(two_worker_run[0], tmp_path, dirs_exist_ok=True)
    shutil.rmtree(os.path.join(tmp_path, "workertemp_1", "backup"))
    before = os.path.getmtime(os.path.join(tmp_path, "backup", "latest.weights.h5"))
    for p, stdout, stderr in _two_workers(tmp_path, "--epochs=3", "--steps_per_epoch=12"):
        assert p.returncode == 2 and "Traceback" not in stderr, stderr[-3000:]
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("error: the workers' checkpoints disagree: they hold epochs 0, 2 "), last
    assert os.path.getmtime(os.path.join(tmp_path, "backup", "latest.weights.h5")) == before


def _scores(path):
    """Test top-1 of a saved student as saved, and with statistics re-estimated here."""
    import keras
    import adder_tf.models  # noqa: F401  (registers AdderModel and the layers)
    from adder_tf.batchnorm import reestimate
    from adder_tf.data import load_dataset
    data = load_dataset("digits", 64, seed=0)
    student = keras.saving.load_model(path)
    student.compile(metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    as_saved = student.evaluate(data.test, verbose=0)[1]
    reestimate(student, data.train, steps=20)
    return as_saved, student.evaluate(data.test, verbose=0)[1]


def test_ctrl_c_exits_130_and_keeps_the_checkpoint(tmp_path):
    args = command("--epochs=50", f"--model_dir={tmp_path}")
    proc = subprocess.Popen(args, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,   # SIGINT as a terminal gives it:
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while epochs_done(tmp_path) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)   # the history row of epoch 2 follows epoch 1's checkpoint
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    # The step under way finished; the run stopped there and kept that step (or, at an
    # epoch's last step or end, that epoch).
    match = re.fullmatch(r"interrupted (?:at epoch (\d+), step ([12])|after epoch (\d+)); kept the "
                         r"checkpoint of (epoch \d+(?:, step [12])?) in (.*); resume with: (.*)", last)
    assert match, last
    at, step, after, kept, folder, resume = match.groups()
    assert kept == (f"epoch {at}, step {step}" if at else f"epoch {after}")
    whole = int(at) - 1 if at else int(after)
    assert whole >= 2
    assert folder == os.path.join(str(tmp_path), "backup")
    assert resume.endswith(shlex.join(args[1:]))
    from adder_tf.checkpoint import completed_epochs
    assert completed_epochs(folder) == whole == epochs_done(tmp_path)   # no half epoch logged


def test_help_exits_0():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "train", "main.py"), "--help"],
                         cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--feature_norm" in out.stdout


def test_unexpected_failure_is_one_line_and_status_1(tmp_path):
    # an OSError raised inside the history write of epoch 1 (atomic_io's test hook)
    out = subprocess.run(command("--epochs=2", f"--model_dir={tmp_path}"), cwd=ROOT,
                         env=env(ADDER_TF_FAULT="history:1:raise"), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last == ("error: OSError: ADDER_TF_FAULT: injected failure writing history at epoch 1 "
                    "(rerun with --debug for the traceback)")
    assert "Traceback" not in out.stderr
    assert os.listdir(tmp_path) and not os.path.exists(os.path.join(tmp_path, "history.csv"))
