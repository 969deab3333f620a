"""Does PKKD's feature loss collapse? Per-tap probes over the first training steps.

    python experiments/feature_collapse.py --data_dir=DIR [--steps=300] [--alpha=10 --beta=10]
        [--feature_norm=standardize|none] [--batch_size=64] [--train_examples=10000]

Trains ResNet-20 PKKD (flags/resnet20_c10.cfg's recipe: lr 0.1, kernel_conv1x1,
progressive teacher) on CIFAR-10 class folders (DIR/train/<class>/*) and, at
steps 0, 20, 100 and --steps, measures on a fixed batch of 256 test images:
L_mid, the fraction of head-output channels whose variance is below 1e-5 on
both sides, how many taps are dead (a side's spread below 1e-3 of its step-0
value), and the range of the kernel widths. Prints one JSON line per probe.
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


def _sigma(head, tap):
    if hasattr(head, "sigma_value"):
        return head.sigma_value(tap)
    kt = head.kernel_transform
    return float(np.exp(kt.log_sigma.numpy())) if kt is not None else float("nan")


def probe(trainer, images, labels, start):
    s_logits, s_taps, t_logits, t_taps = trainer.tap_outputs(images)
    _, terms = trainer.student_loss(labels, s_logits, s_taps, t_logits, t_taps)
    stds, low_var, sig_s, sig_t = [], [], [], []
    for s, t, sh, th in zip(s_taps, t_taps, trainer.student_heads, trainer.teacher_heads):
        ys = tf.reshape(sh(s), [-1, s.shape[-1]])
        yt = tf.reshape(th(t), [-1, t.shape[-1]])
        vs, vt = tf.math.reduce_variance(ys, 0), tf.math.reduce_variance(yt, 0)
        low_var.append(float(tf.reduce_mean(tf.cast((vs < 1e-5) & (vt < 1e-5), tf.float32))))
        stds.append((float(tf.reduce_mean(tf.sqrt(vs))), float(tf.reduce_mean(tf.sqrt(vt)))))
        sig_s.append(_sigma(sh, s))
        sig_t.append(_sigma(th, t))
    if not start:
        start.extend(stds)
    dead = sum(1 for (a, b), (a0, b0) in zip(stds, start)
               if not (a >= 1e-3 * a0 and b >= 1e-3 * b0))
    return {"L_mid": float(terms["mid"]), "ce": float(terms["ce"]),
            "low_var_channels": round(float(np.mean(low_var)), 4), "dead_taps": dead,
            "taps": len(stds),
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
