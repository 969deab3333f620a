"""Find finished runs (results.json) under a folder and group the ones that differ only by seed.

A group's key is the run's whole config except the seed and the settings that
say where things are, how they are shown or how the same maths is run
(folders, strategy, verbosity, XLA), so two runs that trained with different
recipes never share a group. Accuracies
are fractions in results.json; a group gives mean and sample standard
deviation (ddof = 1; 0 for a single run) over its seeds.
"""
import dataclasses
import json
import math
import os
import sys

from adder_tf.config import TEACHER_METHODS
from adder_tf.errors import UserError

# Config entries that do not change what is trained.
IGNORED = frozenset({"seed", "model_dir", "data_dir", "data_path", "teacher_path",
                     "strategy", "verbose", "debug", "jit_compile"})
# Entries that only matter when the method has a teacher.
TEACHER_ONLY = ("teacher", "feature_loss", "feature_norm", "alpha", "beta", "temperature")


@dataclasses.dataclass
class Run:
    path: str      # the run folder (where results.json is)
    results: dict

    @property
    def config(self):
        return self.results.get("config") or {}

    def get(self, name, default=None):
        """A config setting, falling back to the top level of results.json."""
        if name in self.config:
            return self.config[name]
        return self.results.get(name, default)

    @property
    def seed(self):
        return self.results.get("seed", self.config.get("seed"))


@dataclasses.dataclass
class Stat:
    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values):
        values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not values:
            return None
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        return cls(mean, std, n)


@dataclasses.dataclass
class Group:
    key: tuple
    runs: list

    @property
    def settings(self):
        return dict(self.key)

    def __getitem__(self, name):
        return self.settings.get(name)

    @property
    def n(self):
        return len(self.runs)

    @property
    def seeds(self):
        return sorted(r.seed for r in self.runs if r.seed is not None)

    @property
    def has_teacher(self):
        return self["method"] in TEACHER_METHODS

    @property
    def teacher_mode(self):
        if not self.has_teacher:
            return None
        modes = {(r.results.get("teacher") or {}).get("mode") or r.get("teacher") for r in self.runs}
        return modes.pop() if len(modes) == 1 else "mixed"

    @property
    def repeated_seeds(self):
        seeds = [r.seed for r in self.runs]
        return sorted({s for s in seeds if s is not None and seeds.count(s) > 1})

    def stat(self, who="student", metric="top1"):
        """Stat of e.g. ('student', 'top1') over the seeds, or None."""
        return Stat.of([(r.results.get(who) or {}).get(metric) for r in self.runs])

    @property
    def epochs(self):
        done = {r.results.get("epochs_completed", r.get("epochs")) for r in self.runs}
        return done.pop() if len(done) == 1 else f"{min(done)}-{max(done)}"

    def matches(self, **want):
        return all(_same(self[k], v) for k, v in want.items())


def _same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def run_name(path, root=None):
    """A run's folder relative to --runs; its own name when --runs is the run itself."""
    if not root:
        return path
    rel = os.path.relpath(path, root)
    return os.path.basename(os.path.abspath(path)) if rel == "." else rel


def find_results(root):
    """Every results.json under root (recursively), sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        if "results.json" in files:
            found.append(os.path.join(folder, "results.json"))
    return sorted(found)


def load_runs(root, warn=None):
    """Runs under root; a results.json that cannot be read is skipped with a warning."""
    if not root:
        raise UserError("--runs is required: a folder holding run folders with results.json")
    if not os.path.isdir(root):
        raise UserError(f"--runs {root}: no such folder")
    warn = warn or (lambda message: print(message, file=sys.stderr))
    runs = []
    for path in find_results(root):
        try:
            with open(path) as f:
                results = json.load(f)
            if not isinstance(results, dict) or "student" not in results:
                raise ValueError("no 'student' entry")
        except (OSError, ValueError) as e:
            warn(f"warning: skipping {path}: {e}")
            continue
        runs.append(Run(os.path.dirname(path), results))
    if not runs:
        raise UserError(f"no results.json under {root} (train with train/main.py --model_dir=...)")
    return runs


def group_key(run):
    settings = {k: v for k, v in run.config.items() if k not in IGNORED}
    for name in ("method", "arch", "dataset"):
        settings.setdefault(name, run.results.get(name))
    if settings.get("method") not in TEACHER_METHODS:
        for name in TEACHER_ONLY:  # a CNN's alpha does nothing: don't split groups on it
            settings.pop(name, None)
    elif "teacher" not in settings and run.results.get("teacher"):
        settings["teacher"] = run.results["teacher"].get("mode")
    return tuple(sorted((k, _hashable(v)) for k, v in settings.items()))


def _hashable(value):
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def group_runs(runs):
    """Groups of runs that differ only by seed, in a stable order."""
    groups = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    out = [Group(key, sorted(members, key=lambda r: (r.seed is None, r.seed, r.path)))
           for key, members in groups.items()]
    return sorted(out, key=_order)


_DATASET_ORDER = ("cifar10", "cifar100", "imagenet2012", "mnist", "digits", "npz")
_METHOD_ORDER = ("cnn", "bnn", "ann", "kd", "mmd", "pkkd")


def _rank(value, order):
    return (order.index(value), "") if value in order else (len(order), str(value))


def _order(group):
    return (_rank(group["dataset"], _DATASET_ORDER), str(group["arch"]),
            _rank(group["method"], _METHOD_ORDER), str(group["feature_loss"]),
            str(group["teacher"]), float(group["alpha"] or 0), float(group["beta"] or 0),
            str(group.key))


def distinguishing(groups):
    """For each group, the settings that tell it apart from groups that look the same
    in the summary table (same dataset, arch, method, feature loss, teacher, weights, epochs)."""
    shown = ("dataset", "arch", "method", "feature_loss", "teacher", "alpha", "beta", "epochs")
    buckets = {}
    for g in groups:
        buckets.setdefault(tuple(str(g[k]) for k in shown), []).append(g)
    out = {}
    for members in buckets.values():
        keys = sorted({k for g in members for k in g.settings})
        differ = [k for k in keys if len({str(g[k]) for g in members}) > 1] if len(members) > 1 else []
        for g in members:
            out[id(g)] = ", ".join(f"{k}={g[k]}" for k in differ)
    return out
