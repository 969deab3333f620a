"""BinaryConv2D: the BNN baseline of the paper's tables (1-bit weights and activations).

Variant (XNOR-Net-style weight scaling, no activation scaling):

    x_b = sign(x)                       activations, sign(0) = +1
    W_b = sign(W)                       weights, sign(0) = +1
    alpha_o = mean_k |W_k,o|            one scale per output channel (XNOR-Net)
    Y = conv2d(x_b, W_b) * alpha        = alpha * (2 * popcount(XNOR(x_b, W_b)) - K)

so every multiply-accumulate inside the window is one XNOR plus its share of
a popcount; the only full-precision multiplication left is the per-channel
alpha (one per output element, which the BatchNorm that follows absorbs at
inference). XNOR-Net's activation scale K (the mean |x| of each window) is
not used, as in DoReFa-Net with 1-bit activations and in Bi-Real/IR-Net.

Gradients (straight-through estimators):

    dL/dx = dL/dx_b * 1{|x| <= 1}       HardTanh STE (BNN, Hubara et al. 2016)
    dL/dW = dL/dW~ * (alpha_o * 1{|W| <= 1}) + sign(W) / n * sum_k dL/dW~_k sign(W_k)

with W~ = alpha * sign(W) and n = kh*kw*c_in: the sign uses the same HardTanh
STE and alpha = mean|W| is differentiated exactly, which is XNOR-Net's
weight gradient (Rastegari et al. 2016, section 3.1).

Zero padding ("same") contributes 0 to a window, as in the usual
floating-point simulations of BNNs; an XNOR kernel needs a mask for the
border (or pads with +1) to do the same.
"""
import keras
import tensorflow as tf
from keras import ops

from adder_tf.layers.window import WindowLayer
from adder_tf.ops.geometry import normalize_padding


@tf.custom_gradient
def sign_ste(x):
    """sign(x) with sign(0) = +1; gradient passed where |x| <= 1 (HardTanh STE)."""
    one = tf.ones_like(x)
    y = tf.where(x >= 0, one, -one)

    def grad(dy):
        return dy * tf.cast(tf.abs(x) <= 1, dy.dtype)

    return y, grad


def binary_conv2d(x, kernel, strides=1, padding="same"):
    """conv2d(sign(x), sign(W)) * mean|W| over (kh, kw, c_in), per output channel."""
    alpha = tf.reduce_mean(tf.abs(kernel), axis=[0, 1, 2])
    y = tf.nn.conv2d(sign_ste(x), sign_ste(kernel), strides, normalize_padding(padding).upper())
    return y * alpha


@keras.saving.register_keras_serializable(package="adder_tf")
class BinaryConv2D(WindowLayer):
    """2-D convolution with 1-bit activations and 1-bit, channel-scaled weights.

    Built like `keras.layers.Conv2D` (NHWC, kernel (kh, kw, c_in, c_out) in
    `layer.kernel`, full precision: it is what the optimizer updates). The
    forward pass is `conv2d(sign(x), sign(W)) * alpha` with alpha = mean|W|
    per output channel; see the module docstring for the exact variant and
    its straight-through gradients. Follow it with BatchNorm, and feed it a
    signed, centred input (BatchNorm, no ReLU in between: sign(ReLU(x)) is
    +1 everywhere); the models' binary flavour does so. The network's first
    layer and classifier stay full precision, as in the BNN papers.
    """

    def window(self, inputs, kernel):
        x = ops.cast(inputs, self.compute_dtype)
        w = ops.cast(ops.convert_to_tensor(kernel), self.compute_dtype)
        return binary_conv2d(x, w, self.strides[0], self.padding)
