"""Figures for the report (matplotlib, Agg backend, PNG).

- Accuracy curves in the style of the PKKD paper's Figure 2: one colour per
  method, test accuracy solid, training accuracy dashed, mean over seeds.
- Weight histograms: the filters of a CNN's conv layers against an ANN's
  adder layers (AdderNet, Chen et al. 2020, sec. 3.3: Gaussian-like against
  Laplacian-like), each with the maximum-likelihood Gaussian and Laplace
  densities drawn over it and their log-likelihoods reported.
"""
import math
import os

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from adder_tf.report import markdown_blocks, tables  # noqa: E402
from adder_tf.report.collect import run_name  # noqa: E402

COLOURS = {"cnn": "tab:blue", "bnn": "tab:gray", "ann": "tab:orange", "kd": "tab:purple",
           "mmd": "tab:green", "pkkd": "tab:red"}
METHOD_ORDER = ("cnn", "bnn", "ann", "kd", "mmd", "pkkd")


def _slug(*parts):
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts)


def mean_curve(runs, key):
    """Mean over runs of history[key] per epoch (truncated to the shortest run), or None."""
    curves = []
    for run in runs:
        values = [row.get(key) for row in run.results.get("history") or []]
        if values and all(v is not None for v in values):
            curves.append(np.asarray(values, dtype=float))
    if not curves:
        return None
    length = min(len(c) for c in curves)
    return np.mean([c[:length] for c in curves], axis=0)


def _curve_groups(groups):
    """(dataset, arch) -> {method: group}, one group per method (as the tables pick it)."""
    out = {}
    for dataset, arch in sorted({(g["dataset"], g["arch"]) for g in groups}, key=str):
        chosen = {}
        for method in METHOD_ORDER:
            where, prefer = tables._method_where(dataset, arch, method)
            g, _ = tables.pick(groups, where, prefer)
            if g is None and method == "pkkd":  # any PKKD run rather than none
                g, _ = tables.pick(groups, {"dataset": dataset, "arch": arch, "method": method})
            if g is not None:
                chosen[method] = g
        if chosen:
            out[(dataset, arch)] = chosen
    return out


def accuracy_curves(groups, out_dir):
    """One PNG per (dataset, arch); returns [(path, caption)]."""
    written = []
    for (dataset, arch), chosen in _curve_groups(groups).items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        drawn = 0
        for method, g in chosen.items():
            colour = COLOURS.get(method)
            for key, style, what, width in (("val_top1", "-", "test", 1.6), ("top1", "--", "train", 1.6),
                                            ("val_teacher_top1", "-", "teacher test", 0.8),
                                            ("teacher_top1", "--", "teacher train", 0.8)):
                curve = mean_curve(g.runs, key)
                if curve is None:
                    continue
                epochs = np.arange(1, len(curve) + 1)
                ax.plot(epochs, 100 * curve, style, color=colour, lw=width,
                        alpha=1.0 if width > 1 else 0.6,
                        label=f"{method} {what}" + (f" (n={g.n})" if g.n > 1 else ""))
                drawn += 1
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xlabel("epoch")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{arch} on {dataset}: test (solid) and train (dashed); teachers thin")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = os.path.join(out_dir, f"accuracy_{_slug(dataset, arch)}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append((path, f"{arch} on {dataset}: " + ", ".join(chosen)))
    return written


# ---------------------------------------------------------------- weights

def fit_gaussian(x):
    mu, sigma = float(np.mean(x)), float(np.std(x))
    sigma = max(sigma, 1e-12)
    ll = float(np.mean(-0.5 * np.log(2 * np.pi * sigma ** 2) - (x - mu) ** 2 / (2 * sigma ** 2)))
    return {"mu": mu, "sigma": sigma, "loglik": ll}


def fit_laplace(x):
    m = float(np.median(x))
    b = max(float(np.mean(np.abs(x - m))), 1e-12)
    ll = float(np.mean(-np.log(2 * b) - np.abs(x - m) / b))
    return {"m": m, "b": b, "loglik": ll}


