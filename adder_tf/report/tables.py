"""Markdown tables in the layout of the PKKD paper's Tables 1-4, ours beside the paper's.

A cell reads `ours (paper)`: `92.41 ± 0.12 [3] (92.96)` is the mean and
sample standard deviation of the student's last-epoch top-1 over 3 seeds,
next to the paper's single run. Only rows with at least one run appear. When
several groups of runs fit a cell, the one trained as the paper did is
preferred (its alpha/beta, its epochs), then the longest, then the one with
most seeds; a cell whose run differs from the paper's recipe is marked with a
numbered note.
"""

from adder_tf.report import markdown_blocks, paper
from adder_tf.report.collect import distinguishing, run_name

DASH = "—"


def pct(fraction):
    return f"{100.0 * fraction:.2f}"


def fmt_stat(stat, with_n=True):
    if stat is None:
        return DASH
    text = pct(stat.mean) if stat.n == 1 else f"{pct(stat.mean)} ± {pct(stat.std)}"
    return f"{text} [{stat.n}]" if with_n else text


def fmt_paper(value):
    return DASH if value is None else f"{value:.2f}"


def _fmt_num(value):
    if value is None:
        return DASH
    return f"{float(value):g}"


class _Notes:
    """Numbered notes under a table for cells that depart from the paper's recipe."""

    def __init__(self):
        self.items = []

    def mark(self, text):
        if not text:
            return ""
        if text not in self.items:
            self.items.append(text)
        return f" †{self.items.index(text) + 1}"

    def render(self):
        return "\n".join(f"†{i + 1} {text}" for i, text in enumerate(self.items))


def pick(groups, where, prefer=None):
    """The group that best fills a cell: matches `where`; prefers `prefer`, the
    paper's epochs, more epochs, more seeds. Returns (group or None, departures)."""
    prefer = prefer or {}
    candidates = [g for g in groups if g.matches(**where)]
    if not candidates:
        return None, ""
    want_epochs = paper.EPOCHS.get(where.get("dataset"))

    def score(g):
        epochs = g["epochs"] if isinstance(g["epochs"], (int, float)) else 0
        return (g.matches(**prefer), epochs == want_epochs, epochs, g.n)

    best = max(candidates, key=score)
    departures = []
    if want_epochs is not None and best["epochs"] != want_epochs:
        departures.append(f"{best['epochs']} epochs (paper: {want_epochs})")
    for k, v in prefer.items():
        if not best.matches(**{k: v}):
            departures.append(f"{k}={_fmt_num(best[k])} (paper setting: {_fmt_num(v)})")
    if len(candidates) > 1:
        departures.append(f"{len(candidates) - 1} other group(s) of runs fit this cell; see the summary")
    label = f"{best['arch']} / {best['dataset']} / {best['method']}"
    return best, (f"{label}: " + "; ".join(departures)) if departures else ""


def _cell(group, note, notes, paper_value, metric="top1"):
    ours = fmt_stat(group.stat("student", metric)) if group is not None else DASH
    return f"{ours} ({fmt_paper(paper_value)}){notes.mark(note)}"


def _section(title, intro, table, notes):
    parts = [f"## {title}", "", intro, "", table]
    if notes.items:
        parts += ["", notes.render()]
    return "\n".join(parts)


def _pkkd_where(dataset, arch, **extra):
    where = {"dataset": dataset, "arch": arch, "method": "pkkd"}
    where.update(extra)
    return where


def table1(groups):
    notes = _Notes()
    w = paper.PKKD_WEIGHT["cifar10"]
    rows = []
    for loss, label in paper.TABLE1_ROWS:
        cells = []
        for mode in ("fixed", "progressive"):
            g, note = pick(groups, _pkkd_where("cifar10", "resnet20", feature_loss=loss, teacher=mode),
                           {"alpha": w, "beta": w})
            cells.append((g, note, paper.TABLE1[(loss, mode)]))
        if any(g is not None for g, _, _ in cells):
            rows.append([label] + [_cell(g, n, notes, p) for g, n, p in cells])
    if not rows:
        return None
    return _section("Table 1: feature loss and teacher (ResNet-20, CIFAR-10, top-1 %)",
                    "PKKD student, alpha = beta = 10 as in the paper's best CIFAR-10 setting.",
                    markdown_blocks.table(["feature loss", "fixed teacher", "progressive teacher"], rows), notes)


