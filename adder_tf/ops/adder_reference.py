"""Adder convolution in plain TensorFlow ops (the portable path).

Forward:  Y[b,i,j,o] = -sum_{dh,dw,c} |xpad[b, i*s+dh, j*s+dw, c] - W[dh,dw,c,o]|
Backward (AdderNet, Chen et al. 2020):
  dW = sum (x - W) * dY     = conv2d_backprop_filter(x, dY) - W * sum(dY)
  dX = sum_o HardTanh(W - x) * dY

The work is split by kernel offset (dh, dw): each step holds at most one
(batch, positions, c_in, c_out) block, never the (batch*positions, K, c_out)
tensor of the naive im2col formula, which is kh*kw times larger. The filter
gradient needs no such block at all: it is a convolution's filter gradient
minus a rank-one term.
"""
import contextlib

import tensorflow as tf

from adder_tf.ops.geometry import normalize_padding, output_size, pad_amounts


def _pad(x, kh, kw, stride, padding):
    h, w = x.shape[1], x.shape[2]
    ph, pw = pad_amounts(h, kh, stride, padding), pad_amounts(w, kw, stride, padding)
    if ph == (0, 0) and pw == (0, 0):
        return x
    return tf.pad(x, [[0, 0], list(ph), list(pw), [0, 0]])


def _offset_slices(xp, kh, kw, stride, oh, ow):
    """The input window seen by kernel offset (dh, dw) at every output position."""
    for dh in range(kh):
        for dw in range(kw):
            yield dh, dw, xp[:, dh:dh + (oh - 1) * stride + 1:stride,
                             dw:dw + (ow - 1) * stride + 1:stride, :]


def _shapes(x, w, stride, padding):
    kh, kw = int(w.shape[0]), int(w.shape[1])
    oh = output_size(int(x.shape[1]), kh, stride, padding)
    ow = output_size(int(x.shape[2]), kw, stride, padding)
    return kh, kw, oh, ow


def _after(deps):
    """Scope that makes the next block wait for `deps` (graph mode only).

    Without it a graph executor may run all kh*kw offset blocks at once and
    hold kh*kw (batch, positions, c_in, c_out) temporaries together.
    """
    if deps is None or tf.executing_eagerly():
        return contextlib.nullcontext()
    return tf.control_dependencies([deps])


def adder_forward(x, w, stride, padding):
    """-sum |x - w| over each window; x is NHWC, w is (kh, kw, c_in, c_out)."""
    kh, kw, oh, ow = _shapes(x, w, stride, padding)
    xp = _pad(x, kh, kw, stride, padding)
    out = None
    for dh, dw, xs in _offset_slices(xp, kh, kw, stride, oh, ow):
        with _after(out):
            part = tf.reduce_sum(tf.abs(xs[..., :, None] - w[dh, dw]), axis=-2)
        out = part if out is None else out + part
    return -out


def adder_filter_grad(x, w, dy, stride, padding, dy_sum=None):
    """Full-precision dW = sum (x - w) * dy (AdderNet eq. 5), as a GEMM minus a rank-one term.

    dy_sum: sum of dy over (batch, rows, columns) when a path already has it.
    """
    xw = tf.compat.v1.nn.conv2d_backprop_filter(
        x, tf.shape(w), dy, strides=[1, stride, stride, 1],
        padding=padding.upper())
    if dy_sum is None:
        dy_sum = tf.reduce_sum(dy, axis=[0, 1, 2])
    return xw - w * dy_sum


def adder_input_grad(x, w, dy, stride, padding):
    """dX = sum_o HardTanh(w - x) * dy (AdderNet eq. 6), scattered back to the input."""
    kh, kw, oh, ow = _shapes(x, w, stride, padding)
    with tf.GradientTape() as tape:
        tape.watch(x)
        xp = _pad(x, kh, kw, stride, padding)
        slices = list(_offset_slices(xp, kh, kw, stride, oh, ow))
    cotangents = []
    for dh, dw, xs in slices:
        with _after(cotangents[-1] if cotangents else None):
            cotangents.append(tf.reduce_sum(
                tf.clip_by_value(w[dh, dw] - xs[..., :, None], -1.0, 1.0)
                * dy[..., None, :], axis=-1))
    # The slicing is linear, so its transpose (the scatter back, padding
    # dropped) is exactly its vector-Jacobian product.
    return tape.gradient([s for _, _, s in slices], x, output_gradients=cotangents)


def with_adder_gradients(forward, input_grad, x, w, strides, padding):
    """forward(x, w) with AdderNet's backward: input_grad for x, eq. 5 for w.

    Every path shares this wrapper and the filter gradient; paths differ only
    in how they compute the forward and the input gradient. input_grad may
    return (dx, sum of dy over batch and positions) when it gets the sum from
    its own pass over dy, sparing the filter gradient another one.
    """
    padding = normalize_padding(padding)

    @tf.custom_gradient
    def _adder(x, w):
        def grad(dy):
            dx = input_grad(x, w, dy, strides, padding)
            dx, dy_sum = dx if isinstance(dx, (tuple, list)) else (dx, None)
            return dx, adder_filter_grad(x, w, dy, strides, padding, dy_sum)
        return forward(x, w, strides, padding), grad

    return _adder(x, w)


def adder_conv2d_reference(x, w, strides=1, padding="same"):
    """Adder convolution with the AdderNet gradients, in plain TF ops."""
    return with_adder_gradients(adder_forward, adder_input_grad, x, w, strides, padding)
