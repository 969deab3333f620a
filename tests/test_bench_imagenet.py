"""The bench's ImageNet sections, end to end in their smoke mode (fresh process).

The adder layer shapes the bench derives from adder_tf.models are checked
against ResNet-18 and ResNet-50 as He et al. (2016, Table 1) lay them out,
written out here layer by layer.
"""
import collections
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench", "adder_bench.py")
STAGES = ((64, 56), (128, 28), (256, 14), (512, 7))   # width, output side at 224x224


def bench(*args, timeout=900):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, BENCH, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def resnet18_layers():
    """(h, w, c_in, c_out, kernel, stride, padding) of every adder layer of ResNet-18:
    two 3x3 per BasicBlock, two blocks a stage; the first block of stages 2-4 strides
    its 3x3 (on the input zero-padded by one, "valid") and has a 1x1 stride-2 projection."""
    layers = []
    for i, (width, side) in enumerate(STAGES):
        if i == 0:
            layers += [(side, side, width, width, 3, 1, "same")] * 4
            continue
        c_in, side_in = STAGES[i - 1][0], 2 * side
        layers += [(side_in + 2, side_in + 2, c_in, width, 3, 2, "valid"),
                   (side_in, side_in, c_in, width, 1, 2, "same")]
        layers += [(side, side, width, width, 3, 1, "same")] * 3
    return layers


def resnet50_layers():
    """The same for ResNet-50: bottlenecks 1x1 (w) - 3x3 (w) - 1x1 (4w), [3, 4, 6, 3]
    a stage, the stride on the 3x3 ("same"), a 1x1 projection in each stage's first block."""
    layers, c_in, side_in = [], 64, 56
    for (width, side), blocks in zip(STAGES, (3, 4, 6, 3)):
        stride = side_in // side
        for block in range(blocks):
            s, h = (stride, side_in) if block == 0 else (1, side)
            layers += [(h, h, c_in, width, 1, 1, "same"),
                       (h, h, width, width, 3, s, "same"),
                       (side, side, width, 4 * width, 1, 1, "same")]
            if block == 0:
                layers.append((h, h, c_in, 4 * width, 1, s, "same"))
            c_in = 4 * width
        side_in = side
    return layers


@pytest.fixture(scope="module")
def smoke():
    out = bench("--imagenet", "--smoke")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def layer_counts(shapes, arch):
    return collections.Counter({tuple(s[k] for k in ("h", "w", "c_in", "c_out", "kernel",
                                                     "stride", "padding")): len(s["layers"][arch])
                                for s in shapes if arch in s["layers"]})


def test_derived_shapes_are_the_papers_resnets(smoke):
    shapes = smoke["imagenet"]["shapes"]
    assert layer_counts(shapes, "resnet18") == collections.Counter(resnet18_layers())
    assert layer_counts(shapes, "resnet50") == collections.Counter(resnet50_layers())
    assert sum(map(len, (s["layers"]["resnet18"] for s in shapes if "resnet18" in s["layers"]))) == 19
    assert len(shapes) == len(set(resnet18_layers()) | set(resnet50_layers())) == 28
    one_by_one = {c for s in shapes if s["kernel"] == 1 and "resnet50" in s["layers"]
                  for c in (s["c_in"], s["c_out"])}
    assert one_by_one == {64, 128, 256, 512, 1024, 2048}
    # With the stem (7x7x3x64 at 112x112) and the classifier, the published
    # totals: ResNet-18 1.82G multiply-accumulates, ResNet-50 (v1.5) 4.09G.
    stem_and_fc = {"resnet18": 112 * 112 * 49 * 3 * 64 + 512 * 1000,
                   "resnet50": 112 * 112 * 49 * 3 * 64 + 2048 * 1000}
    for arch, total in (("resnet18", 1.82e9), ("resnet50", 4.09e9)):
        macs = sum(s["macs_per_image"] * len(s["layers"][arch]) for s in shapes
                   if arch in s["layers"])
        assert abs(macs + stem_and_fc[arch] - total) < 0.01 * total, (arch, macs)


def check_pair(timing, base, other):
    assert timing["rounds"] == 1
    assert timing[f"{base}_ms"] > 0 and timing[f"{other}_ms"] > 0
    # one round: the ratio is that round's adder time over its conv time
    assert math.isclose(timing["ratio"], timing[f"{other}_ms"] / timing[f"{base}_ms"],
                        rel_tol=0.01, abs_tol=2e-3), timing


def test_smoke_runs_every_section(smoke):
    env, res = smoke["env"], smoke["imagenet"]
    assert {"model", "vector_flags"} <= set(env["cpu"])
    if os.path.exists(os.path.join(ROOT, ".git")):   # the JSON names the code it measured
        def git(*args):
            return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        assert env["source"] == {
            "commit": git("rev-parse", "HEAD"),
            "local_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}
    if os.path.exists("/proc/stat"):   # steal is measured wherever the system counts it
        assert set(env["machine_load"]) == {"load_1min_start", "load_1min_end", "steal_percent"}
    assert res["smoke"] is True and res["image_size"] == 224
    kinds = {(r["kernel"], r["stride"], r["padding"]) for r in res["layers"]}
    assert kinds == {(3, 1, "same"), (3, 2, "valid"), (3, 2, "same"), (1, 1, "same"),
                     (1, 2, "same")}
    for row in res["layers"]:
        assert set(row) >= {"name", "fwd_bwd_b2", "fwd_b1", "fwd_b2"}
        for key in ("fwd_bwd_b2", "fwd_b1", "fwd_b2"):
            check_pair(row[key], "conv", "adder")
    assert [(r["arch"], r["batch"], r["size"]) for r in res["inference"]] == [
        ("resnet18", 1, 224), ("resnet50", 1, 224)]
    for row in res["inference"]:
        check_pair(row, "cnn", "ann")
    step = res["train_step"]
    assert (step["arch"], step["batch"], step["size"]) == ("resnet18", 2, 64)
    check_pair(step, "cnn", "ann")
    assert set(res["worst"]) == {"fwd_bwd_b2", "fwd_b1", "fwd_b2", "inference"}
    assert res["worst"]["inference"]["ratio"] == max(r["ratio"] for r in res["inference"])
    assert set(res["seconds"]) == {"setup", "layers", "inference", "train_step"}


@pytest.mark.parametrize("args, culprit", [(["--smoke"], "--smoke"),
                                           (["--imagenet", "--budget_minutes=0"],
                                            "--budget_minutes")])
def test_bad_options_are_refused_in_one_line(args, culprit):
    out = bench(*args, timeout=300)
    assert out.returncode != 0
    errors = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and culprit in errors[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr


def test_steal_share_counts_the_eighth_field_of_proc_stat(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from bench_common import load_between, machine_load

    def snapshot(line):
        path = tmp_path / "stat"
        path.write_text(line + "\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345\n")
        return machine_load(str(path))
    #                  user nice system idle iowait irq softirq steal guest guest_nice
    start = snapshot("cpu  100 0 50 800 0 0 0 10 0 0")
    end = snapshot("cpu  160 0 60 820 0 0 0 20 5 0")
    assert start["jiffies"] == [100, 0, 50, 800, 0, 0, 0, 10, 0, 0]
    # 60 + 10 + 20 + 10 jiffies passed, 10 of them stolen (guest time is inside user)
    assert load_between(start, end)["steal_percent"] == 10.0
    assert set(load_between(start, end)) == {"load_1min_start", "load_1min_end", "steal_percent"}
    no_proc = machine_load(str(tmp_path / "missing"))
    assert no_proc["jiffies"] is None
    assert "steal_percent" not in load_between(start, no_proc)
