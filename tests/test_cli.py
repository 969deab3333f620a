"""The command line, end to end, as a user runs it (fresh processes)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--flagfile=flags/quickstart.cfg", "--epochs=1", "--steps_per_epoch=4", "--verbose=0"]


def run(script, *args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join("train", script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def last_json(out):
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("run"))
    out = run("main.py", *QUICK, f"--model_dir={model_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    return model_dir


def test_train_writes_results_and_exports(trained):
    with open(os.path.join(trained, "results.json")) as f:
        results = json.load(f)
    for key in ("method", "arch", "dataset", "epochs_completed", "resumed_from_epoch",
                "replicas", "student", "teacher", "seed", "history"):
        assert key in results, key
    assert results["epochs_completed"] == 1 and results["resumed_from_epoch"] == 0
    for name in ("student", "teacher"):
        assert os.path.exists(os.path.join(trained, "export", name, "saved_model.pb"))
    # The reported accuracies are each network's own on the test split: recomputed here
    # with numpy from the exports (not the trainer's metrics).
    import tensorflow as tf
    from adder_tf.data import load_dataset
    images, labels = map(np.concatenate, zip(*[(x.numpy(), y.numpy())
                                               for x, y in load_dataset("digits", 64, seed=0).test]))
    for name in ("student", "teacher"):
        loaded = tf.saved_model.load(os.path.join(trained, "export", name))
        logits = loaded.serve(images).numpy()
        ranks = np.argsort(-logits, axis=1)
        top1 = float(np.mean(ranks[:, 0] == labels))
        top5 = float(np.mean(np.any(ranks[:, :5] == labels[:, None], axis=1)))
        assert abs(results[name]["top1"] - top1) < 1e-6, (name, results[name], top1)
        assert abs(results[name]["top5"] - top5) < 1e-6, (name, results[name], top5)
    assert os.listdir(os.path.join(trained, "logs", "train"))   # TensorBoard events


def test_evaluate_reproduces_reported_accuracy_in_a_fresh_process(trained):
    with open(os.path.join(trained, "results.json")) as f:
        results = json.load(f)
    for name in ("student", "teacher"):
        out = run("evaluate.py", f"--saved_model={trained}/export/{name}", "--dataset=digits")
        assert out.returncode == 0, out.stderr[-3000:]
        scores = last_json(out)
        assert scores["n"] == 360
        assert abs(scores["top1"] - results[name]["top1"]) < 1e-6, (name, scores, results[name])
        assert abs(scores["top5"] - results[name]["top5"]) < 1e-6


def test_same_command_resumes(tmp_path):
    args = [*QUICK, f"--model_dir={tmp_path}", "--method=pkkd"]
    assert run("main.py", *args).returncode == 0
    out = run("main.py", *args[:-2], "--epochs=2", f"--model_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    results = last_json(out)
    assert results["resumed_from_epoch"] == 1 and results["epochs_completed"] == 2
    with open(os.path.join(tmp_path, "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().split()[1:]] == ["0", "1"]


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("args, culprit", [
    (["--method=foo"], "--method"),
    (["--epochs=0"], "--epochs"),
    (["--lr=-1"], "--lr"),
    (["--momentum=1.5"], "--momentum"),
    (["--feature_loss=cosine"], "--feature_loss"),
    (["--teacher=fixed"], "--teacher_path"),
    (["--dataset=npz"], "--data_path"),
    (["--data_path=/nonexistent/x.npz", "--dataset=npz"], "/nonexistent/x.npz"),
    (["--teacher=fixed", "--teacher_path=/nonexistent/t.keras"], "/nonexistent/t.keras"),
    (["--flagfile=flags/does_not_exist.cfg"], "does_not_exist.cfg"),
    (["stray_argument"], "stray_argument"),
])
def test_bad_input_is_one_line_and_non_zero(args, culprit, tmp_path):
    out = run("main.py", *QUICK, f"--model_dir={tmp_path}", *args, timeout=120)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    message = [line for line in lines if culprit in line]
    assert message, out.stderr[-2000:]


def test_corrupt_data_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    out = run("main.py", *QUICK, f"--model_dir={tmp_path}/run", "--dataset=npz",
              f"--data_path={bad}", timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert str(bad) in out.stderr.strip().splitlines()[-1]
    rng = np.random.default_rng(0)
    mismatch = _npz(tmp_path / "mismatch.npz", x_train=rng.random((10, 8, 8)),
                    y_train=np.zeros(9, int), x_test=rng.random((4, 8, 8)), y_test=np.zeros(4, int))
    out = run("main.py", *QUICK, f"--model_dir={tmp_path}/run2", "--dataset=npz",
              f"--data_path={mismatch}", timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "mismatch.npz" in out.stderr.strip().splitlines()[-1]


def test_evaluate_rejects_a_folder_that_is_not_a_saved_model(tmp_path):
    out = run("evaluate.py", f"--saved_model={tmp_path}", "--dataset=digits", timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert str(tmp_path) in out.stderr.strip().splitlines()[-1]


def test_short_progress_lines_and_validation_not_at_chance(tmp_path):
    """--verbose=2: one short line per epoch; BatchNorm re-estimation keeps the ANN's
    validation accuracy meaningful from the first epochs (it used to sit at 10%)."""
    out = run("main.py", "--flagfile=flags/quickstart.cfg", "--epochs=3", f"--model_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_lines) == 3 and all(len(line) <= 160 for line in epoch_lines), epoch_lines
    assert "I0000" not in out.stderr and "oneDNN" not in out.stderr   # quiet start-up
    with open(os.path.join(tmp_path, "results.json")) as f:
        results = json.load(f)
    trained = [h for h in results["history"] if h["top1"] > 0.5]
    assert trained, results["history"]
    assert all(h["val_top1"] > 0.5 for h in trained), results["history"]
    assert results["bn_reestimation"]["steps"] == 20


def test_evaluate_takes_a_run_folder_and_tells_bad_paths_apart(trained, tmp_path):
    out = run("evaluate.py", f"--saved_model={trained}")     # dataset from the run
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"evaluating {trained}/export/student" in out.stderr
    assert last_json(out)["n"] == 360
    keras_file = tmp_path / "model.keras"
    keras_file.write_text("x")
    (tmp_path / "empty").mkdir()
    for path, message in ((tmp_path / "nope", "no such file or folder"),
                          (keras_file, "a .keras file, not a SavedModel folder"),
                          (tmp_path / "empty", "neither saved_model.pb nor export/student")):
        out = run("evaluate.py", f"--saved_model={path}", "--dataset=digits")
        assert out.returncode == 2 and message in out.stderr.strip().splitlines()[-1], out.stderr
