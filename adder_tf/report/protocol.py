"""The tables of one PKKD protocol folder (experiments/pkkd_protocol.sh), from its results.json files.

The folder holds select/<method>_w<weight>/, main/<method>_seed<s>/,
table1/<loss>_<teacher>_seed<s>/ and table3/pkkd_w<weight>_seed<s>/, each with
results.json (and for PKKD runs feature_health_start.json and
feature_health_epochs.jsonl). Accuracies are test top-1 in percent of the
last epoch (validation top-1 for select/).

Paired seeds: two methods trained with the same seed share their data order
and initialisation, so their difference is read seed by seed. The table's
resolution is twice the pooled sample standard deviation of those paired
differences (pooled over the table's comparisons that have two or more
seeds); a comparison is resolved when its mean difference exceeds the
resolution and every seed's difference has the same sign.
"""
import json
import math
import os
import re

from adder_tf.errors import UserError

MAIN = (("cnn", "CNN"), ("ann", "ANN"), ("kd", "KD"), ("nst", "NST"), ("pkkd", "PKKD"),
        ("pkkd_meanwidth", "PKKD, earlier (mean-distance) Laplace width"))
MAIN_PAIRS = (("pkkd", "ann"), ("pkkd", "kd"), ("pkkd", "nst"), ("kd", "ann"), ("nst", "ann"),
              ("pkkd", "pkkd_meanwidth"), ("cnn", "ann"))
LOSSES = ("raw", "conv1x1", "kernel", "kernel_conv1x1")
TEACHERS = ("fixed", "progressive")
# The paper's Table 1 ordering, step by step: (better, worse) cells (loss, teacher).
TABLE1_STEPS = ((("conv1x1", "fixed"), ("raw", "fixed")),
                (("kernel", "fixed"), ("raw", "fixed")),
                (("kernel_conv1x1", "fixed"), ("kernel", "fixed")),
                (("kernel_conv1x1", "fixed"), ("conv1x1", "fixed")),
                *(((loss, "progressive"), (loss, "fixed")) for loss in LOSSES))
_SEED = re.compile(r"^(?P<name>.+)_seed(?P<seed>\d+)$")


def _read(path):
    with open(path) as f:
        return json.load(f)


def load(folder):
    """{phase: {run name: results}} of every results.json directly under folder/<phase>/."""
    if not os.path.isdir(folder):
        raise UserError(f"--runs {folder}: no such folder")
    out = {}
    for phase in sorted(os.listdir(folder)):
        base = os.path.join(folder, phase)
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name, "results.json")
            if os.path.exists(path):
                out.setdefault(phase, {})[name] = _read(path)
    return out


def by_seed(runs):
    """{name: {seed: top-1 %}} from run names ending in _seed<s>."""
    out = {}
    for run, results in runs.items():
        m = _SEED.match(run)
        if m:
            out.setdefault(m["name"], {})[int(m["seed"])] = 100.0 * results["student"]["top1"]
    return out


def _mean_std(values):
    values = list(values)
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt(values):
    mean, std = _mean_std(values)
    if mean is None:
        return "—"
    return f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}") + f" [{len(values)}]"


def paired(scores, pairs):
    """(rows, resolution): per pair the seed-by-seed differences, and the table's resolution."""
    rows, pooled, dof = [], 0.0, 0
    for a, b in pairs:
        common = sorted(set(scores.get(a, {})) & set(scores.get(b, {})))
        diffs = [scores[a][s] - scores[b][s] for s in common]
        rows.append((a, b, diffs))
        if len(diffs) >= 2:
            _, std = _mean_std(diffs)
            pooled += (len(diffs) - 1) * std ** 2
            dof += len(diffs) - 1
    resolution = 2.0 * math.sqrt(pooled / dof) if dof else None
    return rows, resolution


def _verdict(diffs, resolution):
    if len(diffs) < 2 or resolution is None:
        return "one seed: not resolved"
    mean = sum(diffs) / len(diffs)
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    return "resolved" if abs(mean) > resolution and same_sign else "not resolved"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _comparisons(rows, resolution, label):
    body = [(f"{label(a)} − {label(b)}", " ".join(f"{d:+.2f}" for d in diffs) or "—",
             f"{sum(diffs) / len(diffs):+.2f}" if diffs else "—", _verdict(diffs, resolution))
            for a, b, diffs in rows]
    res = "—" if resolution is None else f"{resolution:.2f}"
    return (_table(("comparison", "paired differences (by seed)", "mean", "verdict"), body)
            + f"\n\nResolution (2 x pooled sd of paired differences): {res} points.")


def _weight(results):
    config = results.get("config", {})
    method = config.get("method")
    if method == "kd":
        return f"alpha {config['alpha']:g}"
    if method == "mmd":
        return f"beta {config['beta']:g}"
    if method == "pkkd":
        return f"alpha = beta {config['alpha']:g}"
    return ""


def selection_table(runs):
    """Validation top-1 of each method at each weight, and the weight it chose."""
    scores = {}
    for name, results in runs.items():
        method, weight = name.rsplit("_w", 1)
        if not results.get("scored_on", "").startswith("validation"):
            raise UserError(f"select/{name} was scored on {results.get('scored_on')!r}, "
                            "not on held-out training images")
        scores.setdefault(method, {})[float(weight)] = 100.0 * results["student"]["top1"]
    weights = sorted({w for s in scores.values() for w in s})
    rows = []
    for method in sorted(scores):
        cells = [f"{scores[method][w]:.2f}" if w in scores[method] else "—" for w in weights]
        chosen = max(scores[method], key=scores[method].get)
        rows.append([method.upper(), *cells, f"{chosen:g}"])
    return _table(["method", *(f"w = {w:g}" for w in weights), "chosen"], rows)


