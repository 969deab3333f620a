"""The report (train/report.py, adder_tf/report) and the paper's flagfiles."""
import dataclasses
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from adder_tf.errors import UserError
from adder_tf.report import collect, paper, plots, tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_DIR = os.path.join(ROOT, "flags")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


# ------------------------------------------------------------------ helpers

def _history(epochs, final):
    return [{"epoch": float(e), "loss": 2.0 / (e + 1), "top1": final * (e + 1) / epochs + 0.01,
             "top5": 0.9, "val_top1": final * (e + 1) / epochs, "val_top5": 0.95}
            for e in range(epochs)]


def write_run(folder, method="pkkd", arch="resnet20", dataset="cifar10", seed=0, top1=0.9,
              top5=0.99, teacher_top1=0.93, epochs=400, **config):
    """A results.json with the keys train/main.py writes."""
    cfg = {"model_dir": str(folder), "arch": arch, "method": method, "teacher": "progressive",
           "teacher_path": "", "feature_loss": "kernel_conv1x1", "alpha": 1.0, "beta": 1.0,
           "temperature": 1.0, "dataset": dataset, "data_dir": "", "data_path": "",
           "epochs": epochs, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "momentum": 0.9,
           "eta": 0.2, "seed": seed, "strategy": "auto", "sync_bn": False, "augment": True,
           "steps_per_epoch": 0, "verbose": 2}
    cfg.update(config)
    results = {"method": method, "arch": arch, "dataset": dataset, "epochs_completed": epochs,
               "resumed_from_epoch": 0, "replicas": 1, "seed": seed,
               "student": {"top1": top1, "top5": top5}, "config": cfg,
               "history": _history(min(epochs, 5), top1)}
    if method in ("kd", "mmd", "pkkd"):
        results["teacher"] = {"top1": teacher_top1, "top5": 1.0, "mode": cfg["teacher"]}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(results, f)
    return results


def groups_under(root):
    return collect.group_runs(collect.load_runs(str(root), warn=lambda m: None))


# ------------------------------------------------------------------ grouping

def test_seeds_group_with_mean_and_sample_std(tmp_path):
    for seed, acc in enumerate([0.90, 0.92, 0.97]):
        write_run(tmp_path / "pkkd" / f"seed{seed}", seed=seed, top1=acc,
                  data_dir=f"/data/{seed}", strategy="mirrored" if seed else "auto")
    write_run(tmp_path / "pkkd_ab5" / "seed0", alpha=5.0, beta=5.0, top1=0.5)  # another recipe
    write_run(tmp_path / "cnn", method="cnn", top1=0.8, alpha=7.0)  # alpha means nothing here
    write_run(tmp_path / "cnn2", method="cnn", top1=0.6, seed=1)
    groups = groups_under(tmp_path)
    assert sorted((g["method"], g["alpha"], g.n) for g in groups) == [
        ("cnn", None, 2), ("pkkd", 1.0, 3), ("pkkd", 5.0, 1)]
    g = next(g for g in groups if g["method"] == "pkkd" and g["alpha"] == 1.0)
    s = g.stat("student", "top1")
    assert s.n == 3 and g.seeds == [0, 1, 2]
    assert s.mean == pytest.approx(0.93)
    assert s.std == pytest.approx(((0.03 ** 2 + 0.01 ** 2 + 0.04 ** 2) / 2) ** 0.5)
    assert tables.fmt_stat(s) == "93.00 ± 3.61 [3]"
    one = next(g for g in groups if g["alpha"] == 5.0).stat()
    assert (one.std, tables.fmt_stat(one)) == (0.0, "50.00 [1]")
    assert g.repeated_seeds == []
    write_run(tmp_path / "copy", seed=2, top1=0.97)
    g = next(g for g in groups_under(tmp_path) if g["method"] == "pkkd" and g["alpha"] == 1.0)
    assert (g.n, g.repeated_seeds) == (4, [2])


