"""Files written whole or not at all, and the ADDER_TF_FAULT hook that breaks a write on purpose."""
import os
import signal
import subprocess
import sys

import pytest

from adder_tf import atomic_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_write_that_fails_before_the_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_io.write_text(str(path), "old", "results", 1)
    monkeypatch.setenv("ADDER_TF_FAULT", "results:2:raise-torn")
    with pytest.raises(OSError, match="injected failure writing results at epoch 2"):
        atomic_io.write_text(str(path), "new" * 1000, "results", 2)
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["results.json"]
    atomic_io.write_text(str(path), "new", "results", 3)   # another epoch: the hook stays quiet
    assert path.read_text() == "new"


def test_a_folder_is_replaced_only_once_the_new_one_is_whole(tmp_path, monkeypatch):
    target = tmp_path / "export" / "student"
    with atomic_io.atomic_dir(str(target), "export", 1) as tmp:
        os.makedirs(tmp)
        open(os.path.join(tmp, "saved_model.pb"), "w").write("v1")
    monkeypatch.setenv("ADDER_TF_FAULT", "export:2:raise")
    with pytest.raises(OSError):
        with atomic_io.atomic_dir(str(target), "export", 2) as tmp:
            os.makedirs(tmp)
            open(os.path.join(tmp, "saved_model.pb"), "w").write("v2")
    assert (target / "saved_model.pb").read_text() == "v1"
    assert os.listdir(tmp_path / "export") == ["student"]
    monkeypatch.delenv("ADDER_TF_FAULT")
    with atomic_io.atomic_dir(str(target), "export", 2) as tmp:
        os.makedirs(tmp)
        open(os.path.join(tmp, "saved_model.pb"), "w").write("v2")
    assert (target / "saved_model.pb").read_text() == "v2"
    assert os.listdir(tmp_path / "export") == ["student"]


def test_sigkill_between_the_write_and_the_rename_leaves_the_old_file(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch\n0\n")
    code = ("import sys; from adder_tf import atomic_io; "
            "atomic_io.write_text(sys.argv[1], 'epoch\\n0\\n1\\n', 'history', 2)")
    env = dict(os.environ, ADDER_TF_FAULT="history:2:sigkill-torn", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, timeout=60)
    assert out.returncode == -signal.SIGKILL
    assert path.read_text() == "epoch\n0\n"


READER = """
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
missing = 0
while not os.path.exists(stop):
    missing += not os.path.exists(os.path.join(path, "saved_model.pb"))
print(missing)
"""


def test_a_reader_always_finds_the_folder_while_it_is_replaced(tmp_path):
    target, stop = tmp_path / "export" / "student", tmp_path / "stop"
    def write(version):
        with atomic_io.atomic_dir(str(target), "export", version) as tmp:
            os.makedirs(tmp)
            open(os.path.join(tmp, "saved_model.pb"), "w").write(str(version))
    write(0)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(target), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    for version in range(1, 400):
        write(version)
    stop.write_text("")
    assert reader.communicate(timeout=60)[0].strip() == "0"   # no moment without the folder
    assert (target / "saved_model.pb").read_text() == "399"
    assert os.listdir(tmp_path / "export") == ["student"]
