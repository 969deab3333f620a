"""The kinds of generated table that bench/report.py writes into the docs.

Each kind is a function (root, paths, options) -> markdown table, reading the files
named in the table's opening comment (paths from the repository root).
"""
import json
import os
import re
import statistics

STAGES = ("stage1", "stage2", "stage3")


class ReportError(Exception):
    """Bad input: reported as one line."""


def load(root, path):
    full = os.path.join(root, path)
    try:
        with open(full) as f:
            if path.endswith(".txt"):
                return f.read()
            if path.endswith(".jsonl"):
                return [json.loads(line) for line in f if line.strip()]
            return json.load(f)
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None
    except ValueError as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from None


def cpu_name(data):
    """The CPU as the JSON records it: model string, family/model when recorded."""
    cpu = data.get("env", {}).get("cpu", {})
    if not isinstance(cpu, dict):
        return str(cpu)
    name = cpu.get("model", "unknown CPU")
    if cpu.get("model_number"):
        name += f", family {cpu.get('family', '?')} model {cpu['model_number']}"
    flags = cpu.get("vector_flags", [])
    extra = [f for f in ("avx512_fp16", "amx_tile") if f in flags]
    return name + (f" ({', '.join(extra)})" if extra else "")


def fmt(value, digits=2, whole_above=100):
    """A figure at `digits` decimals, or none from `whole_above` on."""
    if value is None:
        return "-"
    if abs(value) >= whole_above:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def ms(value):
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def shape_label(shape):
    """'stage1_32x32x16_16_k3s1' -> '32x32x16 -> 16, 3x3'."""
    m = re.match(r"\w+?_(\d+x\d+x\d+)_(\d+)_k(\d+)s(\d+)", shape)
    if not m:
        return shape
    size, cout, k, s = m.groups()
    return f"{size} -> {cout}, {k}x{k}" + (f", stride {s}" if s != "1" else "")


def step_row(data, batch=128):
    return next((s for s in data.get("train_step", []) if s.get("batch") == batch), {})


def stage_ratios(data, batch, key="ratio_fast"):
    found = {l["shape"][:6]: l.get(key) for l in data.get("layers", []) if l["batch"] == batch}
    return " / ".join(fmt(found.get(s)) for s in STAGES)


def times_x(value):
    return "-" if value is None else fmt(value) + "x"


def render_summary(root, paths, opts):
    rows = []
    for path in paths:
        d = load(root, path)
        step = step_row(d)
        mem = d.get("memory", {}).get("ann_fast_over_cnn")
        rows.append([cpu_name(d), stage_ratios(d, 128), stage_ratios(d, 32),
                     times_x(step.get("ratio_fast")), times_x(step.get("ratio_pkkd")),
                     fmt(mem), f"`{path}`"])
    return table(["CPU", "layers, batch 128 (stages 1 / 2 / 3)", "layers, batch 32",
                  "ANN step", "PKKD step", "memory", "data"], rows)


def render_paths(root, paths, opts):
    """Which of the adder op's paths each JSON timed (and so on which CPU)."""
    rows = []
    for path in paths:
        d = load(root, path)
        compiled = bool(d.get("layers") or d.get("train_step"))
        plain = any("ratio_reference" in l for l in d.get("layers", []))
        xla = "ratio_ann_xla_over_ann" in d.get("xla", {})
        rows.append([cpu_name(d)] + ["yes" if x else "-" for x in (compiled, plain, xla)]
                    + [f"`{path}`"])
    return table(["CPU", "compiled CPU op", "plain TF path", "XLA path", "data"], rows)


def render_layers(root, paths, opts):
    d = load(root, paths[0])
    reference = any("ratio_reference" in l for l in d["layers"])
    header = ["shape", "batch", "conv", "adder (compiled)", "ratio"]
    if reference:
        header += ["adder (plain TF)", "ratio"]
    rows = []
    for l in d["layers"]:
        row = [shape_label(l["shape"]), str(l["batch"]), ms(l["conv_ms"]),
               ms(l["adder_fast_ms"]), fmt(l["ratio_fast"])]
        if reference:
            row += [ms(l.get("adder_reference_ms")), fmt(l.get("ratio_reference"), 1)]
        rows.append(row)
    return table(header, rows)


def times(step, key, ratio_key):
    if step.get(key) is None:
        return "-"
    return f"{ms(step[key])} ({fmt(step.get(ratio_key))}x)"


def render_steps(root, paths, opts):
    rows = []
    for path in paths:
        d = load(root, path)
        s = step_row(d)
        rows.append([cpu_name(d), ms(s.get("cnn_ms")), times(s, "ann_fast_ms", "ratio_fast"),
                     times(s, "kd_ms", "ratio_kd"), times(s, "pkkd_ms", "ratio_pkkd"),
                     ms(s.get("heads_and_feature_loss_ms")), f"`{path}`"])
    return table(["CPU", "CNN", "ANN", "KD", "PKKD", "heads + feature loss", "data"], rows)


def render_xla(root, paths, opts):
    x = load(root, paths[0])["xla"]
    mem = x.get("memory", {})

    def memory(name, key):
        pair = [mem.get(n, {}) for n in (name, name + "_xla")]
        got = [p.get(key) if key != "alloc" else p.get("tf_allocator_mb", {}).get("peak")
               for p in pair]
        return " / ".join(f"{v:.0f} MB" if v is not None else "-" for v in got)

    rows = [[name.upper(), ms(x.get(f"{name}_ms")), ms(x.get(f"{name}_xla_ms")),
             fmt(x.get(f"ratio_{name}_xla_over_{name}"), 1) + "x",
             f"{x.get('first_call_s', {}).get(name + '_xla', float('nan')):.0f} s",
             memory(name, "step_peak_delta_mb"), memory(name, "alloc")]
            for name in ("ann", "pkkd")]
    return table([f"step, batch {x.get('batch')}", "without XLA", "with XLA",
                  "XLA / without (same rounds)", "first call with XLA",
                  "peak RSS added, without / with", "TF allocator peak, without / with"], rows)