def test_unreadable_results_are_skipped_and_empty_folder_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no results.json under"):
        collect.load_runs(str(tmp_path))
    with pytest.raises(UserError, match="no such folder"):
        collect.load_runs(str(tmp_path / "nope"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    write_run(tmp_path / "good")
    warnings = []
    runs = collect.load_runs(str(tmp_path), warn=warnings.append)
    assert len(runs) == 1 and "bad" in warnings[0]


# ------------------------------------------------------------------ tables

def test_table2_cell_shows_ours_beside_the_paper(tmp_path):
    for seed, acc in enumerate([0.9301, 0.9291]):
        write_run(tmp_path / f"p{seed}", seed=seed, top1=acc, alpha=10.0, beta=10.0)
    write_run(tmp_path / "c100", dataset="cifar100", method="ann", top1=0.6712)
    groups = groups_under(tmp_path)
    t2 = tables.table2(groups, "cifar10")
    row = next(line for line in t2.splitlines() if line.startswith("| resnet20"))
    assert "92.96 ± 0.07 [2] (92.96)" in row       # PKKD ANN: ours (paper)
    assert "— (92.93)" in row and "†" not in row    # CNN: no run, paper's number kept
    assert "vgg_small" not in t2                    # rows without runs are left out
    t2b = tables.table2(groups, "cifar100")
    assert "67.12 [1] (67.60)" in t2b
    assert tables.table4(groups) is None and tables.table1(groups) is not None


def test_table1_cell_and_departure_notes(tmp_path):
    write_run(tmp_path / "raw_fixed", feature_loss="raw", teacher="fixed",
              teacher_path="runs/resnet20_c10_cnn", alpha=10.0, beta=10.0, top1=0.9221)
    write_run(tmp_path / "short", feature_loss="conv1x1", epochs=3, alpha=1.0, beta=1.0, top1=0.5)
    t1 = tables.table1(groups_under(tmp_path))
    raw = next(line for line in t1.splitlines() if "KD loss on raw features" in line)
    assert raw.split("|")[2].strip() == "92.21 [1] (92.21)"
    assert raw.split("|")[3].strip() == "— (92.58)"
    conv = next(line for line in t1.splitlines() if line.startswith("| 1x1 conv"))
    assert "50.00 [1] (92.67) †1" in conv
    assert "†1 resnet20 / cifar10 / pkkd: 3 epochs (paper: 400); alpha=1 (paper setting: 10)" in t1


def test_table3_and_table4_and_summary(tmp_path):
    for w, acc in ((0.1, 0.9), (10.0, 0.93)):
        write_run(tmp_path / f"ab{w}", alpha=w, beta=w, top1=acc)
    write_run(tmp_path / "in", dataset="imagenet2012", arch="resnet18", method="cnn",
              top1=0.7, top5=0.89, epochs=150)
    write_run(tmp_path / "digits", dataset="digits", arch="resnet8", method="kd", epochs=8,
              top1=0.85, teacher_top1=0.95, alpha=2.0, beta=0.0)
    groups = groups_under(tmp_path)
    t3 = tables.table3(groups)
    assert "| 0.1 | 90.00 [1] (92.49) | — (68.51) |" in t3
    assert "| 10 | 93.00 [1] (92.96) | — (69.62) |" in t3
    t4 = tables.table4(groups)
    assert "70.00 / 89.00 [1] (69.8 / 89.1)" in t4
    report = tables.render(groups, root=str(tmp_path))
    row = next(line for line in report.splitlines() if "| digits |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:14] == ["digits", "resnet8", "kd", "—", "progressive", "2", "0", "8", "1",
                           "85.00", "99.00", "95.00", "—"]


def test_flagfile_settings_fill_their_cells_without_notes(tmp_path):
    """A run made from a flagfile lands in its paper cell as the paper's setting."""
    for name, table in (("resnet20_c10_pkkd", lambda g: tables.table2(g, "cifar10")),
                        ("resnet32_c100_pkkd", lambda g: tables.table2(g, "cifar100")),
                        ("vgg_small_c10_mmd", lambda g: tables.table2(g, "cifar10")),
                        ("resnet50_in1k_pkkd", tables.table4),
                        ("resnet20_c10_t1_kernel_fixed", tables.table1),
                        ("resnet20_c100_t3_ab0.5", tables.table3)):
        cfg = _parse(os.path.join(FLAGS_DIR, name + ".cfg"))
        folder = tmp_path / name
        write_run(folder, top1=0.9, **dataclasses.asdict(cfg))
        text = table(groups_under(folder))
        assert re.search(r"90.00( / 99.00)? \[1\]", text) and "†" not in text, (name, text)


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


# ------------------------------------------------------------------ command line

def _report(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "train", "report.py"), *args],
                          capture_output=True, text=True, env=ENV, timeout=120)


