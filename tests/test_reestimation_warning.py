"""Adder layers trained where nothing re-estimates BatchNorm statistics say so, once.

A plain keras.Model (functional or Sequential) fitted without
`BatchNormReestimation` ends with moving averages that trail its adder
weights: the user sees one warning line (Python's default filter, whatever
the number of adder layers and epochs) naming the two remedies. Where the
library re-estimates (AdderModel, the distillers, a `ReestimatingFit`
model, the callback) or was told not to (`bn_reestimation_steps = 0`),
nothing is said.
"""
import warnings

import keras
import numpy as np
import pytest

import adder_tf
from adder_tf import batchnorm
from adder_tf.optim import AdderSGD

RNG = np.random.default_rng(0)
X = RNG.random((40, 6, 6, 1)).astype("float32")
Y = RNG.integers(0, 3, 40).astype("int32")
REMEDY = "adder_tf.batchnorm.reestimate"


def layers(adder=True):
    """conv0 -> bn0 -> conv1 -> bn1 -> conv2 -> bn2 -> logits; conv1 and conv2 adders."""
    out = []
    for i in range(3):
        conv = adder_tf.AdderConv2D if adder and i else keras.layers.Conv2D
        out += [conv(4, 3, padding="same", use_bias=False, name=f"conv{i}"),
                keras.layers.BatchNormalization(name=f"bn{i}")]
    return out + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, name="logits")]


def functional(adder=True):
    inputs = x = keras.Input((6, 6, 1))
    for layer in layers(adder):
        x = layer(x)
    return keras.Model(inputs, x)


def sequential():
    return keras.Sequential([keras.Input((6, 6, 1)), *layers()])


class Own(batchnorm.ReestimatingFit, keras.Model):
    def __init__(self):
        super().__init__()
        self.body = sequential()

    def call(self, x, training=False):
        return self.body(x, training=training)


def pkkd():
    teacher = functional(adder=False)
    return adder_tf.distill.PKKD(teacher, adder_tf.to_adder(teacher))


def compiled(model):
    """The model compiled (a distiller with its teacher's optimizer)."""
    extra = {"teacher_optimizer": "sgd"} if isinstance(model, adder_tf.distill.PKKD) else {}
    loss = {} if extra else {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    model.compile(optimizer=AdderSGD(0.05), **loss, **extra)
    return model


def fitted(model, callbacks=()):
    """fit, run on a compiled model."""
    model = compiled(model)
    return lambda: model.fit(X, Y, batch_size=16, epochs=2, verbose=0, callbacks=list(callbacks))


def lines_seen(run):
    """The warning lines naming the remedy that a user sees while `run` runs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")   # Python's own: a line once per place it is raised
        run()
    return [str(w.message) for w in caught if REMEDY in str(w.message)]


@pytest.mark.parametrize("build", [functional, sequential])
def test_a_plain_keras_model_fitted_without_reestimation_is_told_once(build):
    keras.utils.set_random_seed(0)
    lines = lines_seen(fitted(build()))
    assert len(lines) == 1, lines
    assert len(lines[0].splitlines()) == 1 and "BatchNormReestimation" in lines[0], lines[0]


def steps_off():
    model = adder_tf.to_adder(functional(adder=False))
    model.bn_reestimation_steps = 0   # the user's choice: nothing to warn about
    return fitted(model)


SILENT = {"AdderModel": lambda: fitted(adder_tf.to_adder(functional(adder=False))),
          "distiller": lambda: fitted(pkkd()),
          "ReestimatingFit subclass": lambda: fitted(Own()),
          "plain model with the callback": lambda: fitted(
              functional(), callbacks=[batchnorm.BatchNormReestimation(X)]),
          "bn_reestimation_steps 0": steps_off}


@pytest.mark.parametrize("kind", SILENT)
def test_nothing_is_said_where_the_statistics_are_reestimated(kind):
    keras.utils.set_random_seed(0)
    assert lines_seen(SILENT[kind]()) == []


def test_the_callback_says_in_one_line_when_it_cannot_read_its_data():
    keras.utils.set_random_seed(0)
    run = fitted(adder_tf.to_adder(functional(adder=False)),
                 callbacks=[batchnorm.BatchNormReestimation("images.npz")])
    with pytest.warns(UserWarning, match="not re-estimated: Keras cannot read str") as caught:
        run()
    messages = [str(w.message) for w in caught if "re-estimated" in str(w.message)]
    assert len(messages) == 1 and len(messages[0].splitlines()) == 1, messages


@pytest.mark.parametrize("kind", ["AdderModel", "distiller", "ReestimatingFit subclass"])
def test_train_on_batch_says_once_that_it_leaves_the_statistics(kind):
    keras.utils.set_random_seed(0)
    model = compiled({"AdderModel": lambda: adder_tf.to_adder(functional(adder=False)),
                      "distiller": pkkd, "ReestimatingFit subclass": Own}[kind]())
    lines = lines_seen(lambda: [model.train_on_batch(X[:16], Y[:16]) for _ in range(3)])
    assert len(lines) == 1 and "train_on_batch does not re-estimate" in lines[0], lines
