"""Tables and figures over many runs, beside the PKKD paper's numbers.

    python train/report.py --runs=runs [--out=runs/report]

Collects every results.json under --runs (recursively), groups runs that
differ only by --seed (mean ± sample std, count), prints the Markdown tables
(the paper's Tables 1-4 where runs fit them, and one row per group of every
run found) and writes to --out: report.md, accuracy curves
(accuracy_DATASET_ARCH.png) and CNN-vs-ANN weight histograms
(weights_DATASET_ARCH_*.png).

    python train/report.py --runs=results/pkkd_protocol --docs=docs/pkkd_protocol.md [--check]

With --docs, --runs is a protocol folder (experiments/pkkd_protocol.sh) and
the generated blocks of the Markdown file (`<!-- begin NAME -->` ...
`<!-- end NAME -->`) are rewritten from its results.json files
(`adder_tf.report.protocol`); with --check nothing is written and the exit
status is 1 when a block differs from what the results give.
"""
import os
import sys

import cli  # noqa: F401  (sets up the import path and logging first)
from absl import app, flags

from adder_tf.errors import UserError

F = flags.FLAGS
flags.DEFINE_string("runs", "", "Folder searched (recursively) for results.json files.")
flags.DEFINE_string("out", "", "Folder for report.md and the PNG figures (default: RUNS/report, "
                    "or RUN_report beside a single run folder).")
flags.DEFINE_bool("curves", True, "Draw accuracy curves.")
flags.DEFINE_bool("weights", True, "Draw weight histograms (loads the saved .keras models).")
flags.DEFINE_string("docs", "", "A Markdown file whose generated blocks are filled from the "
                    "protocol folder --runs (see the module docstring).")
flags.DEFINE_bool("check", False, "With --docs: write nothing, exit 1 if a block is out of date.")
flags.DEFINE_bool("debug", False, "Show tracebacks instead of one-line errors.")


def _warn(message):
    print(message, file=sys.stderr)


def default_out(runs):
    """RUNS/report for a folder of runs; beside a single run (RUN_report), never inside it."""
    if os.path.exists(os.path.join(runs, "results.json")):
        run = os.path.abspath(runs).rstrip(os.sep)
        return run + "_report"
    return os.path.join(runs, "report")


def docs(path, runs, check):
    """Fill (or, with check, compare) the generated blocks of `path` from protocol folder `runs`."""
    from adder_tf.report import markdown_blocks, protocol
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"--docs {path}: cannot read it ({e.strerror})")
    generated = protocol.render(runs)
    generated = {k: v for k, v in generated.items() if k in markdown_blocks.blocks(text)}
    if check:
        stale = markdown_blocks.stale(text, generated)
        if stale:
            print(f"{path}: out of date against {runs}: {', '.join(stale)} "
                  f"(python train/report.py --runs={runs} --docs={path})")
            raise SystemExit(1)
        print(f"{path}: {len(generated)} block(s) match {runs}")
        return
    with open(path, "w") as f:
        f.write(markdown_blocks.fill(text, generated))
    print(f"{path}: {len(generated)} block(s) written from {runs}")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags look like --name=value)")
    if F.check and not F.docs:
        raise UserError("--check goes with --docs")
    if F.docs:
        return docs(F.docs, F.runs, F.check)
    cli.import_tensorflow_quietly()
    from adder_tf.report import collect, tables
    runs = collect.load_runs(F.runs, warn=_warn)
    groups = collect.group_runs(runs)
    for g in groups:
        if g.repeated_seeds:
            where = ", ".join(r.path for r in g.runs if r.seed in g.repeated_seeds)
            _warn(f"warning: the same settings and seed {g.repeated_seeds} in several folders "
                  f"({where}); each counts as a run")
    out = F.out or default_out(F.runs)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create this folder ({e.strerror})")

    figures, extra = [], []
    if F.curves or F.weights:
        from adder_tf.report import plots
        if F.curves:
            curves = plots.accuracy_curves(groups, out)
            figures += [p for p, _ in curves]
            if curves:
                extra.append("\n".join(["## Accuracy curves", ""] + [
                    f"![{caption}]({os.path.basename(p)})" for p, caption in curves]))
        if F.weights:
            written, section = plots.weight_histograms(groups, out, root=F.runs, warn=_warn)
            figures += written
            if section:
                extra.append(section + "\n\n" + "\n".join(
                    f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in written))

    text = tables.render(groups, root=F.runs, extra=extra)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(text)
    print(text)
    print(f"report: {len(runs)} run(s) in {len(groups)} group(s) -> {path} and {len(figures)} figure(s)")


if __name__ == "__main__":
    app.run(lambda argv: cli.run_main(main, argv, lambda: F.debug), flags_parser=cli.parse_flags)
