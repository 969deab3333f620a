"""Operation counts and energy per image at inference, from the built Keras model.

    python -m adder_tf.opcount --arch=resnet20 --method=ann --dataset=cifar10 [--json]

Without --json: a per-layer table. With --json: the last line is a JSON
object with mul, add, xnor and energy_pj (and the breakdown).

Conventions (they reproduce the paper's tables; docs/opcount.md):

* a convolution or dense MAC = 1 multiplication + 1 addition (the paper's
  CNN #Mul = #Add; with a bias, K products need exactly K additions);
* an adder MAC = 2 additions (the subtraction and the accumulation; |.| is a
  sign-bit clear), 0 multiplications;
* a binary MAC = 1 XNOR + 1 addition (its share of the popcount
  accumulation), as AdderNet's Table 1 counts its BNN rows (#Add = the
  CNN's);
* padded window positions count like the others (a "same" 3x3 window is
  always 9 taps);
* BatchNorm, ReLU, pooling, residual additions and the binary layer's
  per-channel alpha are not in the totals (the papers leave them out; at
  inference BatchNorm folds into a preceding convolution, and alpha into
  the BatchNorm that follows). They are reported apart under "not_counted".

Energy: 45 nm figures of Horowitz (ISSCC 2014, "Computing's energy
problem"): 32-bit float multiplication 3.7 pJ, 32-bit float addition 0.9 pJ.
Horowitz has no 1-bit entry; an XNOR, with its share of the popcount, is
charged as his cheapest arithmetic entry, an 8-bit integer addition
(0.03 pJ), which bounds it from above. The binary layers' popcount additions
are inside that charge and not charged again as float additions.
"""
import argparse
import json
import sys

from adder_tf.errors import UserError

DATASETS = {  # input shape, classes
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "imagenet2012": ((224, 224, 3), 1000),
    "mnist": ((28, 28, 1), 10),
    "digits": ((8, 8, 1), 10),
}
ENERGY_PJ = {"fp32_mul": 3.7, "fp32_add": 0.9, "xnor": 0.03}
ENERGY_SOURCE = ("Horowitz, ISSCC 2014, 45 nm: fp32 mul 3.7 pJ, fp32 add 0.9 pJ; "
                 "XNOR (+ popcount share) charged as an 8-bit int add, 0.03 pJ")
COUNTED = ("mul", "add", "xnor")
NOT_COUNTED = ("bn_mul", "bn_add", "scale_mul", "pool_add", "pool_mul", "pool_cmp",
               "residual_add")


class LayerCount:
    """Counts of one layer; `kind` is conv, dense, adder, binary or other."""

    def __init__(self, name, kind, shape, macs=0, **counts):
        self.name, self.kind, self.shape, self.macs = name, kind, shape, macs
        self.counts = {k: 0 for k in COUNTED + NOT_COUNTED}
        self.counts.update(counts)


class OpCount:
    """Per-layer counts of a model and their totals (per image, inference)."""

    def __init__(self, layers):
        self.layers = layers

    def total(self, key):
        return sum(l.counts[key] for l in self.layers)

    @property
    def mul(self):
        return self.total("mul")

    @property
    def add(self):
        return self.total("add")

    @property
    def xnor(self):
        return self.total("xnor")

    @property
    def popcount_add(self):
        return sum(l.counts["add"] for l in self.layers if l.kind == "binary")

    @property
    def energy_pj(self):
        return (ENERGY_PJ["fp32_mul"] * self.mul
                + ENERGY_PJ["fp32_add"] * (self.add - self.popcount_add)
                + ENERGY_PJ["xnor"] * self.xnor)

    def as_dict(self):
        return {"mul": self.mul, "add": self.add, "xnor": self.xnor,
                "energy_pj": round(self.energy_pj, 1),
                "energy_uj": round(self.energy_pj * 1e-6, 3),
                "add_fp32": self.add - self.popcount_add,
                "add_popcount": self.popcount_add,
                "not_counted": {k: self.total(k) for k in NOT_COUNTED},
                "energy_source": ENERGY_SOURCE}


def _prod(values):
    out = 1
    for v in values:
        out *= int(v)
    return out


def _window_macs(layer):
    kh, kw, c_in, c_out = (int(d) for d in layer.kernel.shape)
    out = layer.output.shape
    return _prod(out[1:-1]) * c_out * kh * kw * c_in


