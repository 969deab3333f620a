"""How strong is distillation at each alpha = beta? Gradient norms of each loss term.

    python experiments/loss_balance.py --data_dir=DIR [--steps=100] [--batch_size=128]

ResNet-20 PKKD (default feature loss) on CIFAR-10 class folders: at step 0
and after --steps steps of training at alpha = beta = 1, on one training
batch, the gradient of each term (CE, KD, L_mid) with respect to the
student's weights, split into adder filters (whose step the adaptive
learning rate normalises: only the direction counts) and everything else
(BatchNorm, stem, classifier: the step scales with the gradient). For each
alpha = beta of Table 3, prints the share of the distillation terms in the
combined gradient. One JSON line per (step, weight).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from adder_tf import _keras_internals as internals  # noqa: E402
from adder_tf import config as C  # noqa: E402
from adder_tf import experiment  # noqa: E402
from adder_tf.data import load_dataset  # noqa: E402
from adder_tf.layers.adder import AdderConv2D  # noqa: E402

SWEEP = (0.1, 0.5, 1.0, 5.0, 10.0)


def term_gradients(trainer, images, labels):
    adder_ids = {id(l.kernel) for l in internals.flatten_layers(trainer.student) if isinstance(l, AdderConv2D)}
    variables = trainer.student.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        _, terms = trainer.student_loss(labels, *trainer.tap_outputs(images, training=True))
    grads = {k: tape.gradient(terms[k], variables) for k in ("ce", "kd", "mid")}
    split = {}
    for k, gs in grads.items():
        split[k] = {
            "adder": [g if g is not None else tf.zeros_like(v) for g, v in zip(gs, variables) if id(v) in adder_ids],
            "other": [g if g is not None else tf.zeros_like(v) for g, v in zip(gs, variables) if id(v) not in adder_ids]}
    return split, {k: float(v) for k, v in terms.items()}


def norm(gs):
    return float(tf.linalg.global_norm(gs))


def report(step, split, terms):
    for w in SWEEP:
        row = {"step": step, "alpha=beta": w, "loss_terms": {k: round(v, 4) for k, v in terms.items()}}
        for part in ("adder", "other"):
            ce, kd, mid = (split[k][part] for k in ("ce", "kd", "mid"))
            distill = [w * a + w * b for a, b in zip(kd, mid)]
            total = [c + d for c, d in zip(ce, distill)]
            row[part] = {"ce_norm": round(norm(ce), 4), "kd_norm": round(norm(kd), 4),
                         "mid_norm": round(norm(mid), 4),
                         "distill_share": round(norm(distill) / max(norm(ce) + norm(distill), 1e-12), 3),
                         "step_scale": round(norm(total) / (1 + 2 * w) / max(norm(ce), 1e-12), 3)}
        print(json.dumps(row), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--train_examples", type=int, default=10000)
    a = p.parse_args()
    config = C.Config(model_dir="/tmp/loss_balance", arch="resnet20", method="pkkd",
                      dataset="folder", data_dir=a.data_dir, alpha=1.0, beta=1.0,
                      batch_size=a.batch_size, lr=0.1, epochs=1, steps_per_epoch=a.steps,
                      train_examples=a.train_examples).validate()
    keras.utils.set_random_seed(0)
    data = load_dataset("folder", a.batch_size, data_dir=a.data_dir, seed=0,
                        train_examples=a.train_examples)
    trainer, _ = experiment._build_trainer(config, data, a.steps)
    images, labels = next(iter(data.train))
    report(0, *term_gradients(trainer, images, labels))
    trainer.fit(data.train.repeat(), epochs=1, steps_per_epoch=a.steps, verbose=0)
    report(a.steps, *term_gradients(trainer, images, labels))


if __name__ == "__main__":
    main()
