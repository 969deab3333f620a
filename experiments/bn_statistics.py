"""Do an ANN's BatchNorm statistics describe it? Measured on the bundled digits.

    python experiments/bn_statistics.py --setting=fit3 [--epochs 20] [--json out.json]

Settings (batch 64, AdderSGD at a constant learning rate, seed 0):
  fit3    a 3-layer Keras CNN -> adder_tf.to_adder -> plain model.fit (20 epochs)
  resnet8 build_model('resnet8', 'adder') -> plain model.fit (15 epochs)
  pkkd    a stem conv + 2 convs CNN -> to_adder -> PKKD(alpha=1, beta=1) (6 epochs)
  cnn3    fit3's CNN itself, for comparison (20 epochs)

For every BatchNorm that follows an adder layer it reports:
  shift  the per-step change of the channel's mean on a fixed probe batch, in
         units of the channel's std (median over steps, mean over channels);
  error  |moving mean - the mean over the training set with today's weights|,
         in units of that std, at the end of training (and |log| of the
         ratio of the moving std to today's std);
and the test accuracy as trained (`evaluate`) and after re-estimating the
statistics, and the last epoch's training accuracy. The probe runs the
network in training mode and restores every moving statistic afterwards,
so measuring changes nothing.
"""
import argparse
import json

import keras
import numpy as np
from sklearn.datasets import load_digits

import adder_tf
from adder_tf import _keras_internals as internals
from adder_tf.batchnorm import reestimate
from adder_tf.convert import batchnorms_after
from adder_tf.layers.adder import AdderConv2D
from adder_tf.optim import AdderSGD

SETTINGS = {"fit3": 20, "resnet8": 15, "pkkd": 6, "cnn3": 20}


def digits():
    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:1437]], y[order[:1437]], x[order[1437:]], y[order[1437:]]


def cnn(widths, name):
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, (filters, stride) in enumerate(widths):
        x = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name=name)


def adder_pairs(network):
    """(adder layer, BatchNorm right after it) of a functional network; for a CNN, its
    window layers but the first (the layers an ANN would make adder layers)."""
    adders = [l for l in network.layers if isinstance(l, AdderConv2D)] or [
        l for l in network.layers if isinstance(l, keras.layers.Conv2D)][1:]
    pairs = []
    for adder in adders:
        for name in batchnorms_after(network, {adder.name}):
            pairs.append((adder, network.get_layer(name)))
    return pairs


class StatisticsProbe(keras.callbacks.Callback):
    """The channel means of every adder output on a fixed batch, after every step."""

    def __init__(self, network, probe):
        super().__init__()
        self.network, self.probe = network, probe
        self.pairs = adder_pairs(network)
        self.view = keras.Model(network.inputs, [a.output for a, _ in self.pairs])
        self.shifts, self._last = [], None

    def moments(self, images):
        bns = [l for l in internals.flatten_layers(self.network) if isinstance(l, keras.layers.BatchNormalization)]
        saved = [(v, v.numpy()) for l in bns for v in (l.moving_mean, l.moving_variance)]
        outputs = self.view(images, training=True)
        for v, value in saved:
            v.assign(value)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [(np.asarray(o).mean(axis=(0, 1, 2)), np.asarray(o).std(axis=(0, 1, 2)) + 1e-12)
                for o in outputs]

    def on_train_batch_end(self, batch, logs=None):
        now = self.moments(self.probe)
        if self._last is not None:
            self.shifts.append(np.mean([np.mean(np.abs(m - m0) / s)
                                        for (m, s), (m0, _) in zip(now, self._last)]))
        self._last = now

    def moving_errors(self, images):
        """(mean error in stds, |log std ratio|) of the moving statistics vs today's."""
        true = self.moments(images)
        everyone = [l for l in self.network.layers if isinstance(l, keras.layers.BatchNormalization)]
        view = keras.Model(self.network.inputs, [l.input for l in everyone])
        saved = [(v, v.numpy()) for l in everyone for v in (l.moving_mean, l.moving_variance)]
        outs = view(images, training=True)
        for v, value in saved:
            v.assign(value)
        self.per_layer = {l.name: (round(float(np.mean(np.abs(l.moving_mean.numpy() - np.asarray(o).mean((0, 1, 2))) / (np.asarray(o).std((0, 1, 2)) + 1e-12))), 3),
                                   round(float(np.mean(np.abs(0.5 * np.log(l.moving_variance.numpy() / (np.asarray(o).var((0, 1, 2)) + 1e-12))))), 3))
                          for l, o in zip(everyone, outs)}
        mean = [np.mean(np.abs(bn.moving_mean.numpy() - m) / s) for (_, bn), (m, s) in zip(self.pairs, true)]
        spread = [np.mean(np.abs(0.5 * np.log(bn.moving_variance.numpy() / s ** 2)))
                  for (_, bn), (_, s) in zip(self.pairs, true)]
        return float(np.mean(mean)), float(np.mean(spread))


def run(setting, epochs, lr, seed=0):
    keras.utils.set_random_seed(seed)
    x_train, y_train, x_test, y_test = digits()
    if setting in ("fit3", "cnn3"):
        network = cnn([(16, 1), (32, 1), (32, 2)], "cnn3")
        network = adder_tf.to_adder(network) if setting == "fit3" else network
    elif setting == "resnet8":
        network = adder_tf.models.build_model("resnet8", "adder", (8, 8, 1), 10)
    else:
        teacher = cnn([(16, 1), (32, 1), (32, 1)], "teacher")
        network = adder_tf.to_adder(teacher, name="student")
    probe = StatisticsProbe(network, x_train[:256])
    if setting == "pkkd":
        model = adder_tf.distill.PKKD(teacher, network, alpha=1.0, beta=1.0)
        model.compile(optimizer=AdderSGD(lr), teacher_optimizer=AdderSGD(lr, eta=0.0))
        accuracy_key = "top1"
    else:
        model = network
        model.compile(optimizer=AdderSGD(lr), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        accuracy_key = "accuracy"
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0,
                        callbacks=[probe])
    error, spread_error = probe.moving_errors(x_train)
    network.compile(metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    as_trained = network.evaluate(x_test, y_test, verbose=0)[1]
    reestimate(network, x_train, steps=23, batch_size=64)
    reestimated = network.evaluate(x_test, y_test, verbose=0)[1]
    filters = np.concatenate([a.kernel.numpy().ravel() for a, _ in probe.pairs]) if probe.pairs \
        else np.zeros(1)
    return {"setting": setting, "epochs": epochs, "lr": lr, "seed": seed,
            "train_top1": float(history.history[accuracy_key][-1]),
            "test_top1_as_trained": float(as_trained), "test_top1_reestimated": float(reestimated),
            "shift_median": float(np.median(probe.shifts)),
            "shift_last_epoch": float(np.median(probe.shifts[-23:])),
            "moving_mean_error": error, "moving_std_log_error": spread_error, "per_batchnorm": probe.per_layer, "filter_rms": float(np.sqrt(np.mean(filters ** 2)))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--setting", choices=sorted(SETTINGS), default="fit3")
    p.add_argument("--epochs", type=int, default=0, help="0: the setting's default")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="")
    args = p.parse_args()
    result = run(args.setting, args.epochs or SETTINGS[args.setting], args.lr, args.seed)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
