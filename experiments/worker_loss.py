"""Two workers on loopback, one killed with SIGKILL in the middle of an epoch; both run again.

    python experiments/worker_loss.py [--seeds=0,1,2] [--kill=1,0] [--epochs=3] [--steps=12]
                                      [--out=experiments/results/worker_loss.json]

For each seed the quickstart (digits) runs with --strategy=multi_worker:
once undisturbed; then, for each worker index in --kill (0 is the chief),
with that worker killed (kill -9) a few steps into epoch 2, timing how long
the other one takes to exit and keeping its last line; then the same two
commands again, which resume. A resumed run sees the same data order as an
undisturbed one from the resumed epoch on (docs/data.md), so it should end
where the undisturbed run of its seed ends, within the spread between the
undisturbed runs of different seeds (the noise). Prints one JSON line per
run, and writes all of them with a summary and the git commit it ran on to --out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from adder_tf.strategy import loopback_tf_configs  # noqa: E402
from experiments.fault_matrix import commit  # noqa: E402


def start(model_dir, epochs, steps, seed, extra=()):
    procs = []
    for tf_config in loopback_tf_configs(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=tf_config)
        procs.append(subprocess.Popen(
            [sys.executable, "train/main.py", "--flagfile=flags/quickstart.cfg", "--batch_size=32",
             f"--steps_per_epoch={steps}", f"--epochs={epochs}", "--strategy=multi_worker",
             "--verbose=2", f"--seed={seed}", f"--model_dir={model_dir}", *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs):
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    return json.loads(outs[0][0].strip().splitlines()[-1])


def kill_mid_epoch(run, procs, victim):
    """Kills worker `victim` a few steps into epoch 2; the survivor's exit, line and seconds."""
    kept = [os.path.join(run, *([] if i == 0 else [f"workertemp_{i}"]), "backup",
                         "training_metadata.json") for i in range(2)]
    while not all(map(os.path.exists, kept)) and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    time.sleep(2.0)   # epoch 1's checkpoint is written by both workers: a few steps into epoch 2
    procs[victim].kill()
    killed_at = time.time()
    survivor = procs[1 - victim]
    _, err = survivor.communicate(timeout=900)
    procs[victim].wait()
    return {"survivor_exit": survivor.returncode,
            "survivor_seconds": round(time.time() - killed_at, 1),
            "survivor_line": (err.strip().splitlines() or [""])[-1]}


def summary(rows):
    clean = [r["undisturbed_top1"] for r in rows if r["kind"] == "undisturbed"]
    resumed = [r for r in rows if r["kind"] == "killed"]
    by_seed = {r["seed"]: r["undisturbed_top1"] for r in rows if r["kind"] == "undisturbed"}
    gaps = [abs(r["resumed_top1"] - by_seed[r["seed"]]) for r in resumed if "resumed_top1" in r]
    return {"undisturbed_mean": statistics.mean(clean),
            "undisturbed_std_between_seeds": statistics.stdev(clean) if len(clean) > 1 else None,
            "undisturbed_range_between_seeds": max(clean) - min(clean),
            "largest_resumed_gap": max(gaps, default=None),
            "survivor_seconds_max": max((r["survivor_seconds"] for r in resumed), default=None)}


def table(report):
    """The rows as a Markdown table, and the noise line."""
    clean = {r["seed"]: r["undisturbed_top1"] for r in report["rows"] if r["kind"] == "undisturbed"}
    lines = [f"commit {report['commit']}", "",
             "| seed | killed worker | survivor exit | survivor's seconds | survivor's last line | "
             "resumed from epoch | resumed top-1 | undisturbed top-1 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["rows"]:
        if r["kind"] == "killed":
            lines.append(f"| {r['seed']} | {r['killed_worker']}{' (chief)' * (r['killed_worker'] == 0)}"
                         f" | {r['survivor_exit']} | {r['survivor_seconds']} | `{r['survivor_line']}` | "
                         f"{r['resumed_from']} | {100 * r['resumed_top1']:.2f} | "
                         f"{100 * clean[r['seed']]:.2f} |")
    s = report["summary"]
    std = s["undisturbed_std_between_seeds"]
    lines.append(f"\nNoise: undisturbed top-1 over seeds {', '.join(map(str, clean))}: mean "
                 f"{100 * s['undisturbed_mean']:.2f}, standard deviation "
                 f"{'-' if std is None else f'{100 * std:.2f}'}, range "
                 f"{100 * s['undisturbed_range_between_seeds']:.2f} points; largest "
                 f"|resumed - undisturbed| of a seed: {100 * s['largest_resumed_gap']:.2f} points.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", default="1,0", help="worker indices to kill, one run each (0: chief)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--worker_timeout", type=float, default=0,
                        help="passed on as --worker_timeout (0: the trainer's default)")
    parser.add_argument("--out", default="", help="write every row and the summary here (JSON)")
    a = parser.parse_args()
    extra = [f"--worker_timeout={a.worker_timeout}"] if a.worker_timeout else []
    rows = []

    def record(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    with tempfile.TemporaryDirectory() as folder:
        for seed in map(int, a.seeds.split(",")):
            clean = finish(start(os.path.join(folder, f"clean{seed}"), a.epochs, a.steps, seed, extra))
            record({"kind": "undisturbed", "seed": seed, "undisturbed_top1": clean["student"]["top1"]})
            for victim in map(int, a.kill.split(",")):
                run = os.path.join(folder, f"seed{seed}_kill{victim}")
                row = {"kind": "killed", "seed": seed, "killed_worker": victim}
                row.update(kill_mid_epoch(run, start(run, a.epochs, a.steps, seed, extra), victim))
                resumed = finish(start(run, a.epochs, a.steps, seed, extra))
                row.update(resumed_from=resumed["resumed_from_epoch"],
                           epochs_completed=resumed["epochs_completed"],
                           resumed_top1=resumed["student"]["top1"])
                record(row)
    report = {"commit": commit(), "config": {"epochs": a.epochs, "steps_per_epoch": a.steps, "batch_size": 32,
                         "worker_timeout": a.worker_timeout or "default"},
              "rows": rows, "summary": summary(rows)}
    print(json.dumps(report["summary"]))
    print(table(report))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
