"""The adder op's paths agree with each other and are chosen as documented: eager and
graph, mixed precision, a whole ResNet-8 on both paths, XLA, a missing compiler,
the input gradient's one dy sum."""
import numpy as np
import pytest
import tensorflow as tf
import keras

from adder_tf import AdderConv2D
from adder_tf import ops as adder_ops
from adder_tf.ops import adder_fast

import adder_backends

backend = adder_backends.backend   # the fixture: each test on both paths
need_fast = adder_backends.need_fast


def test_eager_matches_graph(backend):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 6, 6, 8)).astype(np.float32))
    w = tf.constant(rng.normal(size=(3, 3, 8, 16)).astype(np.float32))
    eager = adder_ops.adder_conv2d(x, w, 1, "same")
    graph = tf.function(adder_ops.adder_conv2d)(x, w, 1, "same")
    np.testing.assert_allclose(eager.numpy(), graph.numpy(), rtol=1e-6)


# ---------------------------------------------------------- mixed precision

@pytest.mark.parametrize("policy,rtol", [("mixed_float16", 2e-3), ("mixed_bfloat16", 1.5e-2)])
def test_layer_under_mixed_precision(backend, policy, rtol):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 6, 8)).astype(np.float32)
    ref_layer = AdderConv2D(16, 3, padding="same")
    ref = ref_layer(x).numpy()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = AdderConv2D(16, 3, padding="same")
        layer.build(x.shape)
        assert layer.kernel.dtype == "float32"
        layer.kernel.assign(ref_layer.kernel)
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        grad = tape.gradient(loss, layer.kernel)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert y.dtype == keras.mixed_precision.Policy(policy).compute_dtype
    assert grad.dtype == tf.float32 and np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), ref, rtol=rtol,
                               atol=rtol * np.abs(ref).max())


# ----------------------------------------------------------- a whole model

def _model_loss_and_grads(path):
    from adder_tf.distill.taps import tapped_view
    from adder_tf.models import build_model, tap_names
    keras.utils.set_random_seed(11)
    net = build_model("resnet8", "adder", (8, 8, 1), 10)
    model = tapped_view(net, tap_names(net))   # logits and the taps, for their gradients too
    rng = np.random.default_rng(11)
    x = tf.constant(rng.normal(size=(4, 8, 8, 1)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 10, size=(4,)))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=False)
    def step(x, labels):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = loss_fn(labels, out[0]) + 1e-4 * tf.add_n(
                [tf.reduce_mean(t) for t in out[1:]])
        return loss, tape.gradient(loss, model.trainable_variables)

    # A training-mode step of one's own, nothing re-estimating: the library says so.
    with adder_ops.use_backend(path), pytest.warns(UserWarning, match="not re-estimated"):
        concrete = step.get_concrete_function(x, labels)
    graph_def = concrete.graph.as_graph_def()
    op_types = {n.op for n in graph_def.node}
    op_types |= {n.op for f in graph_def.library.function for n in f.node_def}
    loss, grads = step(x, labels)
    names = [v.path for v in model.trainable_variables]
    return loss.numpy(), [g.numpy() for g in grads], names, op_types


def test_whole_resnet8_same_loss_and_gradients_on_both_paths():
    need_fast()
    loss_r, grads_r, names, ops_r = _model_loss_and_grads("reference")
    loss_f, grads_f, names_f, ops_f = _model_loss_and_grads("fast")
    assert names == names_f
    assert "AdderTfConv2D" in ops_f and "AdderTfConv2D" not in ops_r
    np.testing.assert_allclose(loss_f, loss_r, rtol=1e-5)
    for name, gr, gf in zip(names, grads_r, grads_f):
        scale = max(np.abs(gr).max(), 1e-6)
        np.testing.assert_allclose(gf, gr, rtol=1e-3, atol=1e-3 * scale, err_msg=name)


# ------------------------------------------------------- backend selection

def test_backend_names_are_checked():
    with pytest.raises(ValueError):
        adder_ops.set_backend("cuda")


def test_xla_uses_reference_in_auto_and_rejects_forced_fast():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(1, 5, 5, 4)).astype(np.float32))
    w = tf.constant(rng.normal(size=(3, 3, 4, 6)).astype(np.float32))
    expected = adder_ops.adder_conv2d_reference(x, w, 1, "same").numpy()
    with adder_ops.use_backend("auto"):
        got = tf.function(adder_ops.adder_conv2d, jit_compile=True)(x, w, 1, "same")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    if adder_ops.fast_available():
        with adder_ops.use_backend("fast"):
            with pytest.raises(adder_ops.FastOpUnavailable, match="jit_compile"):
                tf.function(adder_ops.adder_conv2d, jit_compile=True)(x, w, 1, "valid")


def test_missing_compiler_falls_back_to_reference(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(adder_fast, "_state", {"module": None, "error": None, "tried": False,
                                               "build_seconds": None, "path": None})
    monkeypatch.setenv("CXX", "no-such-compiler-adder-tf")
    monkeypatch.setenv("ADDER_TF_CACHE", str(tmp_path))
    previous = adder_ops.get_backend()
    try:
        adder_ops.set_backend("auto")
        with caplog.at_level("WARNING", logger="adder_tf"):
            assert not adder_ops.fast_available()
        assert any("plain-TF path" in r.getMessage() for r in caplog.records)
        assert adder_ops.resolve_backend() == "reference"
        x = tf.ones((1, 4, 4, 2))
        w = tf.zeros((3, 3, 2, 3))
        assert adder_ops.adder_conv2d(x, w).shape == (1, 4, 4, 3)
        with pytest.raises(adder_ops.FastOpUnavailable, match="compiler"):
            adder_ops.set_backend("fast")
    finally:
        adder_ops.set_backend(previous)


@pytest.mark.parametrize("stride", [1, 2])
def test_input_grad_op_sums_dy_once(stride):
    """The compiled input-gradient op's second output is the sum of dy, which
    the filter gradient uses; a row counted twice or skipped changes it."""
    need_fast()
    rng = np.random.default_rng(stride)
    x = tf.constant(rng.normal(size=(3, 9, 11, 5)).astype(np.float32))
    w = tf.constant(rng.normal(size=(5, 3, 5, 7)).astype(np.float32))
    oh, ow = -(-9 // stride), -(-11 // stride)
    dy = rng.normal(size=(3, oh, ow, 7)).astype(np.float32)
    _, dy_sum = adder_fast.adder_input_grad_fast(x, w, tf.constant(dy), stride, "same")
    np.testing.assert_allclose(dy_sum.numpy(), dy.astype(np.float64).sum(axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-5)
