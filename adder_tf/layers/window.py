"""What every window layer of ours shares with keras.layers.Conv2D.

AdderConv2D and BinaryConv2D differ from Conv2D only in the arithmetic
inside a window. Their arguments, defaults (strides 1, padding "valid",
use_bias True), kernel layout (kh, kw, c_in, c_out), output shape and config
are a Conv2D's, so that swapping the class in a model changes nothing else.
What the fast kernels cannot do (dilation, groups, channels_first, unequal
strides) is refused at construction with the argument's name.
"""
import keras

from adder_tf.ops.geometry import normalize_padding, output_size


class WindowLayer(keras.layers.Layer):
    """Base class: subclasses implement `window(inputs, kernel)`; bias and activation follow."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        name = type(self).__name__
        if kwargs.pop("lora_rank", None) is not None:
            raise ValueError(f"{name} does not support lora_rank")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = int(filters)
        if self.filters <= 0:
            raise ValueError(f"{name}: filters must be a positive integer, got {filters!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        strides = _pair(strides, "strides", name)
        if strides[0] != strides[1]:
            raise ValueError(f"{name} needs equal strides, got strides={strides}")
        self.strides = strides
        if _pair(dilation_rate, "dilation_rate", name) != (1, 1):
            raise ValueError(f"{name} does not support dilation_rate={dilation_rate!r}; only 1")
        if int(groups) != 1:
            raise ValueError(f"{name} does not support groups={groups!r}; only 1")
        data_format = data_format or keras.config.image_data_format()
        if data_format != "channels_last":
            raise ValueError(f"{name} supports data_format='channels_last' only, got {data_format!r}")
        self.data_format = data_format
        self.padding = normalize_padding(padding)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        c_in = input_shape[-1]
        if c_in is None:
            raise ValueError(f"{type(self).__name__} {self.name!r} needs a known channel count")
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: c_in})
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, c_in, self.filters),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,),
                                     initializer=self.bias_initializer,
                                     regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)

    def call(self, inputs):
        y = self.window(inputs, self.kernel)
        if self.bias is not None:
            y = y + keras.ops.cast(self.bias, y.dtype)
        if self.activation is not None:
            y = self.activation(y)
        return keras.ops.cast(y, self.compute_dtype)

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
            strides=self.strides, padding=self.padding, data_format=self.data_format,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            activity_regularizer=keras.regularizers.serialize(self.activity_regularizer),
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
        )
        return config


def _pair(v, what, layer):
    if isinstance(v, int):
        return (v, v)
    try:
        v = tuple(int(i) for i in v)
    except (TypeError, ValueError):
        raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {v!r}") from None
    if len(v) != 2:
        raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {v!r}")
    return v
