"""Table 1's fixed teacher: a CNN trained by an earlier run, loaded three ways."""
import json
import os

import pytest

from test_cli import QUICK, last_json, run


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("cnn"))
    out = run("main.py", *QUICK, "--method=cnn", f"--model_dir={model_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    return model_dir


@pytest.mark.parametrize("where, feature_loss", [
    ("{run}", "kernel_conv1x1"),
    ("{run}/student.keras", "raw"),
    ("{run}/export/student", "conv1x1"),
])
def test_pkkd_with_a_fixed_teacher_from_an_earlier_run(cnn_run, where, feature_loss, tmp_path):
    path = where.format(run=cnn_run)
    out = run("main.py", *QUICK, "--teacher=fixed", f"--teacher_path={path}",
              f"--feature_loss={feature_loss}", f"--model_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    results = last_json(out)
    with open(os.path.join(cnn_run, "results.json")) as f:
        teacher_results = json.load(f)
    # the fixed teacher is the earlier CNN, unchanged: same test accuracy
    assert results["teacher"]["mode"] == "fixed"
    assert abs(results["teacher"]["top1"] - teacher_results["student"]["top1"]) < 1e-6


def test_an_ann_is_refused_as_teacher(tmp_path):
    ann = tmp_path / "ann"
    assert run("main.py", *QUICK, "--method=ann", f"--model_dir={ann}").returncode == 0
    out = run("main.py", *QUICK, "--teacher=fixed", f"--teacher_path={ann}/student.keras",
              f"--model_dir={tmp_path}/pkkd")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "adder layers" in out.stderr.strip().splitlines()[-1]
