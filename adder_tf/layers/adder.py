"""AdderConv2D: a Conv2D whose multiply-accumulate is replaced by -|x - f|."""
import keras
from keras import ops

from adder_tf.ops import adder_conv2d
from adder_tf.layers.window import WindowLayer


@keras.saving.register_keras_serializable(package="adder_tf")
class AdderConv2D(WindowLayer):
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
                 use_bias=False, kernel_initializer=None, bias_initializer="zeros",
                 kernel_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding,
                         kernel_initializer=kernel_initializer or keras.initializers.RandomNormal(0.0, 1.0),
                         kernel_regularizer=kernel_regularizer, **kwargs)
        self.use_bias = bool(use_bias)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        super().build(input_shape)
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

    def get_config(self):
        config = super().get_config()
        config.update(use_bias=self.use_bias,
                      bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config

