"""The benchmark tables in README.md and docs/*.md, generated from committed results.

    python bench/report.py            # rewrite every generated table in place
    python bench/report.py --check    # exit 1 naming each table that disagrees with its data

A generated table sits between two comments; the first names the kind of table
and the files (paths from the repository root) it is made from:

    <!-- table KIND bench/results/FILE.json [FILE2 ...] -->
    ... (written by this script; edits here are overwritten) ...
    <!-- /table -->

Kinds: summary (one row per bench JSON: layer ratios, whole steps, memory), paths
(which of the op's paths each JSON timed), layers,
steps, xla, ops (bench/op_profile.py), peaks (bench/vector_peak.cc's JSON lines),
kernels (bench/kernels_alone.cc's JSON lines, with `what=...` to pick one series
and a peaks file to give the share of the peak), step_ops (bench/experiments/step_ops.py's
output); see table_kinds.py. Every table begins with a line naming its files and CPU.

The same command fills the PKKD protocol tables: a document's `<!-- begin NAME -->`
... `<!-- end NAME -->` blocks come from the protocol folder results/pkkd_protocol
(`adder_tf.report.protocol.render`, the blocks `train/report.py --docs` writes).
"""
import argparse
import glob
import os
import re
import sys

from table_kinds import ReportError, render

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
from adder_tf.errors import UserError  # noqa: E402  (the library beside bench/)
from adder_tf.report import markdown_blocks, protocol  # noqa: E402

PROTOCOL = os.path.join("results", "pkkd_protocol")
BLOCK = re.compile(r"(<!-- table (?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def documents(root):
    return [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))


def regenerate(root, check):
    """Rewrites (or, with check, compares) every table; returns the stale ones."""
    stale = []
    for doc in documents(root):
        try:
            with open(doc) as f:
                text = f.read()
        except OSError as e:
            raise ReportError(f"{doc}: {e.strerror}") from None
        name = os.path.relpath(doc, root)
        if text.count("<!-- table ") != len(BLOCK.findall(text)):
            raise ReportError(f"{name}: a '<!-- table ...' comment without its '<!-- /table -->'")

        def replace(m):
            fresh = render(root, m.group("args"))
            if fresh != m.group("body"):
                stale.append(f"{name}: table '{m.group('args')}'")
            return m.group(1) + fresh + m.group(4)

        new = BLOCK.sub(replace, text)
        new, protocol_stale = fill_protocol(root, new)
        stale += [f"{name}: block '{b}'" for b in protocol_stale]
        if not check and new != text:
            with open(doc, "w") as f:
                f.write(new)
    return stale


def fill_protocol(root, text):
    """text with its protocol blocks filled from results/pkkd_protocol, and the stale ones."""
    present = markdown_blocks.blocks(text)
    if not present:
        return text, []
    folder = os.path.join(root, PROTOCOL)
    if not os.path.isdir(folder):
        raise ReportError(f"{PROTOCOL}: no such folder (the protocol blocks' data)")
    generated = {k: v for k, v in protocol.render(folder).items() if k in present}
    return markdown_blocks.fill(text, generated), markdown_blocks.stale(text, generated)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 if a table differs from what its data gives")
    p.add_argument("--root", default=ROOT, help="the repository (default: this checkout)")
    args = p.parse_args(argv)
    try:
        stale = regenerate(args.root, args.check)
    except (ReportError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in stale:
        print(f"{line} disagrees with its data" if args.check else f"rewrote {line}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
