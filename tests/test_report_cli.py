"""The report's command line (train/report.py), end to end."""
import os

from report_runs import report, write_run


# ------------------------------------------------------------------ command line
def test_cli_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    for seed, acc in enumerate([0.9281, 0.9301]):
        write_run(runs / "resnet20_c10_pkkd" / f"seed{seed}", seed=seed, top1=acc, alpha=10.0, beta=10.0)
    write_run(runs / "resnet20_c10_cnn" / "seed0", method="cnn", top1=0.9301)
    write_run(runs / "demo" / "kd", dataset="digits", arch="resnet8", method="kd", epochs=5, top1=0.8)
    out = tmp_path / "report"
    p = report(f"--runs={runs}", f"--out={out}", "--noweights")
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
        p = report(*args)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], p.stderr


def test_single_run_is_named_and_reported_beside_it(tmp_path):
    run_dir = tmp_path / "my_run"
    write_run(run_dir, method="ann")
    out = report(f"--runs={run_dir}", "--nocurves", "--noweights")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "`my_run`" in out.stdout and "`.`" not in out.stdout
    assert (tmp_path / "my_run_report" / "report.md").exists()
    assert not (run_dir / "report").exists()
