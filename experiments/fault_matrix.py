"""Stops a tiny run inside each write, with SIGINT and SIGKILL, at each of 3 epochs; reruns it.

    python experiments/fault_matrix.py [--points=backup,history] [--signals=sigint] [--out=FILE]

For each (signal, write point, epoch k) the quickstart on digits (3 steps
per epoch) runs with ADDER_TF_FAULT=<point>:<k>:<signal> (`adder_tf.atomic_io`;
SIGKILL as `sigkill-torn`: the temporary file cut in half first, as a kill
inside an HDF5 write leaves it). backup, metadata, history and health are written
at every epoch's end: those runs ask for 3 epochs. results and export are
written once, when the run ends: those runs ask for k epochs. Then the same
command runs again with no fault; the row says whether the first run ended
as it should (SIGINT: exit 130 and the one line saying what was kept and the
command that resumes; SIGKILL: -9; never a traceback), and whether the rerun
resumed from exactly the epoch expected (`expected_resume`) and finished
(exit 0, every epoch done). Prints the git commit it ran on and a Markdown
table; about a minute per row on two CPU cores. Exits 1, naming the failed
rows, when any row is not as expected.
"""
import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from adder_tf.atomic_io import WRITE_POINTS as POINTS  # noqa: E402
ONCE = ("results", "export")
EXPECTED_EXIT = {"sigint": 130, "sigkill": -signal.SIGKILL}
FLAGS = ["--flagfile=flags/quickstart.cfg", "--steps_per_epoch=3", "--verbose=2", "--batch_size=32"]


def run(args, fault=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("ADDER_TF_FAULT", None)
    if fault:
        env["ADDER_TF_FAULT"] = fault
    # SIGINT as a terminal gives it (a script run in the background starts with it ignored)
    return subprocess.run([sys.executable, "train/main.py", *FLAGS, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def scenario(kind, point, epoch, folder):
    epochs = epoch if point in ONCE else 3
    args = [f"--epochs={epochs}", f"--model_dir={folder}"]
    action = "sigkill-torn" if kind == "sigkill" else kind
    start = time.time()
    first = run(args, f"{point}:{epoch}:{action}")
    again = run(args)
    row = {"signal": kind, "point": point, "epoch": epoch, "first_exit": first.returncode,
           "first_line": (first.stderr.strip().splitlines() or [""])[-1][:200],
           "first_ok": first_run_ok(kind, first),
           "rerun_exit": again.returncode, "seconds": round(time.time() - start)}
    if again.returncode == 0:
        summary = json.loads(again.stdout.strip().splitlines()[-1])
        row["resumed_from"] = summary["resumed_from_epoch"]
        row["finished"] = summary["epochs_completed"] == epochs
    else:
        row["rerun_line"] = (again.stderr.strip().splitlines() or [""])[-1][:200]
    row["expected"] = expected_resume(kind, point, epoch)
    row["resumed"] = row.get("resumed_from") == row["expected"]
    return row


def expected_resume(kind, point, epoch):
    """The epoch a rerun resumes from after the fault in epoch k's write `point`.

    A SIGINT only sets a flag: the write and the epoch's checkpoint finish, epoch k is kept.
    An epoch's end writes the history row, the health line, the weights (the epoch counter
    inside), then the counter's JSON copy (`metadata`): a SIGKILL inside the first three
    replays epoch k (from k-1), one inside metadata keeps k. results and export come after
    the last checkpoint: k."""
    if kind == "sigint" or point in ONCE or point == "metadata":
        return epoch
    return epoch - 1


def commit():
    """The commit the experiment runs on (with '+changes' when the work tree differs)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head + ("+changes" if dirty else "")


def first_run_ok(kind, first):
    """SIGINT: exit 130 and one line saying what was kept and how to resume; SIGKILL: -9.
    Neither prints a traceback."""
    if first.returncode != EXPECTED_EXIT[kind] or "Traceback" in first.stderr:
        return False
    if kind == "sigkill":
        return True
    last = (first.stderr.strip().splitlines() or [""])[-1]
    return bool(re.fullmatch(r"interrupted (at epoch \d+, step \d+|after epoch \d+); (kept the "
                             r"checkpoint of epoch \d+(, step \d+)? in .*|no epoch was completed, "
                             r"nothing kept); resume with: .*train/main\.py .*", last))


def one(case, out):
    with tempfile.TemporaryDirectory() as folder:
        row = scenario(*case, os.path.join(folder, "run"))
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default=",".join(POINTS))
    parser.add_argument("--signals", default="sigint,sigkill")
    parser.add_argument("--epochs", default="1,2,3")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run at once")
    parser.add_argument("--out", default="", help="also append each row (JSON) to this file")
    a = parser.parse_args()
    print(f"commit {commit()}", flush=True)
    cases = [(s, p, int(e)) for s in a.signals.split(",") for p in a.points.split(",")
             for e in a.epochs.split(",")]
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda case: one(case, a.out), cases))
    print(f"\ncommit {commit()}\n\n| signal | write point | fault at epoch | 1st run exit | "
          "1st run exit and line as expected? | rerun resumed from | expected | resumed as "
          "expected? | finished? |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    yes = {True: "yes", False: "NO"}
    for r in rows:
        print(f"| {r['signal']} | {r['point']} | {r['epoch']} | {r['first_exit']} | "
              f"{yes[r['first_ok']]} | {r.get('resumed_from', 'failed')} | {r['expected']} | "
              f"{yes[r['resumed']]} | "
              f"{yes[bool(r.get('finished'))]} |")
    failed = [r for r in rows if not (r["first_ok"] and r["resumed"] and r.get("finished"))]
    if failed:
        sys.exit(f"{len(failed)} of {len(rows)} rows not as expected: " + ", ".join(
            f"{r['signal']} {r['point']} epoch {r['epoch']}" for r in failed))


if __name__ == "__main__":
    main()
