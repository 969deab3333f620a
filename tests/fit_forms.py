"""What the fit tests share: every input form Keras's `fit` reads, each kind of model
of ours built and compiled once, and the check that a model ends with BatchNorm
statistics of its weights (within sampling noise of each adder layer's BatchNorm
input statistics on all training rows, computed by a functional sub-model)."""
import functools
import inspect
import itertools

import keras
import numpy as np
import tensorflow as tf

import adder_tf
from adder_tf.batchnorm import ReestimatingFit
from adder_tf.optim import AdderSGD


# 3 training steps per epoch, the last one short: every form's batches have the same
# (unknown) batch size, so each model traces its step once for all one-input forms.
ROWS, VALIDATION, BATCH, CLASSES = 40, 16, 16, 3
STEPS = -(-ROWS // BATCH)
ADDER_BNS = ("bn1", "bn2")   # the BatchNorms right after the two adder layers


@functools.lru_cache(maxsize=None)
def arrays(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((ROWS + VALIDATION, 6, 6, 1)).astype("float32")
    x2 = rng.random((ROWS + VALIDATION, 6, 6, 1)).astype("float32")
    y = rng.integers(0, CLASSES, ROWS + VALIDATION).astype("int32")
    return x, x2, y


def cnn(two_inputs=False, name="cnn"):
    """conv0 -> bn0 -> conv1 -> bn1 -> conv2 -> bn2 -> logits; to_adder makes conv1, conv2 adders."""
    inputs = [keras.Input((6, 6, 1), name="a")] + ([keras.Input((6, 6, 1), name="b")]
                                                   if two_inputs else [])
    x = keras.layers.Concatenate()(inputs) if two_inputs else inputs[0]
    for i in range(3):
        x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(keras.layers.BatchNormalization(name=f"bn{i}")(x))
    x = keras.layers.Dense(CLASSES, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs if two_inputs else inputs[0], x, name=name)


def joined(inputs):
    """One tensor from one input, or from two as a list, tuple or dict {"a", "b"}."""
    if isinstance(inputs, dict):
        inputs = [inputs["a"], inputs["b"]]
    if isinstance(inputs, (list, tuple)):
        return keras.ops.concatenate(list(inputs), axis=-1)
    return inputs


@keras.saving.register_keras_serializable(package="tests")
class OwnNet(ReestimatingFit, keras.Model):
    """A model of one's own with adder layers: subclassed, its own call, one or two inputs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.convs = [keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv0"),
                      adder_tf.AdderConv2D(4, 3, padding="same", use_bias=False, name="conv1"),
                      adder_tf.AdderConv2D(4, 3, padding="same", use_bias=False, name="conv2")]
        self.bns = [keras.layers.BatchNormalization(name=f"bn{i}") for i in range(3)]
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.logits = keras.layers.Dense(CLASSES, name="logits")

    def call(self, inputs, training=False):
        x = joined(inputs)
        for conv, bn in zip(self.convs, self.bns):
            x = keras.ops.relu(bn(conv(x), training=training))
        return self.logits(self.pool(x))


SPARSE_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
KINDS = ("AdderModel", "own subclass", *adder_tf.distill.__all__)


def distiller(name, teacher, student):
    """adder_tf.distill.<name> on these networks, compiled (a teacher only where it takes one)."""
    cls = getattr(adder_tf.distill, name)
    takes_teacher = "teacher" in inspect.signature(cls).parameters
    trainer = cls(teacher, student) if takes_teacher else cls(student)
    trainer.compile(optimizer=AdderSGD(0.05),
                    teacher_optimizer=AdderSGD(0.05, eta=0.0) if takes_teacher else None)
    return trainer


@functools.lru_cache(maxsize=None)
def compiled(kind, two_inputs):
    """(model fit is called on, the network whose statistics are checked, its compiled state),
    built and compiled once: `fresh` puts the state back before each use."""
    keras.utils.set_random_seed(0)
    if kind in adder_tf.distill.__all__:
        teacher = cnn(two_inputs, "teacher")
        model = distiller(kind, teacher, adder_tf.to_adder(teacher, name="student"))
        network = model.student
    else:
        model = network = {"keras": lambda: cnn(two_inputs), "own subclass": OwnNet,
                           "AdderModel": lambda: adder_tf.to_adder(cnn(two_inputs))}[kind]()
        model(np.zeros((1, 6, 6, 1), "float32") if not two_inputs else
              [np.zeros((1, 6, 6, 1), "float32")] * 2)
        model.compile(optimizer=AdderSGD(0.05), loss=SPARSE_CE)
        model.optimizer.build(model.trainable_variables)   # its slots are part of the state
    optimizers = [o for o in (model.optimizer, getattr(model, "teacher_optimizer", None)) if o]
    variables = model.variables + [v for o in optimizers for v in o.variables]
    return model, network, variables, [v.numpy() for v in variables]


def fresh(kind, two_inputs):
    """The compiled model as it was before its first fit: weights, BatchNorm statistics
    (mean 0, variance 1) and optimizer state."""
    model, network, variables, values = compiled(kind, two_inputs)
    for variable, value in zip(variables, values):
        variable.assign(value)
    return model, network


class Batches(keras.utils.PyDataset):
    """(x, y) batches by index (STEPS of them, over and over): length by __len__, by
    num_batches, or none (infinite)."""

    def __init__(self, x, y, length="len"):
        super().__init__()
        self.x, self.y, self.length = x, y, length

    def __len__(self):
        if self.length != "len":
            raise TypeError("no len(): this PyDataset gives num_batches")
        return STEPS

    @property
    def num_batches(self):
        return None if self.length == "infinite" else STEPS

    def __getitem__(self, i):
        part = slice(i % STEPS * BATCH, (i % STEPS + 1) * BATCH)
        return self.x[part], self.y[part]


def generator(x, y):
    for i in itertools.cycle(range(STEPS)):
        yield x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]


def fit_arguments(form):
    """(fit's keyword arguments, the training inputs as a single array or list, two inputs?)."""
    x, x2, y = arrays()
    tx, tx2, ty, vx, vx2, vy = x[:ROWS], x2[:ROWS], y[:ROWS], x[ROWS:], x2[ROWS:], y[ROWS:]
    several = {"list": list, "tuple": tuple, "dict": lambda pair: dict(zip("ab", pair))}
    if form in several:
        pack = several[form]
        return (dict(x=pack((tx, tx2)), y=ty, batch_size=BATCH,
                     validation_data=(pack((vx, vx2)), vy)), [tx, tx2], True)
    length, given = form.split()[-1], dict(validation_data=(vx, vy))
    return {
        "array": lambda: dict(x=tx, y=ty, batch_size=BATCH, **given),
        "sample_weight": lambda: dict(x=tx, y=ty, batch_size=BATCH, **given,
                                      sample_weight=np.linspace(0.5, 1.5, ROWS)),
        "validation_split": lambda: dict(x=x, y=y, batch_size=BATCH,
                                         validation_split=VALIDATION / len(x)),
        "tf.data": lambda: dict(x=tf.data.Dataset.from_tensor_slices((tx, ty))
                                .shuffle(ROWS, seed=0).batch(BATCH), **given),
        "PyDataset": lambda: dict(x=Batches(tx, ty, length), **given,
                                  **({"steps_per_epoch": STEPS} if length == "infinite" else {})),
        "generator": lambda: dict(x=generator(tx, ty), steps_per_epoch=STEPS, **given),
    }[form.split()[0]](), tx, False


FORMS = ("array", "list", "tuple", "dict", "tf.data", "PyDataset len", "PyDataset num_batches",
         "PyDataset infinite", "generator", "validation_split", "sample_weight")
# What a kind refuses at the call, in one sentence naming the form: PKKD's feature
# term compares whole-batch statistics, which per-example weights cannot weigh.
REFUSED = {("sample_weight", "PKKD"): "cannot weigh examples: train PKKD without sample_weight"}


@functools.lru_cache(maxsize=None)
def keras_fit(form):
    """What keras.Model.fit does with this form: None when it trains, else the error type."""
    arguments, _, two = fit_arguments(form)
    model, _ = fresh("keras", two)
    try:
        history = model.fit(epochs=1, verbose=0, **arguments)
    except Exception as error:   # noqa: BLE001 (whatever Keras refuses, ours must refuse)
        return type(error)
    assert "val_loss" in history.history
    return None


def statistics_on_all_rows(network, inputs):
    """Per adder BatchNorm: (mean, variance) of its input over every training row, in
    training mode (each BatchNorm before it normalising with the batch's statistics)."""
    if isinstance(network, OwnNet):
        x = joined(inputs)
        out = {}
        for conv, bn in zip(network.convs, network.bns):
            h = conv(x).numpy().astype("float64")
            out[bn.name] = h.mean((0, 1, 2)), h.var((0, 1, 2))
            x = keras.ops.relu((h - out[bn.name][0]) / np.sqrt(out[bn.name][1] + bn.epsilon)
                               * bn.gamma.numpy() + bn.beta.numpy()).numpy().astype("float32")
        return {name: out[name] for name in ADDER_BNS}
    view = keras.Model(network.inputs if len(network.inputs) > 1 else network.inputs[0],
                       [network.get_layer(n).input for n in ADDER_BNS])
    moving = [v.numpy() for v in network.non_trainable_variables]
    found = [t.numpy().astype("float64") for t in view(inputs, training=True)]
    for v, value in zip(network.non_trainable_variables, moving):
        v.assign(value)   # the view's pass updated the moving averages: put them back
    return {n: (h.mean((0, 1, 2)), h.var((0, 1, 2))) for n, h in zip(ADDER_BNS, found)}


def assert_statistics_describe_the_weights(network, inputs):
    for name, (mean, variance) in statistics_on_all_rows(network, inputs).items():
        bn = network.get_layer(name)
        spread = np.sqrt(variance)
        assert np.all(np.abs(mean) > 2 * spread), "an adder output's mean dwarfs its spread"
        np.testing.assert_array_less(np.abs(bn.moving_mean.numpy() - mean), 0.2 * spread + 1e-3,
                                     err_msg=f"{name} moving mean")
        ratio = bn.moving_variance.numpy() / variance
        assert np.all((ratio > 0.6) & (ratio < 1.6)), (name, ratio)