def test_cli_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    for seed, acc in enumerate([0.9281, 0.9301]):
        write_run(runs / "resnet20_c10_pkkd" / f"seed{seed}", seed=seed, top1=acc, alpha=10.0, beta=10.0)
    write_run(runs / "resnet20_c10_cnn" / "seed0", method="cnn", top1=0.9301)
    write_run(runs / "demo" / "kd", dataset="digits", arch="resnet8", method="kd", epochs=5, top1=0.8)
    out = tmp_path / "report"
    p = _report(f"--runs={runs}", f"--out={out}", "--noweights")
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    assert last == f"report: 4 run(s) in 3 group(s) -> {out}/report.md and 2 figure(s)"
    md = (out / "report.md").read_text()
    assert md in p.stdout
    assert "| resnet20 | 93.01 [1] (92.93) | — (89.80)" not in md  # BNN column is CIFAR-10's
    assert "| resnet20 | 93.01 [1] (92.93) | — (84.87) | — (92.02) | — (92.30) | 92.91 ± 0.14 [2] (92.96) |" in md
    assert "| digits | resnet8 | kd |" in md
    assert sorted(os.listdir(out)) == ["accuracy_cifar10_resnet20.png", "accuracy_digits_resnet8.png",
                                       "report.md"]


def test_cli_errors_are_one_line(tmp_path):
    for args, message in (([f"--runs={tmp_path}"], f"error: no results.json under {tmp_path}"),
                          ([], "error: --runs is required"),
                          ([f"--runs={tmp_path}/missing"], "no such folder")):
        p = _report(*args)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], p.stderr


# ------------------------------------------------------------------ flagfiles

def _main_module():
    sys.path.insert(0, os.path.join(ROOT, "train"))
    try:
        import main  # noqa: F401  (train/main.py: defines the flags)
    finally:
        sys.path.pop(0)
    return main


def _parse(path):
    from absl import flags
    main = _main_module()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train/main.py", f"--flagfile={path}"])
    return main.config_from_flags()


EXPECTED = (
    [f"{a}_{d}_{m}" for a in paper.TABLE2_ARCHS for d in ("c10", "c100") for m in paper.METHODS]
    + [f"{a}_in1k_{m}" for a in paper.TABLE4_ARCHS for m in paper.METHODS]
    + [f"resnet20_c10_t1_{loss}_{mode}" for loss, _ in paper.TABLE1_ROWS for mode in ("progressive", "fixed")]
    + [f"resnet20_{d}_t3_ab{w:g}" for d in ("c10", "c100") for w in paper.TABLE3_WEIGHTS])
DATASET = {"c10": "cifar10", "c100": "cifar100", "in1k": "imagenet2012"}