def count_layer(layer):
    """LayerCount of one built layer of a functional model."""
    import keras
    from adder_tf.layers.adder import AdderConv2D
    from adder_tf.layers.binary import BinaryConv2D

    name, cls = layer.name, type(layer).__name__
    if isinstance(layer, keras.layers.InputLayer):
        return None
    shape = tuple(layer.output.shape[1:])
    size = _prod(shape)
    if isinstance(layer, AdderConv2D):
        macs = _window_macs(layer)
        return LayerCount(name, "adder", shape, macs, add=2 * macs)
    if isinstance(layer, BinaryConv2D):
        macs = _window_macs(layer)
        return LayerCount(name, "binary", shape, macs, xnor=macs, add=macs, scale_mul=size)
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.Conv2DTranspose):
        macs = _window_macs(layer)
        return LayerCount(name, "conv", shape, macs, mul=macs, add=macs)
    if isinstance(layer, keras.layers.Dense):
        macs = _prod(layer.kernel.shape) * _prod(layer.input.shape[1:-1])
        return LayerCount(name, "dense", shape, macs, mul=macs, add=macs)
    if isinstance(layer, keras.layers.BatchNormalization):
        return LayerCount(name, "other", shape, bn_mul=size, bn_add=size)
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.GlobalMaxPooling2D)):
        window = _pool_window(layer)
        return LayerCount(name, "other", shape, pool_cmp=size * (window - 1))
    if isinstance(layer, (keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D)):
        window = _pool_window(layer)
        return LayerCount(name, "other", shape, pool_add=size * (window - 1), pool_mul=size)
    if isinstance(layer, keras.layers.Add):
        return LayerCount(name, "other", shape, residual_add=size * (len(layer.input) - 1))
    if layer.weights:
        raise ValueError(f"opcount does not know how to count layer {name!r} ({cls})")
    return LayerCount(name, "other", shape)   # ReLU, Flatten, ...: free


def _pool_window(layer):
    import keras
    if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
        return _prod(layer.input.shape[1:-1])
    return _prod(layer.pool_size)


def count_model(model):
    """OpCount of a built functional model."""
    return OpCount([c for c in (count_layer(l) for l in model.layers) if c is not None])


def count_arch(arch, method, dataset):
    """Build the network that `method` deploys and count it."""
    from adder_tf.config import FLAVOUR_OF
    from adder_tf.models import build_model
    input_shape, classes = DATASETS[dataset]
    return count_model(build_model(arch, FLAVOUR_OF[method], input_shape, classes))


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_table(result, title=""):
    rows = [("layer", "kind", "output", "MACs", "mul", "add", "xnor")]
    for l in result.layers:
        if l.kind == "other":
            continue
        c = l.counts
        rows.append((l.name, l.kind, "x".join(str(d) for d in l.shape), f"{l.macs:,}",
                     f"{c['mul']:,}", f"{c['add']:,}", f"{c['xnor']:,}"))
    rows.append(("total", "", "", "", f"{result.mul:,}", f"{result.add:,}", f"{result.xnor:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title] if title else []
    for i, r in enumerate(rows):
        if i == len(rows) - 1 or i == 1:
            lines.append("  ".join("-" * w for w in widths))
        lines.append("  ".join(v.ljust(w) if j < 3 else v.rjust(w)
                               for j, (v, w) in enumerate(zip(r, widths))))
    nc = {k: result.total(k) for k in NOT_COUNTED}
    lines.append(f"totals: mul {_human(result.mul)}, add {_human(result.add)}, "
                 f"xnor {_human(result.xnor)}; energy {result.energy_pj / 1e6:.3f} uJ per image")
    lines.append("not in the totals: " + ", ".join(f"{k} {_human(v)}" for k, v in nc.items() if v))
    lines.append(f"energy: {ENERGY_SOURCE}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def parse_args(argv):
    from adder_tf.config import ARCHS, FLAVOUR_OF
    p = _Parser(prog="python -m adder_tf.opcount",
                description="Multiplications, additions and XNORs per image at inference.")
    p.add_argument("--arch", required=True, help=f"one of {', '.join(ARCHS)}")
    p.add_argument("--method", default="cnn", help=f"one of {', '.join(FLAVOUR_OF)}")
    p.add_argument("--dataset", default="cifar10", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--json", action="store_true", help="last line: a JSON object")
    args = p.parse_args(argv)
    for name, choices in (("arch", ARCHS), ("method", tuple(FLAVOUR_OF)), ("dataset", tuple(DATASETS))):
        value = getattr(args, name)
        if value not in choices:
            raise UserError(f"--{name}={value!r} is not one of {', '.join(choices)}")
    return args


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        import os
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        result = count_arch(args.arch, args.method, args.dataset)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    title = f"{args.arch} {args.method} {args.dataset} (per image, inference)"
    if args.json:
        out = {"arch": args.arch, "method": args.method, "dataset": args.dataset}
        out.update(result.as_dict())
        print(json.dumps(out))
    else:
        print(format_table(result, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
