"""AdderConv2D: a Conv2D whose multiply-accumulate is replaced by -|x - f|."""
import keras
from keras import ops

from adder_tf.ops import adder_conv2d
from adder_tf.ops.geometry import normalize_padding, output_size


@keras.saving.register_keras_serializable(package="adder_tf")
class AdderConv2D(keras.layers.Layer):
    """2-D adder layer (AdderNet): output = -(l1 distance of each window to each filter).

    Built like `keras.layers.Conv2D` (NHWC, kernel (kh, kw, c_in, c_out)).
    Gradients follow AdderNet: full-precision filter gradient (x - f) and a
    HardTanh-clipped input gradient. The adaptive learning rate of the paper
    belongs to the optimizer step (see `adder_tf.optim`), not to this layer,
    so a GradientTape sees the raw gradients. Filters start ~ N(0, 1) as in
    the reference code; the output is large and negative, so follow the
    layer with BatchNorm.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="same",
                 use_bias=False,
                 kernel_initializer=None,
                 bias_initializer="zeros",
                 kernel_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        strides = _pair(strides, "strides")
        if strides[0] != strides[1]:
            raise ValueError(f"AdderConv2D needs equal strides, got {strides}")
        self.strides = strides
        self.padding = normalize_padding(padding)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(0.0, 1.0))
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        c_in = input_shape[-1]
        if c_in is None:
            raise ValueError("AdderConv2D needs a known channel count")
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, c_in, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,),
                                     initializer=self.bias_initializer)
                     if self.use_bias else None)

    def call(self, inputs):
        # The l1 sums are large: under a float16/bfloat16 policy they still
        # run in float32, and only the result is cast to the compute dtype.
        dtype = "float32" if self.compute_dtype in ("float16", "bfloat16") else self.compute_dtype
        x = ops.cast(inputs, dtype)
        w = ops.cast(ops.convert_to_tensor(self.kernel), dtype)
        y = adder_conv2d(x, w, self.strides[0], self.padding)
        if self.bias is not None:
            y = y + ops.cast(self.bias, dtype)
        return ops.cast(y, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        s = self.strides[0]
        oh = None if h is None else output_size(h, self.kernel_size[0], s, self.padding)
        ow = None if w is None else output_size(w, self.kernel_size[1], s, self.padding)
        return (b, oh, ow, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size,
            strides=self.strides, padding=self.padding, use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


def _pair(v, name):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v}")
    return v