def render_ops(root, paths, opts):
    d = load(root, paths[0])
    rows = [[shape_label(o["shape"]), str(o["batch"])]
            + [fmt(o.get(f"{op}_ratio")) for op in ("forward", "input_grad", "filter_grad")]
            for o in d["ops"]]
    return table(["shape", "batch", "forward", "input gradient", "filter gradient"], rows)


def series(records, what):
    return [r for r in records if what is None or r.get("what") == what]


def medians(records, key_fields, value):
    groups = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in key_fields), []).append(r[value])
    return {k: statistics.median(v) for k, v in groups.items()}


def render_peaks(root, paths, opts):
    peak = medians(series(load(root, paths[0]), opts.get("what")), ("mix", "threads"), "g_terms_s")
    order = ["fma", "min_add", "min_fma", "add_range_fma", "forward_loop"]
    mixes = sorted({m for m, _ in peak}, key=lambda m: (order + [m]).index(m))
    return table(["mix", "1 thread", "2 threads"],
                 [[m, fmt(peak.get((m, 1)), 1, 1e9), fmt(peak.get((m, 2)), 1, 1e9)] for m in mixes])


def render_kernels(root, paths, opts):
    records = series(load(root, paths[0]), opts.get("what"))
    fwd = medians(records, ("shape", "threads"), "forward_g_terms_s")
    bwd = medians(records, ("shape", "threads"), "input_grad_g_terms_s")
    peak = {}
    if len(paths) > 1:
        peak = medians(series(load(root, paths[1]), opts.get("peaks_what")), ("mix", "threads"),
                       "g_terms_s")

    def cell(value, mix, threads):
        share = peak.get((mix, threads))
        return fmt(value, 1, 1e9) + (f" ({100 * value / share:.0f}%)" if share else "")

    forward_mix = opts.get("forward_peak", "min_add")   # min_fma: the accumulation on FMA pipes
    rows = [[shape_label(s)] + [cell(fwd[(s, t)], forward_mix, t) for t in (1, 2)]
            + [cell(bwd[(s, t)], "add_range_fma", t) for t in (1, 2)]
            for s in sorted({s for s, _ in fwd})]
    return table(["shape", "forward 1 thread", "forward 2 threads", "input gradient 1 thread",
                  "input gradient 2 threads"], rows)


def render_step_ops(root, paths, opts):
    """bench/experiments/step_ops.py's output: ms per step per op kind, CNN against ANN."""
    per = {}
    for section in re.split(r"^(?=\w+: executor)", load(root, paths[0]), flags=re.M):
        flavour = section.split(":", 1)[0]
        for kind, stage, value in re.findall(r"^\s+(\w+)\s+(stage\d|unnamed)\s+([\d.]+) ms",
                                             section, re.M):
            per.setdefault((flavour, kind, stage), float(value))

    def total(flavour, kind):
        return sum(v for (f, k, _), v in per.items() if f == flavour and k == kind)

    rows = [[f"forward, stage {s[-1]}", fmt(per[("conv", "forward", s)]),
             fmt(per[("adder", "forward", s)]),
             fmt(per[("adder", "forward", s)] / per[("conv", "forward", s)])] for s in STAGES]
    for kind, label in (("input_grad", "input gradient, all layers"),
                        ("filter_grad", "filter gradient, all layers")):
        rows.append([label, fmt(total("conv", kind)), fmt(total("adder", kind)),
                     fmt(total("adder", kind) / total("conv", kind))])
    return table(["op", "conv (CNN step), ms", "adder (ANN step), ms", "adder / conv"], rows)


KINDS = {"summary": render_summary, "paths": render_paths, "layers": render_layers, "steps": render_steps,
         "xla": render_xla, "ops": render_ops, "peaks": render_peaks, "kernels": render_kernels, "step_ops": render_step_ops}


def all_kinds():
    """Every kind, the ImageNet ones (table_kinds_imagenet.py) included."""
    import table_kinds_imagenet  # imports this module's helpers
    return {**KINDS, **table_kinds_imagenet.KINDS}


def caption(root, paths):
    """The line above every table: its files and, for bench JSON, the CPU and software."""
    files = ", ".join(f"`{p}`" for p in dict.fromkeys(paths))
    first = load(root, paths[0])
    if len(paths) == 1 and isinstance(first, dict) and "env" in first:
        env = first["env"]
        op = env.get("adder_op", {})
        return (f"Generated by `bench/report.py` from {files}: {cpu_name(first)}, "
                f"{env.get('cores', '?')} cores, TF {env.get('tf', '?')}, adder op built for "
                f"{op.get('isa', '?')}.")
    return f"Generated by `bench/report.py` from {files}."


def render(root, args):
    words = args.split()
    kinds = all_kinds()
    if not words or words[0] not in kinds:
        raise ReportError(f"unknown table kind in '<!-- table {args} -->' "
                          f"(known: {', '.join(kinds)})")
    paths = [w for w in words[1:] if "=" not in w]
    opts = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    if not paths:
        raise ReportError(f"'<!-- table {args} -->' names no data file")
    return caption(root, paths) + "\n\n" + kinds[words[0]](root, paths, opts) + "\n"
