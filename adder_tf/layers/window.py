"""What every window layer of ours shares with keras.layers.Conv2D.

AdderConv2D and BinaryConv2D differ only in the arithmetic inside a window;
their arguments, kernel, output shape and config are a Conv2D's (NHWC,
kernel (kh, kw, c_in, c_out), equal strides, TF's "same"/"valid").
"""
import keras

from adder_tf.ops.geometry import normalize_padding, output_size


class WindowLayer(keras.layers.Layer):
    """Base class: subclasses implement `call` on `self.kernel`."""

    def __init__(self, filters, kernel_size, strides=1, padding="same",
                 kernel_initializer="he_normal", kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        strides = _pair(strides, "strides")
        if strides[0] != strides[1]:
            raise ValueError(f"{type(self).__name__} needs equal strides, got {strides}")
        self.strides = strides
        self.padding = normalize_padding(padding)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        c_in = input_shape[-1]
        if c_in is None:
            raise ValueError(f"{type(self).__name__} needs a known channel count")
        self.kernel = self.add_weight(
            name="kernel", shape=(*self.kernel_size, c_in, self.filters),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)

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
            strides=self.strides, padding=self.padding,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
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
