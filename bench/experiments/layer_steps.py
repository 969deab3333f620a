"""Shared set-up of the layer experiments here: a batch and the fwd+bwd steps of a
3x3 Conv2D and of an AdderConv2D on the compiled path (bench/adder_bench.layer_step)."""
import paths  # noqa: F401  (the repository and bench/ on sys.path)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adder_bench import layer_step  # noqa: E402
from adder_tf import AdderConv2D  # noqa: E402
from adder_tf import ops as adder_ops  # noqa: E402


def batch_of(batch, h, cin):
    rng = np.random.default_rng(0)
    return tf.constant(rng.normal(size=(batch, h, h, cin)).astype("float32"))


def conv_step(x, cout):
    conv = keras.layers.Conv2D(cout, 3, 1, padding="same", use_bias=False)
    conv.build(x.shape)
    return layer_step(conv, x)


def adder_step(x, cout):
    """Traced now, so that whatever adder_fast holds at this moment is what it runs."""
    adder = AdderConv2D(cout, 3, 1, padding="same", use_bias=False)
    adder.build(x.shape)
    with adder_ops.use_backend("fast"):
        step = layer_step(adder, x)
        step.get_concrete_function(x)
    return step
