"""The report's figures: accuracy curves, weight histograms and their fits."""
import json
import os

import numpy as np
import pytest

from adder_tf.report import plots

from report_runs import groups_under, write_run


# ------------------------------------------------------------------ figures

def test_accuracy_curves_from_histories(tmp_path):
    runs = tmp_path / "runs"
    for method, acc in (("cnn", 0.9), ("ann", 0.8), ("pkkd", 0.85)):
        for seed in (0, 1):
            write_run(runs / method / str(seed), method=method, dataset="digits", arch="resnet8",
                      seed=seed, top1=acc + seed / 100, epochs=5)
    out = tmp_path / "out"
    out.mkdir()
    written = plots.accuracy_curves(groups_under(runs), str(out))
    assert [os.path.basename(p) for p, _ in written] == ["accuracy_digits_resnet8.png"]
    with open(written[0][0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(written[0][0]) > 10_000
    curve = plots.mean_curve(groups_under(runs)[0].runs, "val_top1")
    assert curve[-1] == pytest.approx(0.905)


def test_fits_tell_gaussian_from_laplace():
    import numpy as np
    rng = np.random.default_rng(0)
    g, lap = plots.describe(rng.normal(0, 2, 20000)), plots.describe(rng.laplace(1, 0.5, 20000))
    assert g["better"] == "Gaussian" and lap["better"] == "Laplace"
    assert g["gaussian"]["sigma"] == pytest.approx(2, rel=0.03)
    assert lap["laplace"]["m"] == pytest.approx(1, abs=0.02)
    assert lap["laplace"]["b"] == pytest.approx(0.5, rel=0.03)
    assert abs(g["kurtosis"]) < 0.2 and abs(lap["kurtosis"] - 3) < 0.6


def test_weight_histograms_from_keras_models(tmp_path):
    from adder_tf.models import build_model
    runs = tmp_path / "runs"
    for method, flavour in (("cnn", "conv"), ("ann", "adder")):
        folder = runs / method
        write_run(folder, method=method, dataset="digits", arch="resnet8", epochs=2)
        build_model("resnet8", flavour, (8, 8, 1), 10).save(str(folder / "student.keras"))
    out = tmp_path / "out"
    out.mkdir()
    written, section = plots.weight_histograms(groups_under(runs), str(out), root=str(runs))
    assert [os.path.basename(p) for p in written] == ["weights_digits_resnet8_cnn_vs_ann.png"]
    assert os.path.getsize(written[0]) > 10_000
    assert "| weights_digits_resnet8_cnn_vs_ann.png | ANN | 8 layers, each standardized |" in section
    assert "Laplace mean log-lik" in section


def test_curves_show_teachers_and_figures_have_axis_labels(tmp_path):
    import matplotlib.pyplot as plt
    write_run(tmp_path / "pkkd", method="pkkd")
    results = json.loads((tmp_path / "pkkd" / "results.json").read_text())
    for row in results["history"]:
        row["teacher_top1"], row["val_teacher_top1"] = 0.8, 0.7
    (tmp_path / "pkkd" / "results.json").write_text(json.dumps(results))
    drawn = []
    real_plot = plt.Axes.plot
    plt.Axes.plot = lambda self, *a, **k: drawn.append(k.get("label")) or real_plot(self, *a, **k)
    try:
        plots.accuracy_curves(groups_under(tmp_path), str(tmp_path))
    finally:
        plt.Axes.plot = real_plot
    assert any(label and "teacher test" in label for label in drawn)
    fig, ax = plt.subplots()
    x = np.random.default_rng(0).normal(size=500)
    plots._panel(ax, x, "CNN conv weights: layer a", plots.describe(x))
    assert ax.get_xlabel() == "weight value" and ax.get_ylabel() == "density"
    plt.close(fig)