def _method_where(dataset, arch, method):
    where, prefer = {"dataset": dataset, "arch": arch, "method": method}, {}
    if method == "pkkd":
        where.update(teacher="progressive", feature_loss="kernel_conv1x1")
        w = paper.PKKD_WEIGHT.get(dataset)
        if w is not None:
            prefer = {"alpha": w, "beta": w}
    elif method == "mmd":
        prefer = dict(paper.MMD_WEIGHTS)
    return where, prefer


def table2(groups, dataset):
    notes = _Notes()
    rows = []
    for arch in paper.TABLE2_ARCHS:
        cells = [(pick(groups, *_method_where(dataset, arch, m)), paper.TABLE2[(arch, dataset, m)])
                 for m in paper.METHODS]
        if any(g is not None for (g, _), _ in cells):
            rows.append([arch] + [_cell(g, n, notes, p) for (g, n), p in cells])
    if not rows:
        return None
    name = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[dataset]
    return _section(f"Table 2: {name} top-1 %",
                    "Last-epoch student accuracy; PKKD with progressive teacher and kernel + 1x1 conv.",
                    markdown_blocks.table(["model"] + [paper.METHOD_HEADERS[m] for m in paper.METHODS], rows), notes)


def table3(groups):
    notes = _Notes()
    base = {"arch": "resnet20", "method": "pkkd", "teacher": "progressive",
            "feature_loss": "kernel_conv1x1"}
    weights = sorted({float(g["alpha"]) for g in groups if g.matches(**base)
                      and g["dataset"] in paper.TABLE3 and g["alpha"] is not None
                      and g.matches(beta=g["alpha"])})
    rows = []
    for w in weights:
        cells = []
        for dataset in ("cifar10", "cifar100"):
            g, note = pick(groups, dict(base, dataset=dataset, alpha=w, beta=w))
            cells.append(_cell(g, note, notes, paper.TABLE3[dataset].get(w)))
        rows.append([_fmt_num(w)] + cells)
    if not rows:
        return None
    return _section("Table 3: alpha = beta (ResNet-20 PKKD, top-1 %)",
                    "Progressive teacher, kernel + 1x1 conv feature loss.",
                    markdown_blocks.table(["alpha = beta", "CIFAR-10", "CIFAR-100"], rows), notes)


def table4(groups):
    notes = _Notes()
    rows = []
    for arch in paper.TABLE4_ARCHS:
        cells = []
        for m in paper.METHODS:
            g, note = pick(groups, *_method_where("imagenet2012", arch, m))
            p1, p5 = paper.TABLE4[(arch, m)]
            if g is None:
                ours = DASH
            else:
                s1, s5 = g.stat("student", "top1"), g.stat("student", "top5")
                ours = f"{fmt_stat(s1, with_n=False)} / {fmt_stat(s5, with_n=False)} [{g.n}]"
            cells.append((g, f"{ours} ({p1:.1f} / {p5:.1f}){notes.mark(note)}"))
        if any(g is not None for g, _ in cells):
            rows.append([arch] + [c for _, c in cells])
    if not rows:
        return None
    return _section("Table 4: ImageNet top-1 / top-5 %", "Last-epoch student accuracy.",
                    markdown_blocks.table(["model"] + [paper.METHOD_HEADERS[m] for m in paper.METHODS], rows), notes)


