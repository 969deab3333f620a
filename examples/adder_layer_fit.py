"""AdderConv2D in a model of one's own, trained with plain model.fit.

    python examples/adder_layer_fit.py [--epochs 15]

AdderConv2D takes Conv2D's arguments; follow it with BatchNormalization
(adder outputs are large). Build the model as `AdderModel` instead of
`keras.Sequential` / `keras.Model`: its fit re-estimates the BatchNorm
statistics with the trained weights, which moving averages cannot follow
under the adaptive learning rate. AdderSGD applies AdderNet's adaptive
learning rate to the adder filters it finds by itself.
"""
import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits

from adder_tf import AdderConv2D
from adder_tf.models import AdderModel
from adder_tf.optim import AdderSGD


def ann(num_classes=10):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)  # first layer: a real conv
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for strides in (1, 2):
        x = AdderConv2D(32, 3, strides=strides, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return AdderModel(inputs, keras.layers.Dense(num_classes)(x), name="ann")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1437], order[1437:]

    model = ann()
    lr = keras.optimizers.schedules.CosineDecay(0.05, args.epochs * 23)   # 23 batches per epoch
    model.compile(optimizer=AdderSGD(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[train], y[train], batch_size=64, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(x[test], y[test], verbose=0)
    print(f"test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
