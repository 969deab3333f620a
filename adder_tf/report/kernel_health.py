"""The Laplace kernels' health over a PKKD run, per tap, from the run folder's
feature_health_start.json and feature_health_epochs.jsonl (docs/pkkd.md)."""
import json
import os

from adder_tf.report import markdown_blocks


def _load_json(path):
    with open(path) as f:
        return json.load(f)


def _health_at(folder, run):
    """(start, middle, end) per-tap health rows of a PKKD run folder, or None."""
    base = os.path.join(folder, run)
    try:
        start = _load_json(os.path.join(base, "feature_health_start.json"))
        with open(os.path.join(base, "feature_health_epochs.jsonl")) as f:
            epochs = [json.loads(line) for line in f if line.strip()]
    except OSError:
        return None
    if not epochs:
        return None
    middle = epochs[(len(epochs) - 1) // 2]
    return start, middle, epochs[-1]


KERNEL_STATS = (("r2_student", "R² student"), ("r2_max_student", "R² student, highest channel"),
                ("r2_teacher", "R² teacher"),
                ("exponent_range_teacher", "exponent range teacher"),
                ("sigma_teacher", "width teacher"),
                ("exponent_range_student", "exponent range student"),
                ("sigma_student", "width student"))


def kernel_table(folder, run):
    """Per tap: each KERNEL_STATS at the start / middle / end of the run."""
    health = _health_at(folder, run)
    if health is None:
        return "—"
    start, middle, end = health
    times = (0, middle["epoch"], end["epoch"])
    rows = []
    for i, tap in enumerate(start):
        row = [tap["tap"]]
        for key, _ in KERNEL_STATS:
            values = [rows_[i].get(key, float("nan"))
                      for rows_ in (start, middle["taps"], end["taps"])]
            row.append(" / ".join(f"{v:.3g}" for v in values))
        rows.append(row)
    header = ["tap", *(f"{label} (epoch {times[0]} / {times[1]} / {times[2]})"
                       for _, label in KERNEL_STATS)]
    results = _load_json(os.path.join(folder, run, "results.json"))
    return (markdown_blocks.table(header, rows) + f"\n\nDead taps at the end (a side's spread below 1e-3 of "
            f"its start, either side): {results.get('dead_taps', '—')} of {len(start)}.")


