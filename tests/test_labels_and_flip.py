"""Labels are checked before training; flipping is decided per dataset and overridable."""
import os
import subprocess
import sys

import numpy as np
import pytest

from adder_tf.data import load_dataset
from adder_tf.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _npz(path, y_train, y_test, channels=1):
    rng = np.random.default_rng(0)
    shape = (8, 8) if channels == 1 else (8, 8, channels)
    np.savez(path, x_train=rng.integers(0, 255, (len(y_train), *shape), dtype=np.uint8),
             y_train=np.asarray(y_train), x_test=rng.integers(0, 255, (len(y_test), *shape), dtype=np.uint8),
             y_test=np.asarray(y_test))
    return str(path)


def test_training_labels_that_skip_classes_are_an_error_through_the_cli(tmp_path):
    path = _npz(tmp_path / "shifted.npz", np.arange(50, 70).repeat(2), np.full(10, 50))
    out = subprocess.run([sys.executable, "train/main.py", "--dataset=npz", f"--data_path={path}",
                          "--method=ann", "--arch=resnet8", f"--model_dir={tmp_path}/run"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "y_train has no example of class(es) 0, 1, 2, 3, 4 ..." in last
    assert "--num_classes" in last and "Traceback" not in out.stderr


def test_test_classes_absent_from_training(tmp_path):
    path = _npz(tmp_path / "unseen.npz", [0, 1, 2] * 4, [0, 1, 3])
    with pytest.raises(UserError, match=r"y_test has class\(es\) \[3\] that y_train never shows"):
        load_dataset("npz", 4, data_path=path)
    data = load_dataset("npz", 4, data_path=path, num_classes=5)   # said to be intended
    assert data.num_classes == 5
    with pytest.raises(UserError, match="label 4 out of range for 3 classes"):
        load_dataset("npz", 4, data_path=_npz(tmp_path / "big.npz", [0, 1, 4], [0]), num_classes=3)


def test_flip_defaults_and_override(tmp_path):
    gray = _npz(tmp_path / "gray.npz", [0, 1] * 4, [0, 1])
    colour = _npz(tmp_path / "rgb.npz", [0, 1] * 4, [0, 1], channels=3)
    assert load_dataset("npz", 4, data_path=gray).flip is False
    assert load_dataset("npz", 4, data_path=colour).flip is True
    assert load_dataset("npz", 4, data_path=gray, flip=True).flip is True
    assert load_dataset("npz", 4, data_path=colour, flip=False).flip is False
    assert load_dataset("digits", 4).flip is False