def excess_kurtosis(x):
    x = np.asarray(x, dtype=float)
    var = np.var(x)
    return float(np.mean((x - x.mean()) ** 4) / var ** 2 - 3.0) if var > 0 else float("nan")


def describe(x):
    x = np.asarray(x, dtype=np.float64).ravel()
    g, lap = fit_gaussian(x), fit_laplace(x)
    return {"n": int(x.size), "gaussian": g, "laplace": lap, "kurtosis": excess_kurtosis(x),
            "better": "Laplace" if lap["loglik"] > g["loglik"] else "Gaussian"}


def _conv_like(model):
    """Layers with a kernel of rank 4, in order (walks nested models)."""
    from adder_tf import _keras_internals as internals   # keras only where a model is read
    out = []
    for layer in internals.flatten_layers(model):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) == 4:
            out.append(layer)
    return out


def _adder_class():
    from adder_tf.layers.adder import AdderConv2D
    return AdderConv2D


def layer_weights(cnn, ann):
    """Matched (name, cnn kernel, ann kernel) triples: the ANN's adder layers and
    the CNN's conv layers of the same name (homogeneous architectures)."""
    adder = _adder_class()
    ann_layers = [l for l in _conv_like(ann) if isinstance(l, adder)]
    cnn_layers = {l.name: l for l in _conv_like(cnn) if not isinstance(l, adder)}
    pairs = [(l.name, np.asarray(cnn_layers[l.name].kernel), np.asarray(l.kernel))
             for l in ann_layers if l.name in cnn_layers]
    if not pairs and ann_layers:  # names differ: match by position, skipping the stem conv
        convs = [l for l in _conv_like(cnn) if not isinstance(l, adder)][1:]
        pairs = [(a.name, np.asarray(c.kernel), np.asarray(a.kernel))
                 for c, a in zip(convs, ann_layers) if c.kernel.shape == a.kernel.shape]
    return pairs


def _standardized(kernels):
    parts = []
    for k in kernels:
        k = np.asarray(k, dtype=np.float64).ravel()
        s = k.std()
        parts.append((k - k.mean()) / s if s > 0 else k - k.mean())
    return np.concatenate(parts)


def _panel(ax, x, title, stats):
    lo, hi = np.quantile(x, [0.002, 0.998])
    ax.hist(x, bins=80, range=(lo, hi), density=True, color="0.75", edgecolor="none")
    grid = np.linspace(lo, hi, 400)
    g, lap = stats["gaussian"], stats["laplace"]
    ax.plot(grid, np.exp(-(grid - g["mu"]) ** 2 / (2 * g["sigma"] ** 2)) / math.sqrt(2 * math.pi * g["sigma"] ** 2),
            color="tab:blue", lw=1.5, label=f"Gaussian μ={g['mu']:.3g} σ={g['sigma']:.3g}  ll={g['loglik']:.3f}")
    ax.plot(grid, np.exp(-np.abs(grid - lap["m"]) / lap["b"]) / (2 * lap["b"]),
            color="tab:red", lw=1.5, label=f"Laplace m={lap['m']:.3g} b={lap['b']:.3g}  ll={lap['loglik']:.3f}")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("weight value" + (" (standardized per layer)" if "standardized" in title else ""))
    ax.set_ylabel("density")
    ax.legend(fontsize=7)