def summary(groups, root=None):
    """Every group of runs found, whatever its dataset."""
    other = distinguishing(groups)
    rows = []
    for i, g in enumerate(groups, 1):
        t = g.has_teacher
        rows.append([
            i, g["dataset"], g["arch"], g["method"],
            g["feature_loss"] if g["method"] == "pkkd" else DASH,
            g.teacher_mode if t else DASH,
            _fmt_num(g["alpha"]) if t else DASH, _fmt_num(g["beta"]) if t else DASH,
            g.epochs, g.n,
            fmt_stat(g.stat("student", "top1"), with_n=False),
            fmt_stat(g.stat("student", "top5"), with_n=False),
            fmt_stat(g.stat("teacher", "top1"), with_n=False) if t else DASH,
            other[id(g)] or DASH,
        ])
    header = ["#", "dataset", "arch", "method", "feature loss", "teacher", "alpha", "beta",
              "epochs", "n", "student top-1 %", "student top-5 %", "teacher top-1 %", "other settings"]
    folders = []
    for i, g in enumerate(groups, 1):
        paths = [run_name(r.path, root) for r in g.runs]
        seeds = ", ".join(str(s) for s in g.seeds) or "?"
        folders.append(f"- #{i} (seeds {seeds}): " + ", ".join(f"`{p}`" for p in paths))
    return "\n".join([
        "## All runs", "",
        "Runs that differ only by --seed form one row: mean ± sample std over the n seeds "
        "(last epoch, percent).", "",
        markdown_blocks.table(header, rows), "", "Run folders:", "", *folders])


def feature_health(groups):
    """Per-tap health of the feature loss for every group whose runs report it."""
    parts = []
    for i, g in enumerate(groups, 1):
        runs = [r.results for r in g.runs if r.results.get("feature_health")]
        if not runs:
            continue
        rows = []
        for t, tap in enumerate(runs[0]["feature_health"]):
            cells = [tap["tap"]]
            for key in ("student_std", "student_std_start", "teacher_std", "teacher_std_start",
                        "corr", "sigma_student", "sigma_teacher"):
                # (results written before the start spreads were recorded have none: nan)
                values = [r["feature_health"][t].get(key, float("nan"))
                          for r in runs if len(r["feature_health"]) > t]
                cells.append(_fmt_num(round(sum(values) / len(values), 4)))
            rows.append(cells)
        dead = ", ".join(str(r.get("dead_taps")) for r in runs)
        parts.append("\n".join([
            f"### #{i}: {g['method']} {g['arch']} {g['dataset']}, feature_loss={g['feature_loss']}, "
            f"feature_norm={g['feature_norm'] or 'standardize'}, alpha={_fmt_num(g['alpha'])}, "
            f"beta={_fmt_num(g['beta'])}", "",
            f"Dead taps per seed: {dead}. Means over {len(runs)} seed(s), on the fixed test batch:", "",
            markdown_blocks.table(["tap", "student spread", "at start", "teacher spread", "at start", "corr",
                    "sigma student", "sigma teacher"], rows)]))
    if not parts:
        return None
    return "\n\n".join(["## Feature health", "",
                          "Each tapped layer at the end of training: spread (std) of the "
                          "student-side and teacher-side head outputs (and at the start), their "
                          "mean per-channel correlation and the kernel widths, each network with "
                          "the probe batch's own BatchNorm statistics. A tap is dead when either "
                          "side's spread fell below 1e-3 of its value at the start.", *parts])


def paper_tables(groups):
    parts = [table1(groups), table2(groups, "cifar10"), table2(groups, "cifar100"),
             table3(groups), table4(groups)]
    return [p for p in parts if p]


def render(groups, root=None, extra=()):
    """The whole report.md: paper tables that have runs, the summary, extra sections."""
    n_runs = sum(g.n for g in groups)
    head = ["# adder_tf report", "",
            f"{n_runs} run(s) in {len(groups)} group(s) under `{root}`." if root else
            f"{n_runs} run(s) in {len(groups)} group(s).", "",
            "Cells: ours as mean ± sample std [number of seeds], the paper's number in "
            "parentheses (the paper reports single runs)."]
    body = paper_tables(groups)
    if not body:
        body = ["No run matches a cell of the paper's Tables 1-4 "
                "(CIFAR-10/100 or ImageNet with the paper's architectures)."]
    health = feature_health(groups)
    return "\n\n".join(["\n".join(head), *body, summary(groups, root),
                         *([health] if health else []), *extra]) + "\n"
