"""Methods not run elsewhere through the command line train, export and are scored.

(cnn, ann and pkkd run in test_cli / test_teacher_cli; kd and every feature
loss also run in-process in test_trainer.)
"""
import json
import os

import pytest

from test_cli import QUICK, last_json, run


@pytest.mark.parametrize("extra", [
    ["--method=bnn"],
    ["--method=mmd", "--alpha=0", "--beta=50"],
    ["--method=pkkd", "--feature_loss=raw"],
])
def test_method_trains_exports_and_evaluates(extra, tmp_path):
    out = run("main.py", *QUICK, *extra, f"--model_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(tmp_path, "results.json")) as f:
        results = json.load(f)
    assert results["method"] == extra[0].split("=")[1]
    scores = last_json(run("evaluate.py", f"--saved_model={tmp_path}/export/student",
                           "--dataset=digits"))
    assert abs(scores["top1"] - results["student"]["top1"]) < 1e-6
