"""AdderConv2D: a Conv2D whose multiply-accumulate is replaced by -|x - f|."""
import warnings
import weakref

import keras
from keras import ops

from adder_tf.layers.window import WindowLayer
from adder_tf.ops import adder_conv2d

ADDER_FILTER_ATTR = "_adder_tf_filter"

# Adder layers whose BatchNorm statistics the library re-estimates: adder_tf.batchnorm
# adds them (the fit of AdderModel, of a distiller or of a ReestimatingFit model, the
# BatchNormReestimation callback, reestimate). A training-mode call of any other warns.
_REESTIMATED = weakref.WeakSet()
UNREESTIMATED_WARNING = (
    "AdderConv2D trained in a model whose BatchNorm statistics are not re-estimated: moving "
    "averages trail an adder network's weights, so inference after training is poor; fit "
    "with callbacks=[adder_tf.batchnorm.BatchNormReestimation(x)] or call "
    "adder_tf.batchnorm.reestimate(model, x) after training (docs/batchnorm.md)")


def mark_reestimated(layers):
    """Note that the library re-estimates the BatchNorm statistics around these layers."""
    _REESTIMATED.update(layer for layer in layers if isinstance(layer, AdderConv2D))


def adder_initializer():
    """N(0, 1), the AdderNet reference's filter initialisation."""
    return keras.initializers.RandomNormal(0.0, 1.0)


@keras.saving.register_keras_serializable(package="adder_tf")
class AdderConv2D(WindowLayer):
    """2-D adder layer (AdderNet): output = -(l1 distance of each window to each filter).

    Takes `keras.layers.Conv2D`'s arguments with Conv2D's defaults (strides
    1, padding "valid", use_bias True, activation None), so replacing the
    class in a model keeps every shape. One default differs:
    `kernel_initializer` is N(0, 1) as in the AdderNet reference, because
    an l1 distance needs filters at the scale of the inputs (Glorot's tiny
    filters make every output about -|x|, the same for every filter). The
    output is large and negative: follow the layer with BatchNormalization
    (momentum 0.9, see `adder_tf.models.BN_MOMENTUM`); a bias before it is
    redundant, the library's models use `use_bias=False`.

    dilation_rate and groups other than 1 and data_format "channels_first"
    are refused. Gradients follow AdderNet: full-precision filter gradient
    (x - f) and a HardTanh-clipped input gradient. The adaptive learning
    rate of the paper belongs to the optimizer (`adder_tf.optim`), which
    recognises this layer's kernel by itself. Trained (traced with
    training=True) where `adder_tf.batchnorm` does not re-estimate the
    BatchNorm statistics, it warns once: see docs/batchnorm.md.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", *,
                 kernel_initializer=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding,
                         kernel_initializer=kernel_initializer or adder_initializer(), **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        # The optimizers of adder_tf.optim find adder filters by this mark,
        # which every build sets again: after load_model as well.
        setattr(self.kernel, ADDER_FILTER_ATTR, True)

    def call(self, inputs, training=None):
        # Decided when the call is traced (once per traced step): Python's default
        # warning filter shows the line once, whatever the number of adder layers.
        if training is True and self not in _REESTIMATED:
            warnings.warn(UNREESTIMATED_WARNING, UserWarning, stacklevel=1)
        return super().call(inputs)

    def window(self, inputs, kernel):
        # The l1 sums are large: under a float16/bfloat16 policy they still
        # run in float32, and only the result is cast to the compute dtype.
        dtype = "float32" if self.compute_dtype in ("float16", "bfloat16") else self.compute_dtype
        x = ops.cast(inputs, dtype)
        w = ops.cast(ops.convert_to_tensor(kernel), dtype)
        return adder_conv2d(x, w, self.strides[0], self.padding)


def is_adder_filter(variable):
    """True for the kernel of an AdderConv2D."""
    return bool(getattr(variable, ADDER_FILTER_ATTR, False))
