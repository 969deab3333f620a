"""A plain Keras CNN -> its adder twin (to_adder) -> PKKD on the bundled digits.

    python examples/pkkd_digits.py [--epochs 30] [--out /tmp/pkkd_digits]
"""
import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits

import adder_tf
from adder_tf.optim import AdderSGD


def cnn(num_classes=10):
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, filters in enumerate((16, 32, 32)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="fc")(x), name="cnn")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", default="/tmp/pkkd_digits")
    args = p.parse_args()
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1437], order[1437:]

    teacher = cnn()
    student = adder_tf.to_adder(teacher)          # conv1, conv2 -> AdderConv2D; names kept
    pkkd = adder_tf.distill.PKKD(teacher, student, alpha=1.0, beta=1.0)   # taps: conv1, conv2
    lr = keras.optimizers.schedules.CosineDecay(0.05, args.epochs * 23)   # 23 batches per epoch
    pkkd.compile(optimizer=AdderSGD(lr), teacher_optimizer=AdderSGD(lr, eta=0.0))
    # fit re-estimates the student's BatchNorm statistics before each validation and at the end
    pkkd.fit(x[train], y[train], batch_size=64, epochs=args.epochs, verbose=2,
             validation_data=(x[test], y[test]))
    results = pkkd.evaluate(x[test], y[test], verbose=0, return_dict=True)
    print(f"student (ANN) top-1 {results['top1']:.4f}, teacher (CNN) {results['teacher_top1']:.4f}")
    pkkd.student.save(f"{args.out}.keras")        # an AdderModel: load_model reads it (import adder_tf.models)


if __name__ == "__main__":
    main()
