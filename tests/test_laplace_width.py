"""The student's Laplace kernel bends over the batch's actual spread (width="spread"),
where the mean-distance width is, in effect, a straight line."""
import keras
import numpy as np
import pytest

from adder_tf.layers.kernels import LaplaceKernel, kernel_statistics


def _adder_like(seed=0, shape=(16, 4, 4, 6), mean=100.0, spread=3.0):
    """Adder outputs -d with distances far from 0 and a narrow spread, as in a real layer."""
    rng = np.random.default_rng(seed)
    return -(mean + spread * rng.standard_normal(shape)).astype("float32")


def _r2_numpy(z, g):
    """Mean over channels of the R^2 of a least-squares line g ~ a z + b (numpy's polyfit)."""
    z = z.reshape(-1, z.shape[-1]).astype("float64")
    g = g.reshape(-1, g.shape[-1]).astype("float64")
    out = []
    for c in range(z.shape[1]):
        a, b = np.polyfit(z[:, c], g[:, c], 1)
        resid = g[:, c] - (a * z[:, c] + b)
        out.append(1.0 - resid.var() / g[:, c].var())
    return float(np.mean(out))


def test_spread_width_is_eq_8_centred_per_channel():
    y = _adder_like()
    d = -y.astype("float64")
    k = LaplaceKernel()
    k.build(y.shape)
    centre = d.mean(axis=(0, 1, 2))
    spread = np.sqrt(((d - centre) ** 2).mean(axis=(0, 1, 2)).mean())
    np.testing.assert_allclose(float(k.sigma(y)), spread, rtol=1e-4)
    np.testing.assert_allclose(k(y), np.exp((d - centre) / spread), rtol=1e-4)
    # eq. 8 up to one positive constant per channel: the ratio to exp(d / s) is constant.
    ratio = np.asarray(k(y), "float64") / np.exp((d - 100.0) / spread)
    per_channel = ratio.reshape(-1, ratio.shape[-1])
    np.testing.assert_allclose(per_channel / per_channel[:1], 1.0, rtol=1e-3)
    # Shift- and scale-free: the same kernel for 7x the distances plus a constant.
    np.testing.assert_allclose(k(7.0 * y - 50.0), k(y), rtol=1e-4)


def test_spread_width_bends_where_the_mean_width_is_a_line():
    y = _adder_like()
    stats = {}
    for width in ("spread", "mean"):
        k = LaplaceKernel(width=width)
        k.build(y.shape)
        stats[width] = kernel_statistics(k, y)
        # kernel_statistics' R^2 against numpy's least-squares line on the kernel's own output
        assert stats[width]["r2"] == pytest.approx(_r2_numpy(y, np.asarray(k(y))), abs=1e-4)
    assert stats["mean"]["r2"] > 0.999              # the straight line of the old width
    assert stats["spread"]["r2"] < 0.9
    assert stats["spread"]["exponent_range"] > 20 * stats["mean"]["exponent_range"]


def test_spread_width_keeps_the_orientation_and_stays_finite():
    y = _adder_like()
    k = LaplaceKernel(bounded=False)
    k.build(y.shape)
    g = np.asarray(k(y))
    assert np.corrcoef(y.ravel(), g.ravel())[0, 1] < -0.5   # falls as the similarity -d rises
    k.log_factor.assign(-20.0)                               # a badly small width
    big = np.concatenate([y, y * 1e4], axis=0)
    assert np.all(np.isfinite(np.square(np.asarray(k(big)))))


def test_width_choice_is_validated_and_serialized():
    with pytest.raises(ValueError, match="width"):
        LaplaceKernel(width="median")
    with pytest.raises(ValueError, match="relative"):
        LaplaceKernel(width="spread", relative=False)
    k = LaplaceKernel(width="mean")
    assert LaplaceKernel.from_config(k.get_config()).width_kind == "mean"


def test_real_resnet_taps_bend_with_the_spread_width():
    """On every adder tap of a ResNet-8 (random images), the spread width's kernel is far
    from affine, the mean width's within 1% of it."""
    from adder_tf import distill
    from adder_tf.models import build_model, tap_names
    from adder_tf.optim import AdderSGD
    keras.utils.set_random_seed(0)
    student = build_model("resnet8", "adder", (16, 16, 3), 10)
    teacher = build_model("resnet8", "conv", (16, 16, 3), 10)
    images = np.random.default_rng(0).random((32, 16, 16, 3)).astype("float32")
    r2 = {}
    for width in ("spread", "mean"):
        pkkd = distill.PKKD(teacher, student, taps=[(n, n) for n in tap_names(student)],
                            laplace_width=width)
        pkkd.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")   # as a step finds it
        _, s_taps, _, _ = pkkd.tap_outputs(images, training=True)
        r2[width] = [kernel_statistics(h.kernel_transform, z)["r2"]
                     for h, z in zip(pkkd.student_heads, s_taps)]
    assert len(r2["spread"]) >= 4
    assert min(r2["mean"]) > 0.98, r2
    assert max(r2["spread"]) < 0.9, r2


@pytest.mark.parametrize("method", ["call", "exponent"])
def test_spread_width_reads_the_batch_moments_once_per_call(method, monkeypatch):
    from adder_tf.ops import moments
    calls = []
    real = moments.channel_moments

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(moments, "channel_moments", counting)
    y = _adder_like()
    k = LaplaceKernel()
    k.build(y.shape)
    out = k(y) if method == "call" else k.exponent(y)
    assert len(calls) == 1
    d = -y.astype("float64")
    centre = d.mean(axis=(0, 1, 2))
    spread = np.sqrt(((d - centre) ** 2).mean(axis=(0, 1, 2)).mean())
    expected = (d - centre) / spread
    np.testing.assert_allclose(out, np.exp(expected) if method == "call" else expected,
                               rtol=1e-4, atol=1e-5)
