"""Does PKKD's feature loss collapse? Per-tap probes over the first training steps.

    python experiments/feature_collapse.py --data_dir=DIR [--steps=300] [--alpha=10 --beta=10]
        [--feature_norm=standardize|none] [--batch_size=64] [--train_examples=10000]

Trains ResNet-20 PKKD (flags/resnet20_c10.cfg's recipe: lr 0.1, kernel_conv1x1,
progressive teacher) on CIFAR-10 class folders (DIR/train/<class>/*) and, at
steps 0, 20, 100 and --steps, measures on a fixed batch of 256 test images
(each network with that batch's own BatchNorm statistics, restored after):
L_mid, the fraction of head-output channels whose variance is below 1e-5 on
both sides, how many taps are dead (a side's spread below 1e-3 of its step-0
value; counted per side and for either side), the range of the spreads,
correlations and kernel widths. Prints one JSON line per probe.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adder_tf import config as C  # noqa: E402
from adder_tf import experiment  # noqa: E402
from adder_tf.data import load_dataset  # noqa: E402
from adder_tf.distill import health  # noqa: E402


def probe(trainer, images, labels, start):
    """One probe; `start` (a list) is filled by the first call and read by the later ones.

    Everything is measured as a training step sees it: each network with the
    probe batch's own BatchNorm statistics (`health.batch_statistics`, which
    restores the moving statistics afterwards).
    """
    with health.batch_statistics(trainer):
        s_logits, s_taps, t_logits, t_taps = trainer.tap_outputs(images, training=True)
        _, terms = trainer.student_loss(labels, s_logits, s_taps, t_logits, t_taps)
        low_var = []
        for s, t, sh, th in zip(s_taps, t_taps, trainer.student_heads, trainer.teacher_heads):
            vs = tf.math.reduce_variance(tf.reshape(sh(s), [-1, s.shape[-1]]), 0)
            vt = tf.math.reduce_variance(tf.reshape(th(t), [-1, t.shape[-1]]), 0)
            low_var.append(float(tf.reduce_mean(tf.cast((vs < 1e-5) & (vt < 1e-5), tf.float32))))
    rows = health.feature_health(trainer, images, start or None)
    if not start:
        start.extend(rows)
    sig_s = [r["sigma_student"] for r in rows]
    sig_t = [r["sigma_teacher"] for r in rows]
    return {"L_mid": float(terms["mid"]), "ce": float(terms["ce"]),
            "low_var_channels": round(float(np.mean(low_var)), 4),
            "dead_taps": health.dead_taps(rows, start),
            "dead_student": health.dead_taps(rows, start, "student"),
            "dead_teacher": health.dead_taps(rows, start, "teacher"),
            "taps": len(rows),
            "student_std": [round(min(r["student_std"] for r in rows), 4),
                            round(max(r["student_std"] for r in rows), 4)],
            "teacher_std": [round(min(r["teacher_std"] for r in rows), 4),
                            round(max(r["teacher_std"] for r in rows), 4)],
            "corr": [round(min(r["corr"] for r in rows), 3), round(max(r["corr"] for r in rows), 3)],
            "log_sigma_student": [round(float(np.log(min(sig_s))), 2), round(float(np.log(max(sig_s))), 2)],
            "log_sigma_teacher": [round(float(np.log(min(sig_t))), 2), round(float(np.log(max(sig_t))), 2)]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--alpha", type=float, default=10.0)
    p.add_argument("--beta", type=float, default=10.0)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--train_examples", type=int, default=10000)
    p.add_argument("--feature_norm", default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    extra = {"feature_norm": a.feature_norm} if a.feature_norm else {}
    config = C.Config(model_dir="/tmp/feature_collapse", arch="resnet20", method="pkkd",
                      dataset="folder", data_dir=a.data_dir, alpha=a.alpha, beta=a.beta,
                      batch_size=a.batch_size, lr=0.1, epochs=1, steps_per_epoch=a.steps,
                      train_examples=a.train_examples, seed=a.seed, **extra).validate()
    keras.utils.set_random_seed(a.seed)
    data = load_dataset("folder", a.batch_size, data_dir=a.data_dir, seed=a.seed,
                        train_examples=a.train_examples)
    trainer, _ = experiment._build_trainer(config, data, a.steps)
    images, labels = next(iter(data.test.unbatch().batch(256)))
    start = []
    marks = sorted({0, 20, 100, a.steps})

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 in marks:
                print(json.dumps({"step": batch + 1, **probe(trainer, images, labels, start)}),
                      flush=True)

    print(json.dumps({"step": 0, **probe(trainer, images, labels, start)}), flush=True)
    trainer.fit(data.train.repeat(), epochs=1, steps_per_epoch=a.steps, verbose=0,
                callbacks=[Probe()])


if __name__ == "__main__":
    main()