def weight_figure(cnn, ann, path, title):
    """Draws the 2x2 figure; returns rows of statistics [(panel, layers, stats)] or None."""
    pairs = layer_weights(cnn, ann)
    if not pairs:
        return None
    spatial = [p for p in pairs if p[2].shape[0] * p[2].shape[1] > 1] or pairs  # not a 1x1 projection
    middle = spatial[len(spatial) // 2]
    panels = [
        ("CNN", f"layer {middle[0]}", np.asarray(middle[1], np.float64).ravel()),
        ("ANN", f"layer {middle[0]}", np.asarray(middle[2], np.float64).ravel()),
        ("CNN", f"{len(pairs)} layers, each standardized", _standardized([p[1] for p in pairs])),
        ("ANN", f"{len(pairs)} layers, each standardized", _standardized([p[2] for p in pairs])),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    rows = []
    for ax, (net, what, x) in zip(axes.ravel(), panels):
        stats = describe(x)
        kind = "conv" if net == "CNN" else "adder"
        _panel(ax, x, f"{net} {kind} weights: {what}", stats)
        rows.append((net, what, stats))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return rows


def _load(path):
    import keras
    import adder_tf.layers  # noqa: F401  (registers the custom layers)
    import adder_tf.models  # noqa: F401  (registers AdderModel)
    import adder_tf.layers.binary  # noqa: F401
    return keras.saving.load_model(path, compile=False)


def _first_with(group, *names):
    for run in group.runs:
        paths = [os.path.join(run.path, n) for n in names]
        if all(os.path.exists(p) for p in paths):
            return run, paths
    return None, None


def weight_sources(groups):
    """[(dataset, arch, label, cnn .keras, ann .keras, run folders)] to compare."""
    out = []
    for dataset, arch in sorted({(g["dataset"], g["arch"]) for g in groups}, key=str):
        def chosen(method):
            g, _ = tables.pick(groups, *tables._method_where(dataset, arch, method))
            return g
        cnn, ann = chosen("cnn"), chosen("ann")
        if cnn is not None and ann is not None:
            rc, pc = _first_with(cnn, "student.keras")
            ra, pa = _first_with(ann, "student.keras")
            if rc is not None and ra is not None:
                out.append((dataset, arch, "cnn_vs_ann", pc[0], pa[0], [rc.path, ra.path]))
        for method in ("pkkd", "kd", "mmd"):
            g = chosen(method)
            if g is None:
                continue
            run, paths = _first_with(g, "teacher.keras", "student.keras")
            if run is not None:
                out.append((dataset, arch, f"{method}_teacher_vs_student", paths[0], paths[1], [run.path]))
                break
    return out


def weight_histograms(groups, out_dir, root=None, warn=print):
    """PNG files and a Markdown section with the fitted parameters."""
    written, rows = [], []
    for dataset, arch, label, cnn_path, ann_path, folders in weight_sources(groups):
        try:
            cnn, ann = _load(cnn_path), _load(ann_path)
        except Exception as e:  # noqa: BLE001 - one unreadable model must not sink the report
            warn(f"warning: weight histogram {dataset}/{arch}/{label}: cannot load a model ({type(e).__name__}: {e})")
            continue
        path = os.path.join(out_dir, f"weights_{_slug(dataset, arch, label)}.png")
        where = ", ".join(run_name(f, root) for f in folders)
        stats = weight_figure(cnn, ann, path, f"{arch} on {dataset}, {label.replace('_', ' ')} ({where})")
        if stats is None:
            warn(f"warning: weight histogram {dataset}/{arch}/{label}: no adder layers to compare")
            continue
        written.append(path)
        for net, what, s in stats:
            g, lap = s["gaussian"], s["laplace"]
            rows.append([os.path.basename(path), net, what, s["n"],
                         f"{g['mu']:.3g}, {g['sigma']:.3g}", f"{g['loglik']:.4f}",
                         f"{lap['m']:.3g}, {lap['b']:.3g}", f"{lap['loglik']:.4f}",
                         f"{s['kurtosis']:.2f}", s["better"]])
    if not rows:
        return written, None
    header = ["figure", "net", "weights", "n", "Gaussian μ, σ", "Gaussian mean log-lik",
              "Laplace m, b", "Laplace mean log-lik", "excess kurtosis", "better fit"]
    section = "\n".join([
        "## Weight distributions", "",
        "Maximum-likelihood fits to the filters of the CNN's conv layers and the ANN's adder "
        "layers of the same names (all but the stem conv and the classifier). Mean log-likelihood "
        "is per weight (nats; higher fits better); excess kurtosis is 0 for a Gaussian and 3 for "
        "a Laplace distribution. AdderNet (Chen et al. 2020) reports Gaussian-like CNN and "
        "Laplacian-like ANN weights; adder filters start from N(0, 1).", "",
        markdown_blocks.table(header, rows)])
    return written, section
