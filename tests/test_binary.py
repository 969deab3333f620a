"""BinaryConv2D against a numpy reference: forward, STE gradients, serialization."""
import numpy as np
import pytest
import tensorflow as tf
import keras

from adder_tf.layers.binary import BinaryConv2D, sign_ste
from adder_tf.ops.geometry import output_size, pad_amounts


def _sign(a):
    return np.where(a >= 0, 1.0, -1.0)


def _patches(x, kh, kw, stride, padding):
    """(B, OH, OW, kh*kw*C) windows of x, zero padded as TF pads."""
    b, h, w, c = x.shape
    (pt, pb), (pl, pr) = pad_amounts(h, kh, stride, padding), pad_amounts(w, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    oh, ow = output_size(h, kh, stride, padding), output_size(w, kw, stride, padding)
    out = np.zeros((b, oh, ow, kh * kw * c))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw].reshape(b, -1)
    return out, (pt, pl), xp.shape


def _reference(x, w, g, stride, padding):
    """Forward y and the STE gradients of sum(y * g) with respect to x and W."""
    kh, kw, c, o = w.shape
    n = kh * kw * c
    alpha = np.abs(w).reshape(n, o).mean(0)
    wt = (_sign(w) * alpha).reshape(n, o)                         # alpha * sign(W)
    p, (pt, pl), padded_shape = _patches(_sign(x), kh, kw, stride, padding)
    y = p @ wt
    # dL/d sign(x): scatter the window gradients back, then the HardTanh STE
    gp = g @ wt.T
    gx = np.zeros(padded_shape)
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            gx[:, i * stride:i * stride + kh, j * stride:j * stride + kw] += \
                gp[:, i, j].reshape(-1, kh, kw, c)
    gx = gx[:, pt:pt + x.shape[1], pl:pl + x.shape[2]] * (np.abs(x) <= 1)
    # dL/dW: XNOR-Net's formula, with W~ = alpha * sign(W)
    gwt = np.einsum("bijk,bijo->ko", p, g).reshape(w.shape)
    sw = _sign(w)
    gw = gwt * alpha * (np.abs(w) <= 1) + sw / n * (gwt * sw).reshape(n, o).sum(0)
    return y, gx, gw


@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "same"), (1, "valid"), (2, "valid")])
def test_forward_and_ste_gradients_match_numpy(stride, padding):
    rng = np.random.default_rng(stride + len(padding))
    x = rng.normal(scale=1.5, size=(2, 7, 6, 3))
    x[0, 0, 0, 0] = 0.0                                           # sign(0) = +1
    w = rng.normal(scale=0.8, size=(3, 3, 3, 4))
    layer = BinaryConv2D(4, 3, strides=stride, padding=padding, dtype="float64")
    layer.build(x.shape)
    layer.kernel.assign(w)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        g = tf.constant(rng.normal(size=y.shape))
        loss = tf.reduce_sum(y * g)
    gx, gw = tape.gradient(loss, [xt, layer.kernel])
    y_ref, gx_ref, gw_ref = _reference(x, w, g.numpy(), stride, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-10, atol=1e-10)
    assert tuple(y.shape) == layer.compute_output_shape(x.shape)


def test_forward_is_xnor_popcount_arithmetic():
    """With alpha = 1 the output is 2 * popcount(XNOR) - K on +-1 bits (valid padding)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 4, 4, 2))
    w = _sign(rng.normal(size=(3, 3, 2, 5)))                     # |W| = 1, so alpha = 1
    y = BinaryConv2D(5, 3, padding="valid", dtype="float64")
    y.build(x.shape)
    y.kernel.assign(w)
    out = y(tf.constant(x)).numpy()
    xb = _sign(x) > 0
    wb = w > 0
    for i in range(2):
        for j in range(2):
            window = xb[0, i:i + 3, j:j + 3].reshape(-1)
            for o in range(5):
                popcount = np.sum(~(window ^ wb[..., o].reshape(-1)))
                assert out[0, i, j, o] == 2 * popcount - window.size


def test_sign_ste():
    x = tf.constant([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = sign_ste(x)
    np.testing.assert_array_equal(y, [-1, -1, -1, 1, 1, 1, 1])
    np.testing.assert_array_equal(tape.gradient(y, x), [0, 1, 1, 1, 1, 1, 0])


def test_serialization_roundtrip(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = BinaryConv2D(4, 3, strides=2, padding="same", name="bin")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("bin"), BinaryConv2D)
    assert loaded.get_layer("bin").get_config()["strides"] == (2, 2) or \
        list(loaded.get_layer("bin").get_config()["strides"]) == [2, 2]
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    assert model.output.shape == (None, 4, 4, 4)
