"""The paper's flagfiles: every one parses and validates, and a run made from one lands
in its table cell."""
import dataclasses
import glob
import os
import re
import sys

from adder_tf.report import paper, tables

from report_runs import FLAGS_DIR, ROOT, groups_under, write_run


# ------------------------------------------------------------------ flagfiles

def _main_module():
    sys.path.insert(0, os.path.join(ROOT, "train"))
    try:
        import main  # noqa: F401  (train/main.py: defines the flags)
    finally:
        sys.path.pop(0)
    return main


def _parse(path):
    from absl import flags
    main = _main_module()
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train/main.py", f"--flagfile={path}"])
    return main.config_from_flags()


EXPECTED = (
    [f"{a}_{d}_{m}" for a in paper.TABLE2_ARCHS for d in ("c10", "c100") for m in paper.METHODS]
    + [f"{a}_in1k_{m}" for a in paper.TABLE4_ARCHS for m in paper.METHODS]
    + [f"resnet20_c10_t1_{loss}_{mode}" for loss, _ in paper.TABLE1_ROWS for mode in ("progressive", "fixed")]
    + [f"resnet20_{d}_t3_ab{w:g}" for d in ("c10", "c100") for w in paper.TABLE3_WEIGHTS])
DATASET = {"c10": "cifar10", "c100": "cifar100", "in1k": "imagenet2012"}


def test_every_flagfile_parses_and_validates(tmp_path):
    files = sorted(glob.glob(os.path.join(FLAGS_DIR, "*.cfg")))
    names = {os.path.basename(f)[:-4] for f in files}
    assert set(EXPECTED) <= names, sorted(set(EXPECTED) - names)
    try:
        for path in files:
            name = os.path.basename(path)[:-4]
            config = _parse(path)
            if config.teacher == "fixed":  # the CNN run it names is trained first; check the rest
                assert re.fullmatch(r"runs/\w+_cnn", config.teacher_path), (name, config.teacher_path)
                dataclasses.replace(config, teacher_path=str(tmp_path)).validate()
            else:
                config.validate()
            if name not in EXPECTED:
                continue
            m = re.fullmatch(r"(vgg_small|resnet\d+)_(c10|c100|in1k)_(.+)", name)
            arch, ds, rest = m.groups()
            assert (config.arch, config.dataset) == (arch, DATASET[ds])
            assert config.model_dir == f"runs/{name}"
            with open(path) as f:
                first = f.readline()
            assert first.startswith("# ") and re.search(r"paper \d+\.\d+%", first), (name, first)
            recipe = (150, 1e-4) if ds == "in1k" else (400, 5e-4)
            assert (config.epochs, config.weight_decay, config.batch_size, config.lr,
                    config.momentum, config.eta) == (*recipe, 256, 0.1, 0.9, 0.2), name
            if rest in paper.METHODS:
                assert config.method == rest
                if rest == "pkkd":
                    w = paper.PKKD_WEIGHT[DATASET[ds]]
                    assert (config.alpha, config.beta, config.teacher) == (w, w, "progressive")
                if rest == "mmd":
                    assert (config.alpha, config.beta, config.teacher) == (0.0, 50.0, "fixed")
                    assert config.teacher_path == f"runs/{arch}_{ds}_cnn"
            elif rest.startswith("t1_"):
                loss, mode = rest[3:].rsplit("_", 1)
                assert (config.method, config.feature_loss, config.teacher) == ("pkkd", loss, mode)
                assert config.alpha == config.beta == 10.0
                if mode == "fixed":
                    assert config.teacher_path == "runs/resnet20_c10_cnn"
            else:
                w = float(rest[len("t3_ab"):])
                assert (config.method, config.alpha, config.beta) == ("pkkd", w, w)
    finally:
        from absl import flags
        flags.FLAGS.unparse_flags()

def test_flagfile_settings_fill_their_cells_without_notes(tmp_path):
    """A run made from a flagfile lands in its paper cell as the paper's setting."""
    for name, table in (("resnet20_c10_pkkd", lambda g: tables.table2(g, "cifar10")),
                        ("resnet32_c100_pkkd", lambda g: tables.table2(g, "cifar100")),
                        ("vgg_small_c10_mmd", lambda g: tables.table2(g, "cifar10")),
                        ("resnet50_in1k_pkkd", tables.table4),
                        ("resnet20_c10_t1_kernel_fixed", tables.table1),
                        ("resnet20_c100_t3_ab0.5", tables.table3)):
        cfg = _parse(os.path.join(FLAGS_DIR, name + ".cfg"))
        folder = tmp_path / name
        write_run(folder, top1=0.9, **dataclasses.asdict(cfg))
        text = table(groups_under(folder))
        assert re.search(r"90.00( / 99.00)? \[1\]", text) and "†" not in text, (name, text)
