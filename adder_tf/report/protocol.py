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
resolution and every seed's difference has the same sign. Each comparison
also shows twice its own sd (a run far off its method's other seeds widens
the pooled figure for every comparison it enters). Comparisons are written
(the paper's better, the paper's worse) where the paper orders them, so a
resolved negative difference reverses the paper's order, and says so.
"""
import json
import math
import os
import re

from adder_tf.errors import UserError
from adder_tf.report import markdown_blocks
from adder_tf.report.kernel_health import kernel_table

MAIN = (("cnn", "CNN"), ("ann", "ANN"), ("kd", "KD"), ("nst", "NST"), ("pkkd", "PKKD"),
        ("pkkd_meanwidth", "PKKD, mean-distance Laplace width (--laplace_width=mean)"))
MAIN_PAIRS = (("pkkd", "ann"), ("pkkd", "kd"), ("pkkd", "nst"), ("kd", "ann"), ("nst", "ann"),
              ("pkkd", "pkkd_meanwidth"), ("cnn", "ann"))
# Pairs the paper does not order (the mean-distance width is this library's option).
UNORDERED = {("pkkd", "pkkd_meanwidth")}
LOSSES = ("raw", "conv1x1", "kernel", "kernel_conv1x1")
TEACHERS = ("fixed", "progressive")
# The paper's Table 1 ordering, step by step: (better, worse) cells (loss, teacher).
TABLE1_STEPS = (*(step for teacher in TEACHERS for step in (
                    (("conv1x1", teacher), ("raw", teacher)),
                    (("kernel", teacher), ("raw", teacher)),
                    (("kernel_conv1x1", teacher), ("kernel", teacher)),
                    (("kernel_conv1x1", teacher), ("conv1x1", teacher)))),
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


def _verdict(diffs, resolution, ordered=True):
    if len(diffs) < 2 or resolution is None:
        return "one seed: not resolved"
    mean = sum(diffs) / len(diffs)
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    if not (abs(mean) > resolution and same_sign):
        return "not resolved"
    return "resolved, reverses the paper's order" if ordered and mean < 0 else "resolved"


def _own(diffs):
    _, std = _mean_std(diffs)
    return "—" if std is None else f"{2.0 * std:.2f}"


def _comparisons(rows, resolution, label, unordered=frozenset()):
    body = [(f"{label(a)} − {label(b)}", " ".join(f"{d:+.2f}" for d in diffs) or "—",
             f"{sum(diffs) / len(diffs):+.2f}" if diffs else "—", _own(diffs),
             _verdict(diffs, resolution, (a, b) not in unordered))
            for a, b, diffs in rows]
    res = "—" if resolution is None else f"{resolution:.2f}"
    return (markdown_blocks.table(("comparison", "paired differences (by seed)", "mean", "2 x own sd",
                    "verdict"), body)
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
    return markdown_blocks.table(["method", *(f"w = {w:g}" for w in weights), "chosen"], rows)


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
    table = markdown_blocks.table(["method", "weight", *(f"seed {s}" for s in seeds), "mean ± sd [n]"], rows)
    pair_rows, resolution = paired(scores, [p for p in MAIN_PAIRS if p[0] in scores
                                            and p[1] in scores])
    return table, _comparisons(pair_rows, resolution, lambda k: label[k].split(",")[0]
                               + (" (mean width)" if k == "pkkd_meanwidth" else ""), UNORDERED)


def table1_scores(main, table1):
    """{(loss, teacher): {seed: top-1}}; kernel_conv1x1 progressive is the main PKKD run,
    at the seeds the table's own runs have."""
    scores = {}
    for name, seeds in by_seed(table1).items():
        loss, teacher = name.rsplit("_", 1)
        scores[(loss, teacher)] = seeds
    seeds = {s for v in scores.values() for s in v}
    pkkd = by_seed(main).get("pkkd", {})
    if any(s in seeds for s in pkkd):
        scores[("kernel_conv1x1", "progressive")] = {s: v for s, v in pkkd.items() if s in seeds}
    return scores


def table1(main, table1_runs):
    scores = table1_scores(main, table1_runs)
    rows = [[loss, *(fmt(scores.get((loss, t), {}).values()) for t in TEACHERS)]
            for loss in LOSSES]
    table = markdown_blocks.table(["feature loss", *(f"{t} teacher" for t in TEACHERS)], rows)
    named = {f"{loss} {t}": v for (loss, t), v in scores.items()}
    steps = [(f"{a[0]} {a[1]}", f"{b[0]} {b[1]}") for a, b in TABLE1_STEPS]
    pair_rows, resolution = paired(named, [p for p in steps if p[0] in named and p[1] in named])
    return table, _comparisons(pair_rows, resolution, str)


def table3(main, table3_runs):
    """PKKD at each weight (the main run's weight from main/), at table3's seeds, and each
    other weight against the main run's, seed by seed."""
    scores = {}
    for name, seeds in by_seed(table3_runs).items():
        scores[float(name.split("_w", 1)[1])] = seeds
    seeds = sorted({s for v in scores.values() for s in v})
    base = None
    for name, results in main.items():
        m = _SEED.match(name)
        if m and m["name"] == "pkkd" and (not seeds or int(m["seed"]) in seeds):
            base = float(results["config"]["alpha"])
            scores.setdefault(base, {})[int(m["seed"])] = 100.0 * results["student"]["top1"]
    seeds = sorted({s for v in scores.values() for s in v})
    rows = [[f"{w:g}", *(f"{scores[w][s]:.2f}" if s in scores[w] else "—" for s in seeds),
             fmt(scores[w].values())] for w in sorted(scores)]
    table = markdown_blocks.table(["alpha = beta", *(f"seed {s}" for s in seeds), "mean ± sd [n]"], rows)
    if base is None or len(scores) < 2:
        return table
    named = {f"{w:g}": v for w, v in scores.items()}
    pair_rows, resolution = paired(named, [(f"{w:g}", f"{base:g}") for w in sorted(scores)
                                           if w != base])
    return table + "\n\n" + _comparisons(pair_rows, resolution,
                                           lambda k: f"alpha = beta {k}",
                                           {(a, b) for a, b, _ in pair_rows})


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
            teacher = (results.get("teacher") or {}).get("mode")
            key = (f"{labels.get(results['method'], results['method'])}"
                   + (f", {teacher} teacher" if results["method"] == "pkkd" and teacher else "")
                   + f" ({epochs} epochs)")
            per_epoch = results.get("train_seconds_this_session", 0.0) / trained
            seconds.setdefault(key, []).append(per_epoch * epochs)
    rows = [[k, f"{sum(v) / len(v) / 60:.1f}", len(v)] for k, v in sorted(seconds.items())]
    return markdown_blocks.table(["method", "minutes per run (mean)", "runs"], rows)


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