def test_every_flagfile_parses_and_validates(tmp_path):
    files = sorted(glob.glob(os.path.join(FLAGS_DIR, "*.cfg")))
    names = {os.path.basename(f)[:-4] for f in files}
    assert set(EXPECTED) <= names, sorted(set(EXPECTED) - names)
    try:
        for path in files:
            name = os.path.basename(path)[:-4]
            config = _parse(path)
            if config.teacher == "fixed":  # the CNN run it names is trained first; check the rest
                assert re.fullmatch(r"runs/\w+_cnn", config.teacher_path), (name, config.teacher_path)
                dataclasses.replace(config, teacher_path=str(tmp_path)).validate()
            else:
                config.validate()
            if name not in EXPECTED:
                continue
            m = re.fullmatch(r"(vgg_small|resnet\d+)_(c10|c100|in1k)_(.+)", name)
            arch, ds, rest = m.groups()
            assert (config.arch, config.dataset) == (arch, DATASET[ds])
            assert config.model_dir == f"runs/{name}"
            with open(path) as f:
                first = f.readline()
            assert first.startswith("# ") and re.search(r"paper \d+\.\d+%", first), (name, first)
            recipe = (150, 1e-4) if ds == "in1k" else (400, 5e-4)
            assert (config.epochs, config.weight_decay, config.batch_size, config.lr,
                    config.momentum, config.eta) == (*recipe, 256, 0.1, 0.9, 0.2), name
            if rest in paper.METHODS:
                assert config.method == rest
                if rest == "pkkd":
                    w = paper.PKKD_WEIGHT[DATASET[ds]]
                    assert (config.alpha, config.beta, config.teacher) == (w, w, "progressive")
                if rest == "mmd":
                    assert (config.alpha, config.beta, config.teacher) == (0.0, 50.0, "fixed")
                    assert config.teacher_path == f"runs/{arch}_{ds}_cnn"
            elif rest.startswith("t1_"):
                loss, mode = rest[3:].rsplit("_", 1)
                assert (config.method, config.feature_loss, config.teacher) == ("pkkd", loss, mode)
                assert config.alpha == config.beta == 10.0
                if mode == "fixed":
                    assert config.teacher_path == "runs/resnet20_c10_cnn"
            else:
                w = float(rest[len("t3_ab"):])
                assert (config.method, config.alpha, config.beta) == ("pkkd", w, w)
    finally:
        from absl import flags
        flags.FLAGS.unparse_flags()


def test_feature_health_section_per_group(tmp_path):
    taps = ["stage1_block1_conv1", "stage1_block1_conv2"]
    for seed, dead in ((0, 0), (1, 1)):
        write_run(tmp_path / f"pkkd_{seed}", seed=seed)
        path = tmp_path / f"pkkd_{seed}" / "results.json"
        results = json.loads(path.read_text())
        results["feature_health"] = [
            {"tap": t, "student_std": 0.2 + seed * 0.2, "teacher_std": 0.5, "corr": 0.3,
             "sigma_student": 100.0, "sigma_teacher": 2.0, "student_std_start": 0.4,
             "teacher_std_start": 0.6} for t in taps]
        results["dead_taps"] = dead
        path.write_text(json.dumps(results))
    write_run(tmp_path / "ann", method="ann")
    section = tables.feature_health(groups_under(tmp_path))
    assert section.startswith("## Feature health")
    assert "Dead taps per seed: 0, 1" in section
    # means over seeds: spread now and at the start on each side, corr, both widths
    assert "| stage1_block1_conv1 | 0.3 | 0.4 | 0.5 | 0.6 | 0.3 | 100 | 2 |" in section
    assert section.count("### #") == 1    # the ANN has no heads


def test_single_run_is_named_and_reported_beside_it(tmp_path):
    run_dir = tmp_path / "my_run"
    write_run(run_dir, method="ann")
    out = _report(f"--runs={run_dir}", "--nocurves", "--noweights")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "`my_run`" in out.stdout and "`.`" not in out.stdout
    assert (tmp_path / "my_run_report" / "report.md").exists()
    assert not (run_dir / "report").exists()


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
