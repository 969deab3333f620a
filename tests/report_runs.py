"""What the report tests share: results.json files as train/main.py writes them, and
the report's command line."""
import json
import os
import subprocess
import sys

from adder_tf.report import collect


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


def report(*args):
    """train/report.py run with `args`: the finished process."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "train", "report.py"), *args],
                          capture_output=True, text=True, env=ENV, timeout=120)
