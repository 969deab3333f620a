"""Adder convolution written for XLA (`tf.function(jit_compile=True)`, GPU or CPU).

Same maths and the same AdderNet gradients as `adder_reference` (the filter
gradient is the very same function); only the shape of the computation
differs. With X the padded input channel by channel, X[c] of shape
(batch, H', W'), and X[c]|dh,dw the window kernel offset (dh, dw) sees of it
at every output position (a strided slice, (batch, oh, ow)):

  forward     Y = -sum_c sum_{dh,dw} |X[c]|dh,dw [..., None] - W[dh, dw, c]|
  input grad  dX[c] = sum_{dh,dw} place_{dh,dw}(
                          sum_o HardTanh(W[dh, dw, c, o] - X[c]|dh,dw) * dY[..., o])

where place_{dh,dw} puts a (batch, oh, ow) block back where the window
came from (the transpose of the slice). Both sums over c run as one XLA
while loop over the input channels (`UNROLL` per iteration, all kh*kw
offsets of each): every iteration is elementwise work on (batch, oh, ow,
c_out) blocks, which XLA fuses, so the (batch, positions, c_in, c_out)
difference block is never formed, and neither is an im2col copy of the input
(a test compiles a layer and checks the largest buffer). The plain
`reduce_sum(|x[..., :, None] - w|)` of the reference path is not enough under
XLA: XLA:CPU (TensorFlow 2.21) hands such reductions to its YNNPACK or
reduce-window rewrites and writes the whole block first (1.2 GB for one
8x8x64 layer at batch 128, and 4x slower than a loop).

Outside XLA a while loop of small ops is slow: there `adder_reference`
(offsets one at a time) or the compiled op runs. `adder_tf.ops.adder_conv2d`
picks this path when it is traced inside an XLA cluster.
"""
import tensorflow as tf

from adder_tf.ops.adder_reference import _pad, _shapes, with_adder_gradients
from adder_tf.ops.geometry import pad_amounts

UNROLL = 1   # input channels per loop iteration (of 1, 2, 4, 1 was fastest on XLA:CPU)


def _unroll(n):
    """The largest divisor of n that is <= UNROLL, so that every iteration has the same taps."""
    return max(u for u in range(1, min(UNROLL, n) + 1) if n % u == 0)


def _channels_first(x, kh, kw, stride, padding):
    """The padded input as (c_in, batch, H', W'): one channel is a cheap slice of the major axis."""
    return tf.transpose(_pad(x, kh, kw, stride, padding), [3, 0, 1, 2])


def _window(plane, dh, dw, stride, oh, ow):
    """What kernel offset (dh, dw) sees of one channel plane (batch, H', W') at every output."""
    return plane[:, dh:dh + (oh - 1) * stride + 1:stride, dw:dw + (ow - 1) * stride + 1:stride]


def _place(rows, dh, dw, stride, hp, wp):
    """The transpose of `_window`: (batch, oh, ow) put back on a zero (batch, H', W') plane."""
    if stride > 1:   # interleave stride-1 zeros after every row and column
        rows = tf.pad(rows[:, :, None, :, None],
                      [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1]])
        shape = tf.shape(rows)
        rows = tf.reshape(rows, [shape[0], shape[1] * stride, shape[3] * stride])
    rows = rows[:, :hp - dh, :wp - dw]
    return tf.pad(rows, [[0, 0], [dh, hp - dh - rows.shape[1]], [dw, wp - dw - rows.shape[2]]])


def _loop(n, u, body, state):
    """for c in range(0, n, u): state = body(c, state), as one XLA while loop."""
    _, state = tf.while_loop(lambda c, _: c < n, lambda c, s: (c + u, body(c, s)),
                             (tf.constant(0), state),
                             maximum_iterations=n // u)   # XLA needs a fixed trip count
    return state


def adder_forward_xla(x, w, stride, padding):
    """-sum |x - w| over each window, accumulated channel by channel, all offsets at once."""
    kh, kw, oh, ow = _shapes(x, w, stride, padding)
    # The gradients come from `with_adder_gradients`; a loop no tape sees gets no
    # per-iteration accumulators from TF's while-loop gradient machinery.
    xp = tf.stop_gradient(_channels_first(x, kh, kw, stride, padding))
    w = tf.stop_gradient(w)
    cin = int(w.shape[2])
    u = _unroll(cin)

    def body(c, acc):
        for t in range(u):
            plane = xp[c + t]
            for dh in range(kh):
                for dw in range(kw):
                    acc += tf.abs(_window(plane, dh, dw, stride, oh, ow)[..., None] - w[dh, dw, c + t])
        return acc

    acc = tf.zeros(tf.concat([tf.shape(x)[:1], [oh, ow, w.shape[-1]]], 0), x.dtype)
    return -_loop(cin, u, body, acc)


def adder_input_grad_xla(x, w, dy, stride, padding):
    """dX = sum_o HardTanh(w - x) * dy (AdderNet eq. 6), channel by channel, placed back."""
    kh, kw, oh, ow = _shapes(x, w, stride, padding)
    xp = tf.stop_gradient(_channels_first(x, kh, kw, stride, padding))
    w, dy = tf.stop_gradient(w), tf.stop_gradient(dy)
    cin, hp, wp = int(w.shape[2]), int(xp.shape[2]), int(xp.shape[3])
    u = _unroll(cin)

    def body(c, planes):
        for t in range(u):
            plane, grad = xp[c + t], None
            for dh in range(kh):
                for dw in range(kw):
                    rows = tf.reduce_sum(tf.clip_by_value(
                        w[dh, dw, c + t] - _window(plane, dh, dw, stride, oh, ow)[..., None],
                        -1.0, 1.0) * dy, axis=-1)
                    placed = _place(rows, dh, dw, stride, hp, wp)
                    grad = placed if grad is None else grad + placed
            planes = planes.write(c + t, grad)
        return planes

    planes = _loop(cin, u, body, tf.TensorArray(x.dtype, size=cin))
    grad = tf.transpose(planes.stack(), [1, 2, 3, 0])          # padded NHWC
    top = pad_amounts(int(x.shape[1]), kh, stride, padding)[0]
    left = pad_amounts(int(x.shape[2]), kw, stride, padding)[0]
    return grad[:, top:top + x.shape[1], left:left + x.shape[2], :]


def adder_conv2d_xla(x, w, strides=1, padding="same"):
    """Adder convolution with the AdderNet gradients, as an XLA loop of fused blocks."""
    return with_adder_gradients(adder_forward_xla, adder_input_grad_xla, x, w, strides, padding)
