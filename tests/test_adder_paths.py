"""Every adder path (reference, fast) against a loop-based numpy reference.

Forward  y  = -sum |x - w| over each window,
dW = sum (x - w) * dy               (AdderNet eq. 5, full precision),
dX = sum_o HardTanh(w - x) * dy     (eq. 6), scattered back to the input.
The fast path is skipped (with the reason) where the compiled op cannot be
built, unless ADDER_TF_REQUIRE_FAST=1 makes that a failure.
"""
import numpy as np
import pytest
import tensorflow as tf

from adder_tf import ops as adder_ops

import adder_backends
from adder_backends import need_fast

backend = adder_backends.backend   # the fixture: each test on both paths


def _out_and_pad(n, k, s, padding):
    if padding == "same":
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return out, total // 2, total - total // 2
    return (n - k) // s + 1, 0, 0


def _padded(x, kh, kw, s, padding):
    """x with its zero padding (same dtype), the output size and the top/left pads."""
    b, h, wd, c = x.shape
    oh, pt, pb = _out_and_pad(h, kh, s, padding)
    ow, pl, pr = _out_and_pad(wd, kw, s, padding)
    xp = np.zeros((b, h + pt + pb, wd + pl + pr, c), x.dtype)
    xp[:, pt:pt + h, pl:pl + wd] = x
    return xp, oh, ow, pt, pl


