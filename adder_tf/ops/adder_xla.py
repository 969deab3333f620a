"""Adder convolution written for XLA (`tf.function(jit_compile=True)`, GPU or CPU).

Same maths and the same AdderNet gradients as `adder_reference` (the filter
gradient is the very same function); only the shape of the computation
differs. Let P be the image patches, one row per kernel tap k = (dh, dw, c):
P[k] = xpad[:, i*s+dh, j*s+dw, c], shape (K, batch, oh, ow), K = kh*kw*c_in,
and W2 = W as (K, c_out). Then

  forward     Y = -sum_k |P[k][..., None] - W2[k]|
  input grad  dP[k] = sum_o HardTanh(W2[k, o] - P[k]) * dY[..., o]
              dX = the vector-Jacobian product of the patch gather (a sum of
              pads) at dP

and both sums over k run as an XLA while loop over the taps, `unroll` taps
per iteration. Each iteration is elementwise work on one (batch, oh, ow,
c_out) block, which XLA fuses into one kernel: the (batch, positions, c_in,
c_out) difference block is never formed, in any backend. The plain
`reduce_sum(|x[..., :, None] - w|)` of the reference path is not enough
under XLA: XLA:CPU (TensorFlow 2.21) hands large reductions to its
YNNPACK/reduce-window rewrites and writes the whole block to memory first
(measured: 1.2 GB for one 8x8x64 layer at batch 128, and 4x slower than this
loop). What is held: P and dP, kh*kw times the input, like a convolution's
im2col.

Outside XLA a while loop of small ops is slow: there `adder_reference`
(offsets one at a time) or the compiled op runs. `adder_tf.ops.adder_conv2d`
picks this path when it is traced inside an XLA cluster.
"""
import tensorflow as tf

from adder_tf.ops.adder_reference import _pad, _shapes, with_adder_gradients

UNROLL = 4   # taps per loop iteration (4 was fastest of 1, 4, 8, 16 on XLA:CPU)


def _patches(x, kh, kw, stride, padding, oh, ow):
    """P: (kh*kw*c_in, batch, oh, ow), rows offset-major then channel (W's own order)."""
    xp = tf.transpose(_pad(x, kh, kw, stride, padding), [3, 0, 1, 2])
    rows = [xp[:, :, dh:dh + (oh - 1) * stride + 1:stride, dw:dw + (ow - 1) * stride + 1:stride]
            for dh in range(kh) for dw in range(kw)]
    return rows[0] if len(rows) == 1 else tf.concat(rows, axis=0)


def _unroll(n):
    """The largest divisor of n that is <= UNROLL, so that every iteration has the same taps."""
    return max(u for u in range(1, min(UNROLL, n) + 1) if n % u == 0)


def adder_forward_xla(x, w, stride, padding):
    """-sum |x - w| over each window, accumulated tap by tap."""
    kh, kw, oh, ow = _shapes(x, w, stride, padding)
    # The gradients come from `with_adder_gradients`; a loop no tape sees gets no
    # per-iteration accumulators from TF's while-loop gradient machinery.
    p = tf.stop_gradient(_patches(x, kh, kw, stride, padding, oh, ow))
    w2 = tf.stop_gradient(tf.reshape(w, [-1, w.shape[-1]]))
    n = int(w2.shape[0])
    u = _unroll(n)

    def body(k, acc):
        for t in range(u):
            acc += tf.abs(p[k + t][..., None] - w2[k + t])
        return k + u, acc

    acc = tf.zeros(tf.concat([tf.shape(x)[:1], [oh, ow, w.shape[-1]]], 0), x.dtype)
    _, acc = tf.while_loop(lambda k, _: k < n, body, (tf.constant(0), acc),
                           maximum_iterations=n // u)   # XLA needs a fixed trip count
    return -acc


def adder_input_grad_xla(x, w, dy, stride, padding):
    """dX = sum_o HardTanh(w - x) * dy (AdderNet eq. 6), tap by tap, then scattered."""
    kh, kw, oh, ow = _shapes(x, w, stride, padding)
    with tf.GradientTape() as tape:
        tape.watch(x)
        p = _patches(x, kh, kw, stride, padding, oh, ow)
    rows_in, w2 = tf.stop_gradient(p), tf.stop_gradient(tf.reshape(w, [-1, w.shape[-1]]))
    dy = tf.stop_gradient(dy)
    n = int(w2.shape[0])
    u = _unroll(n)

    def body(k, dp):
        rows = [tf.reduce_sum(tf.clip_by_value(w2[k + t] - rows_in[k + t][..., None], -1.0, 1.0) * dy,
                              axis=-1) for t in range(u)]
        return k + u, dp.write(k // u, tf.stack(rows))

    dp = tf.TensorArray(x.dtype, size=n // u)
    _, dp = tf.while_loop(lambda k, _: k < n, body, (tf.constant(0), dp), maximum_iterations=n // u)
    # The patch gather is linear: its vector-Jacobian product is the scatter back.
    return tape.gradient(p, x, output_gradients=tf.reshape(dp.stack(), tf.shape(p)))


def adder_conv2d_xla(x, w, strides=1, padding="same"):
    """Adder convolution with the AdderNet gradients, as XLA loops of fused blocks."""
    return with_adder_gradients(adder_forward_xla, adder_input_grad_xla, x, w, strides, padding)