def main_table(runs):
    scores = by_seed(runs)
    seeds = sorted({s for v in scores.values() for s in v})
    label = dict(MAIN)
    rows = []
    for key, name in MAIN:
        if key in scores:
            weight = next((_weight(r) for n, r in runs.items() if n.startswith(key + "_seed")), "")
            rows.append([name, weight, *(f"{scores[key][s]:.2f}" if s in scores[key] else "—"
                                         for s in seeds), fmt(scores[key].values())])
    table = _table(["method", "weight", *(f"seed {s}" for s in seeds), "mean ± sd [n]"], rows)
    pair_rows, resolution = paired(scores, [p for p in MAIN_PAIRS if p[0] in scores
                                            and p[1] in scores])
    return table, _comparisons(pair_rows, resolution, lambda k: label[k].split(",")[0]
                               + (" (mean width)" if k == "pkkd_meanwidth" else ""))


def table1_scores(main, table1):
    """{(loss, teacher): {seed: top-1}}; kernel_conv1x1 progressive is the main PKKD run."""
    scores = {}
    for name, seeds in by_seed(table1).items():
        loss, teacher = name.rsplit("_", 1)
        scores[(loss, teacher)] = seeds
    if "pkkd" in by_seed(main):
        scores[("kernel_conv1x1", "progressive")] = by_seed(main)["pkkd"]
    return scores


def table1(main, table1_runs):
    scores = table1_scores(main, table1_runs)
    rows = [[loss, *(fmt(scores.get((loss, t), {}).values()) for t in TEACHERS)]
            for loss in LOSSES]
    table = _table(["feature loss", *(f"{t} teacher" for t in TEACHERS)], rows)
    named = {f"{loss} {t}": v for (loss, t), v in scores.items()}
    steps = [(f"{a[0]} {a[1]}", f"{b[0]} {b[1]}") for a, b in TABLE1_STEPS]
    pair_rows, resolution = paired(named, [p for p in steps if p[0] in named and p[1] in named])
    return table, _comparisons(pair_rows, resolution, str)


def table3(main, table3_runs):
    scores = {}
    for name, seeds in by_seed(table3_runs).items():
        scores[float(name.split("_w", 1)[1])] = seeds
    for name, results in main.items():
        if name.startswith("pkkd_seed"):
            seed = int(name[len("pkkd_seed"):])
            scores.setdefault(float(results["config"]["alpha"]), {})[seed] = \
                100.0 * results["student"]["top1"]
    rows = [[f"{w:g}", fmt(scores[w].values())] for w in sorted(scores)]
    return _table(["alpha = beta", "test top-1, mean ± sd [n]"], rows)


def cost_table(phases):
    """Minutes one run of the protocol costs, per method.

    A resumed run's results.json times only the epochs it trained after the
    resume, so a run's cost is its seconds per epoch trained this session
    times its epochs.
    """
    labels = {"mmd": "NST", "cnn": "CNN", "ann": "ANN", "kd": "KD", "pkkd": "PKKD"}
    seconds = {}
    for phase in ("main", "table1", "table3"):
        for results in phases.get(phase, {}).values():
            epochs = results.get("epochs_completed") or 0
            trained = epochs - (results.get("resumed_from_epoch") or 0)
            if trained <= 0:
                continue
            key = f"{labels.get(results['method'], results['method'])} ({epochs} epochs)"
            per_epoch = results.get("train_seconds_this_session", 0.0) / trained
            seconds.setdefault(key, []).append(per_epoch * epochs)
    rows = [[k, f"{sum(v) / len(v) / 60:.1f}", len(v)] for k, v in sorted(seconds.items())]
    return _table(["method", "minutes per run (mean)", "runs"], rows)


def _health_at(folder, run):
    """(start, middle, end) per-tap health rows of a PKKD run folder, or None."""
    base = os.path.join(folder, run)
    try:
        start = _read(os.path.join(base, "feature_health_start.json"))
        with open(os.path.join(base, "feature_health_epochs.jsonl")) as f:
            epochs = [json.loads(line) for line in f if line.strip()]
    except OSError:
        return None
    if not epochs:
        return None
    middle = epochs[(len(epochs) - 1) // 2]
    return start, middle, epochs[-1]


KERNEL_STATS = (("r2_student", "R² student"), ("r2_teacher", "R² teacher"),
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
    results = _read(os.path.join(folder, run, "results.json"))
    return (_table(header, rows) + f"\n\nDead taps at the end (a side's spread below 1e-3 of "
            f"its start, either side): {results.get('dead_taps', '—')} of {len(start)}.")


def render(folder):
    """{block name: Markdown} for docs/ (`adder_tf.report.markdown_blocks`)."""
    phases = load(folder)
    main = phases.get("main", {})
    out = {}
    if "select" in phases:
        out["selection"] = selection_table(phases["select"])
    if main:
        out["main"], out["main_pairs"] = main_table(main)
        out["table3"] = table3(main, phases.get("table3", {}))
        out["cost"] = cost_table(phases)
        out["table1"], out["table1_pairs"] = table1(main, phases.get("table1", {}))
    for name in ("pkkd_seed0", "pkkd_meanwidth_seed0"):
        out[f"kernel_{name}"] = kernel_table(os.path.join(folder, "main"), name)
    return out
