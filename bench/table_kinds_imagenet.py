"""The ImageNet tables bench/report.py writes (`adder_bench.py --imagenet`'s JSON).

imagenet:         one row per JSON: the layer ratios (median and worst shape) at
                  each batch, whole-model inference and the ResNet-18 step.
imagenet_layers:  one JSON, one row per distinct layer shape.
speed:            the README's one table: a row per JSON, CIFAR (`--quick`) or
                  ImageNet (`--imagenet`), each naming its CPU.
A ratio is adder / Conv2D (ANN / CNN) time, side by side in one process.
"""
from table_kinds import ReportError, cpu_name, fmt, load, ms, stage_ratios, step_row, table, times_x

MODES = (("fwd_bwd_b32", "fwd+bwd, batch 32"), ("fwd_b1", "forward, batch 1"),
         ("fwd_b32", "forward, batch 32"))


def section(data, path):
    found = data.get("imagenet")
    if not isinstance(found, dict) or not found.get("layers"):
        raise ReportError(f"{path}: no 'imagenet' section (written by adder_bench.py --imagenet)")
    if found.get("smoke"):
        raise ReportError(f"{path}: a --smoke run times one round at toy batches; not a figure")
    return found


def worst_cell(section_data, mode):
    w = section_data["worst"].get(mode)
    if not w:
        return "-"
    return f"{fmt(w['median_ratio'])} / {fmt(w['ratio'])} ({w['of'].rsplit('_', 1)[0]})"


def inference_cell(section_data, arch):
    rows = {r["batch"]: r["ratio"] for r in section_data["inference"] if r["arch"] == arch}
    return " / ".join(fmt(rows.get(b)) for b in sorted(rows)) or "-"


def render_imagenet(root, paths, opts):
    rows = []
    for path in paths:
        d = load(root, path)
        s = section(d, path)
        step = s["train_step"]
        rows.append([cpu_name(d)] + [worst_cell(s, mode) for mode, _ in MODES]
                    + [inference_cell(s, "resnet18"), inference_cell(s, "resnet50"),
                       f"{fmt(step['ratio'])} ({step['size']}x{step['size']}, batch {step['batch']})",
                       f"`{path}`"])
    return table(["CPU"] + [f"layers {label}: median / worst" for _, label in MODES]
                 + ["ResNet-18 inference, batch 1 / 8", "ResNet-50 inference, batch 1 / 8",
                    "ResNet-18 train step", "data"], rows)


def shape_cell(shape):
    """'7x7x512_512_k3s1_same' -> '7x7x512 -> 512, 3x3 same'."""
    size, cout, ks, pad = shape["name"].split("_")
    k, s = ks[1:].split("s")
    return f"{size} -> {cout}, {k}x{k}" + (f" /{s}" if s != "1" else "") + f" {pad}"


def render_imagenet_layers(root, paths, opts):
    d = load(root, paths[0])
    s = section(d, paths[0])
    rows = []
    for shape in s["layers"]:
        used = ", ".join(f"{arch} x{n}" for arch, n in shape["layers_in"].items())
        cells = []
        for mode, _ in MODES:
            r = shape.get(mode)
            cells.append("-" if r is None else
                         f"{fmt(r['ratio'])} ({ms(r['adder_ms'])} / {ms(r['conv_ms'])})")
        rows.append([shape_cell(shape), used] + cells)
    return table(["shape", "layers"] + [f"{label}: ratio (adder / conv)" for _, label in MODES],
                 rows)


def _cifar_row(d):
    step = step_row(d)
    return ["ResNet-20, CIFAR (32x32)",
            f"fwd+bwd, batch 128, stages 1 / 2 / 3: {stage_ratios(d, 128)}",
            f"train step {times_x(step.get('ratio_fast'))}, "
            f"PKKD step {times_x(step.get('ratio_pkkd'))} (batch 128)"]


def _imagenet_row(s):
    worst = {mode: s["worst"][mode] for mode, _ in MODES if s["worst"].get(mode)}
    layers = "; ".join(f"{label} {fmt(w['median_ratio'])} / {fmt(w['ratio'])}"
                       for (mode, label) in MODES if (w := worst.get(mode)))
    step = s["train_step"]
    return [f"ResNet-18/50, ImageNet (224x224), {len(s['layers'])} layer shapes",
            f"median / worst: {layers}",
            f"inference batch 1 / 8: ResNet-18 {inference_cell(s, 'resnet18')}, ResNet-50 "
            f"{inference_cell(s, 'resnet50')}; ResNet-18 train step {fmt(step['ratio'])} "
            f"({step['size']}x{step['size']}, batch {step['batch']})"]


def render_speed(root, paths, opts):
    """One row per JSON: a --quick JSON gives the CIFAR row, an --imagenet one the ImageNet row."""
    rows = []
    for path in paths:
        d = load(root, path)
        if d.get("imagenet"):
            cells = _imagenet_row(section(d, path))
        elif d.get("layers"):
            cells = _cifar_row(d)
        else:
            raise ReportError(f"{path}: neither layer timings (--quick) nor an 'imagenet' section")
        rows.append([cpu_name(d)] + cells + [f"`{path}`"])
    return table(["CPU", "networks", "layers, adder / Conv2D", "whole networks, ANN / CNN", "data"],
                 rows)


KINDS = {"imagenet": render_imagenet, "imagenet_layers": render_imagenet_layers,
         "speed": render_speed}