def numpy_adder_forward(x, w, s, padding):
    """y = -sum |x - w|, one output position at a time, in x's and w's dtype
    with float64 sums (float32 terms: cheap enough for batch 32 at 3x3x512)."""
    kh, kw, _, o = w.shape
    xp, oh, ow, _, _ = _padded(x, kh, kw, s, padding)
    wk = w.reshape(-1, o)
    y = np.zeros((x.shape[0], oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * s:i * s + kh, j * s:j * s + kw, :].reshape(x.shape[0], -1)
            y[:, i, j] = -np.abs(patch[:, :, None] - wk[None]).sum(axis=1, dtype=np.float64)
    return y


def numpy_adder(x, w, dy_fn, s, padding):
    """Loop over output positions; returns y, dx, dw (float64)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    h, wd = x.shape[1:3]
    kh, kw = w.shape[:2]
    xp, oh, ow, pt, pl = _padded(x, kh, kw, s, padding)
    y = numpy_adder_forward(x, w, s, padding)
    dy = dy_fn(y.shape).astype(np.float64)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * s:i * s + kh, j * s:j * s + kw, :]
            diff = patch[..., None] - w[None]                  # (b, kh, kw, c, o)
            g = dy[:, i, j][:, None, None, None, :]
            dw += (diff * g).sum(axis=0)
            dxp[:, i * s:i * s + kh, j * s:j * s + kw, :] += (
                np.clip(-diff, -1.0, 1.0) * g).sum(axis=-1)
    return y, dy, dxp[:, pt:pt + h, pl:pl + wd], dw


# (batch, H, W, c_in, c_out, kernel, stride, padding)
CASES = [
    (2, 5, 5, 3, 4, 3, 1, "same"),
    (2, 6, 6, 3, 4, 3, 2, "same"),
    (2, 7, 6, 4, 5, 3, 2, "valid"),
    (1, 6, 5, 16, 8, 3, 1, "valid"),
    (2, 5, 6, 5, 3, 1, 2, "same"),
    (2, 4, 4, 17, 33, 1, 1, "same"),
    (1, 8, 7, 16, 16, 3, 1, "same"),
    (1, 5, 4, 2, 3, 2, 2, "same"),      # even kernel
    (1, 6, 9, 32, 20, 3, 2, "same"),
    (1, 3, 3, 2, 2, 3, 1, "valid"),     # one output position
    (1, 6, 7, 3, 4, 2, 1, "same"),      # even kernel, stride 1: padding on one side only
    (1, 5, 6, 3, 4, (3, 2), 1, "same"), # kh != kw
    (1, 6, 5, 2, 3, (1, 3), 2, "valid"),
    (2, 7, 7, 3, 5, 5, 1, "same"),      # two padded rows at each edge
    (1, 9, 9, 3, 4, 5, 2, "same"),      # several output rows read input row 0
    (1, 3, 70, 3, 4, 3, 1, "same"),     # rows wider than 64 positions
    (1, 2, 3, 2, 3, 5, 1, "same"),      # kernel larger than the input
    # c_in * stride = 16 and c_out <= 16: the 16-position forward tile
    (1, 4, 21, 16, 16, 3, 1, "same"),   # a full tile and a partial one
    (2, 5, 18, 16, 5, 3, 1, "same"),    # two images, c_out below a vector
    (2, 9, 11, 8, 12, 3, 2, "same"),    # stride 2
    (1, 7, 17, 16, 16, 5, 1, "same"),   # five kernel rows, two padded at each edge
    (1, 2, 20, 16, 16, 5, 1, "same"),   # more kernel rows than input rows
    (1, 3, 40, 8, 16, 3, 2, "same"),    # stride 2, a full tile and a partial one
    (2, 3, 17, 16, 16, 1, 1, "same"),   # 1x1: one kernel row, no padding
    # Rows in blocks (about 256 KB of padded rows each) and channels in blocks of
    # vectors: several row blocks per image, a thread range ending mid-image
    # (45 rows), four-vector output blocks plus a rest, several input vectors.
    (3, 15, 70, 64, 80, 3, 1, "same"),
    (1, 29, 66, 48, 72, 3, 2, "same"),  # stride 2, several row blocks
    (1, 7, 7, 256, 256, 3, 1, "same"),  # ResNet's last stage: large c_in and c_out
    (2, 7, 7, 96, 160, 1, 1, "same"),   # a bottleneck 1x1
    (1, 3, 5, 8, 160, 3, 1, "same"),    # 3 rows, 10 vectors: channel groups across threads
    (1, 30, 30, 128, 128, 3, 1, "same"),  # input-gradient row blocks (weights over 256 KB)
    # 1x1 layers (their own forward: positions tiled across row and image ends,
    # channel blocks of 4 vectors, then 2, then 1, the last one partial).
    (2, 5, 7, 19, 37, 1, 1, "same"),    # c_in and c_out not multiples of a vector
    (1, 3, 5, 24, 100, 1, 1, "same"),   # 7 output vectors (4 + 2 + 1), channel groups
    (2, 9, 7, 40, 70, 1, 2, "same"),    # stride 2, odd input size, tiles across images
    (1, 14, 14, 1024, 256, 1, 1, "same"),  # ResNet-50 stage 3: large c_in, two x blocks
    (1, 14, 14, 256, 1024, 1, 1, "same"),  # large c_out
    (2, 7, 7, 1024, 256, 1, 1, "same"),    # 49 positions: a partial tile per image
    (1, 7, 7, 256, 1024, 1, 1, "same"),    # batch 1, stage 4
    (1, 14, 14, 512, 96, 1, 2, "same"),    # a stride-2 projection
    (2, 14, 14, 2048, 20, 1, 1, "same"),   # x blocks of 60 positions at c_in 2048
    # The input gradient's 8-position tiles, every other position's w - x on
    # the FMA pipes where the CPU has them: an odd-sized last tile.
    (1, 5, 9, 17, 33, 1, 1, "same"),    # a full tile and a one-position one, odd channels
    (2, 6, 15, 33, 19, 1, 2, "same"),   # stride 2: 8 and 7 input columns per residue
    (1, 3, 13, 40, 2048, 1, 1, "same"),  # large c_out: 2048 taps a tile
    (1, 11, 11, 24, 40, 3, 2, "same"),  # 3x3 stride 2: 6 and 5 input columns per residue
    # The forward's blocks of several whole images (weights over 256 KB):
    (5, 7, 7, 128, 128, 3, 1, "same"),  # 4 + 1 images, 7 x 3 tiles plus 2 single vectors
    (3, 9, 9, 64, 272, 3, 2, "same"),   # stride 2, 4-vector blocks plus a rest
    (1, 7, 7, 128, 160, 3, 1, "same"),  # batch 1: one image a block
    # The forward reads w in place when c_out is a multiple of a vector (only
    # the sums are packed), else a packed copy: stride 2 "same" on 14x14 (7x7
    # outputs, the padding on the bottom and right only), batch 1 and several
    # images, odd channels.
    (1, 14, 14, 48, 64, 3, 2, "same"),    # in place, batch 1
    (3, 14, 14, 33, 48, 3, 2, "same"),    # in place, three images, odd c_in
    (2, 14, 14, 21, 50, 3, 2, "same"),    # packed copy: c_out not a multiple of a vector
    (1, 14, 14, 256, 256, 3, 2, "same"),  # in place, weights over 256 KB, channel groups
    (2, 7, 7, 37, 32, 1, 1, "same"),      # 1x1 in place, odd c_in
    # Whole-image blocks within 512 KB where 256 KB held 6 of 7 output rows
    # (stride 2 "same", weights over 256 KB, more than one image a thread).
    (4, 14, 14, 304, 64, 3, 2, "same"),
    # Those blocks kernel row by kernel row, each tile's sums parked between
    # kernel rows: odd c_in with 7-wide tiles, 4-wide tiles with a partial one
    # (9 columns: 4 + 4 + 1) at batch 1, five kernel rows.
    (2, 7, 7, 75, 144, 3, 1, "same"),   # 3 blocks of 3 vectors, c_in not a multiple of a vector
    (1, 9, 9, 70, 112, 3, 1, "same"),   # batch 1, 4 + 3 single vectors, tiles 4 + 4 + 1
    (1, 7, 7, 48, 64, 5, 1, "same"),    # batch 1, five kernel rows (two padded at each edge)
    # Kernels over 1 MB: the forward read in place with more images than
    # threads sums each thread's own channels' weights (kernel row by kernel
    # row in the blocks of whole images, in the first block only; 11 output
    # vectors = 2 blocks of 4 + 3 single ones), the input gradient's packing in
    # ranges of channel vectors over the threads (12, the last one partial); a
    # packed copy with odd c_out; 9 images: blocks of 4 whole images and
    # partial ones on each thread.
    (3, 5, 5, 181, 176, 3, 1, "same"),
    (2, 6, 5, 300, 100, 3, 1, "same"),
    (9, 7, 7, 128, 240, 3, 1, "same"),
    # Kernels over 1 MB read in place at batch 1: each thread sums its own
    # channels' weights kernel row by kernel row (7 vectors: a block of 4 and
    # 3 left; a 7-wide row in two channel groups of 4 vectors: 3 and 1 left);
    # the sums packed first by the threads, each a range of channel vectors,
    # for a 1x1 layer (17 vectors: uneven ranges) and a 3x3 one whose image
    # outgrows a block (its padding rows' sums read).
    (1, 5, 5, 300, 112, 3, 1, "same"),
    (1, 7, 7, 256, 128, 3, 1, "same"),
    (2, 3, 3, 2048, 272, 1, 1, "same"),
    (1, 14, 14, 512, 128, 3, 2, "same"),
    # Kernels over 1 MB with c_out a multiple of 512 (3x3) and 1024 output
    # positions or more: the forward packs w with one vector of padding a row
    # (33 vectors for 512 channels, the last all padding): 7x7 outputs, 21
    # whole images; stride 2, 6 images of 14x14; 1024 channels; and below
    # 1024 positions (in place) for comparison.
    (21, 7, 7, 64, 512, 3, 1, "same"),
    (6, 28, 28, 64, 512, 3, 2, "same"),
    (41, 5, 5, 32, 1024, 3, 1, "same"),
    (21, 7, 7, 64, 500, 3, 1, "same"),    # a partial vector, then the padding one
    (1, 3, 400, 64, 512, 3, 1, "same"),   # 3 rows of 400: three channel groups
    (1, 7, 7, 64, 512, 3, 1, "same"),
    # c_in >= 128, 3 or 4 channel vectors a tile, and a kernel column putting
    # a tile's first or last position into the padding: that column's taps over the other positions and the
    # column's packed sum for it. A partial channel vector (its sums column by
    # column), stride 2 with padding on both sides (15 -> 8), a 5x5 kernel
    # (two positions in the padding: the taps read zeros; one: the edge),
    # 28-wide rows (4-position tiles), 14-wide ones (two 7-position tiles).
    (2, 7, 7, 128, 40, 3, 1, "same"),
    (1, 15, 15, 128, 64, 3, 2, "same"),
    (1, 9, 9, 128, 64, 5, 1, "same"),
    (1, 3, 28, 128, 64, 3, 1, "same"),
    (2, 14, 14, 160, 64, 3, 1, "same"),
    # 3x3x512 kernels with 7x7 outputs: a 3-vector channel block's weights and
    # an image's padded rows outgrow 1 MB, so blocks of up to 4 whole images
    # kernel row by kernel row; at 11 or 10 images on two threads the op's
    # ranges of rows (9-10) hold at most one whole image, with partial images
    # at their ends (blocks of several: the forward-only cases below), stride
    # 1 and stride 2 "same" (460 KB an image).
    (11, 7, 7, 512, 64, 3, 1, "same"),
    (10, 14, 14, 512, 64, 3, 2, "same"),
    # The input gradient's 7-wide tiles at stride 1 where a row is 7, 14, 21 or
    # 28 columns: three tiles and odd channels at batch 1, "valid" padding.
    (1, 4, 21, 19, 24, 3, 1, "same"),
    (2, 5, 14, 33, 40, 3, 1, "valid"),
]


def _case_id(c):
    k = c[5] if isinstance(c[5], int) else "{}x{}".format(*c[5])
    return "b{}_{}x{}x{}_o{}_k{}s{}_{}".format(*c[:5], k, *c[6:])


def test_cases_run_on_the_two_thread_pool_they_were_written_for():
    """Which path a case takes depends on images per thread (conftest pins the pool)."""
    assert tf.config.threading.get_intra_op_parallelism_threads() == 2


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_and_gradients_match_numpy(backend, case):
    b, h, wd, c, o, k, s, padding = case
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(b + h + wd + c + o + kh * 10 + kw + s)
    x = rng.normal(size=(b, h, wd, c)).astype(np.float32) * 0.8
    w = rng.normal(size=(kh, kw, c, o)).astype(np.float32)
    y_np, dy, dx_np, dw_np = numpy_adder(
        x, w, lambda shape: rng.normal(size=shape).astype(np.float32), s, padding)

    xt, wt = tf.constant(x), tf.constant(w)
    dyt = tf.constant(dy.astype(np.float32))
    assert adder_ops.resolve_backend() == backend

    @tf.function(jit_compile=False)
    def run(xt, wt):
        with tf.GradientTape() as tape:
            tape.watch([xt, wt])
            y = adder_ops.adder_conv2d(xt, wt, s, padding)
        dx, dw = tape.gradient(y, [xt, wt], output_gradients=dyt)
        return y, dx, dw

    y, dx, dw = (t.numpy() for t in run(xt, wt))
    assert y.shape == y_np.shape and dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(y, y_np, rtol=1e-5, atol=1e-4 * np.abs(y_np).max())
    np.testing.assert_allclose(dx, dx_np, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(dx_np).max()))
    np.testing.assert_allclose(dw, dw_np, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(dw_np).max()))


# Compiled forward paths that only large shapes reach, forward only (the
# reference above would take minutes here):
# - batch 32 of 3x3x512 kernels with 7x7 outputs: the op's ranges of rows on
#   two threads then hold 4 whole images, a block of the forward's kernel-row
#   order (a 3-vector channel block's weights and an image's padded rows
#   outgrow 1 MB; 460 KB an image at stride 2). AVX-512 builds only: other
#   builds run these shapes on their usual path;
# - c_in 128 and c_out 512 with 1024 output positions or more: w's rows
#   copied with a vector of padding, the row ends' kernel columns skipped at
#   both ends (rows of 28 in 4-position tiles; rows of 7, blocks of whole
#   images: up to 2 in the op's ranges of 19 rows on two threads).
FORWARD_CASES = [
    (32, 7, 7, 512, 64, 3, 1, "same"),
    (32, 14, 14, 512, 64, 3, 2, "same"),
    (2, 20, 28, 128, 512, 3, 1, "same"),
    (21, 7, 7, 128, 512, 3, 1, "same"),
]


@pytest.mark.parametrize("case", FORWARD_CASES, ids=_case_id)
def test_large_shape_forward_matches_numpy(case):
    need_fast()
    b, h, wd, c, o, k, s, padding = case
    rng = np.random.default_rng(b + h + c + o + s)
    x = rng.normal(size=(b, h, wd, c)).astype(np.float32) * 0.8
    w = rng.normal(size=(k, k, c, o)).astype(np.float32)
    previous = adder_ops.get_backend()
    adder_ops.set_backend("fast")
    try:
        y = adder_ops.adder_conv2d(tf.constant(x), tf.constant(w), s, padding).numpy()
    finally:
        adder_ops.set_backend(previous)
    y_np = numpy_adder_forward(x, w, s, padding)
    np.testing.assert_allclose(y, y_np, rtol=1e-5, atol=1e-4 * np.abs(y_np).max())
