"""The report's grouping of runs and its tables (adder_tf/report)."""
import json

import pytest

from adder_tf.errors import UserError
from adder_tf.report import collect, tables

from report_runs import groups_under, write_run


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
