"""Two workers on loopback, one killed with SIGKILL in the middle of an epoch; both run again.

    python experiments/worker_loss.py [--kill=1] [--epochs=3] [--steps=12] [--seeds=0]

Runs the quickstart (digits) with --strategy=multi_worker three times:
undisturbed; with worker `--kill` killed (kill -9) a few steps into epoch 2,
timing how long the other one takes to exit and keeping its last line;
then the same two commands again, which resume. Prints one JSON object:
the survivor's exit status, line and seconds, the epoch the rerun resumed
from, and the final student top-1 beside the undisturbed run's.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    found = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return found


def start(model_dir, epochs, steps, seed=0):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports(2)]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "train/main.py", "--flagfile=flags/quickstart.cfg", "--batch_size=32",
             f"--steps_per_epoch={steps}", f"--epochs={epochs}", "--strategy=multi_worker",
             "--verbose=2", f"--seed={seed}", f"--model_dir={model_dir}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs):
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    return json.loads(outs[0][0].strip().splitlines()[-1])


def history_rows(model_dir):
    try:
        with open(os.path.join(model_dir, "history.csv")) as f:
            return max(len([line for line in f if line.strip()]) - 1, 0)
    except OSError:
        return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", type=int, default=1, help="worker index to kill (0: the chief)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds of the undisturbed run")
    a = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as folder:
        seeds = [int(s) for s in a.seeds.split(",")]
        report["undisturbed_top1"] = {
            seed: finish(start(os.path.join(folder, f"clean{seed}"), a.epochs, a.steps, seed))
            ["student"]["top1"] for seed in seeds}
        run = os.path.join(folder, "run")
        procs = start(run, a.epochs, a.steps, seeds[0])
        # Epoch 1's checkpoint written by both workers, then a few steps into epoch 2.
        kept = [os.path.join(run, *([] if i == 0 else [f"workertemp_{i}"]), "backup",
                             "training_metadata.json") for i in range(2)]
        while not all(map(os.path.exists, kept)) and all(p.poll() is None for p in procs):
            time.sleep(0.2)
        time.sleep(2.0)
        procs[a.kill].kill()
        killed_at = time.time()
        survivor = procs[1 - a.kill]
        _, err = survivor.communicate(timeout=900)
        procs[a.kill].wait()
        report.update(killed_worker=a.kill, survivor_exit=survivor.returncode,
                      survivor_seconds=round(time.time() - killed_at, 1),
                      survivor_line=(err.strip().splitlines() or [""])[-1],
                      epochs_logged_at_kill=history_rows(run))
        print(json.dumps(report), flush=True)
        resumed = finish(start(run, a.epochs, a.steps, seeds[0]))
        report.update(resumed_from=resumed["resumed_from_epoch"],
                      epochs_completed=resumed["epochs_completed"],
                      resumed_top1=resumed["student"]["top1"])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
