"""Fused passes for PKKD's heads and feature loss, with plain-TF equivalents.

A PKKD step on ResNet-20 taps 18 layers on each side; per tap the kernel
map exp(min(c z, limit)) and the standardized MSE were a dozen elementwise
TF ops and reductions each (neg, mul, minimum, exp, sub, square, sum, tile,
select, ... and as many again for the gradient), every one a full pass over
a (batch, H, W, C) tensor. Profiled at batch 128 on a 2-core Xeon, those
passes were ~80% of the heads' time, the 1x1 convolutions the rest. Here
each is one pass:

  exp_map(z, c, limit)   g = exp(min(c z, limit)); gradient: one pass for dz
                         and the scalar dc
  channel_sums(s, t)     per-channel sums of s, t, s^2, t^2, s t in float64
                         (one pass over both); gradient: one pass per side

The compiled ops are used where the compiled adder op is (`adder_tf.ops.
resolve_backend()` is "fast": CPU, not under XLA) and the tensors are
float32; otherwise the same quantities come from plain TF ops (in float64
too). The sums are raw, accumulated in float64, so var = E[s^2] - E[s]^2
loses nothing that matters in float32. `channel_sums` is the engine of
`adder_tf.ops.moments.channel_moments`, which every caller uses.
"""
import tensorflow as tf


def _fast_module(*tensors):
    if any(t.dtype != tf.float32 for t in tensors):
        return None
    from adder_tf import ops as adder_ops
    if adder_ops.resolve_backend() != "fast":
        return None
    return adder_ops.adder_fast.load()


def fused_available(*tensors):
    """True when the compiled fused passes serve these tensors (float32, "fast" path)."""
    return _fast_module(*[tf.convert_to_tensor(t) for t in tensors]) is not None


def exp_map(z, c, limit):
    """exp(min(z * c, limit)) with c a scalar (gradients for z and c)."""
    z = tf.convert_to_tensor(z)
    c = tf.cast(c, z.dtype)
    module = _fast_module(z)
    if module is None:
        return tf.exp(tf.minimum(z * c, limit))
    limit = float(limit)

    @tf.custom_gradient
    def _map(z, c):
        g = module.adder_tf_exp_map(z, c, limit=limit)

        def grad(dg):
            dz, dc = module.adder_tf_exp_map_grad(z, g, dg, c, limit=limit)
            return dz, dc
        return g, grad

    return _map(z, c)


def channel_sums(s, t=None):
    """Per-channel sums over all leading axes, float64, shape (5, C):
    rows sum s, sum t, sum s^2, sum t^2, sum s t (this replica's batch only;
    use `adder_tf.ops.moments.channel_moments`). t=None: t is s."""
    s = tf.convert_to_tensor(s)
    same = t is None
    t = s if same else tf.cast(t, s.dtype)
    module = _fast_module(s, t)
    if module is None:
        axes = tuple(range(len(s.shape) - 1))
        s64 = tf.cast(s, tf.float64)
        if same:   # two sums, not five
            first, second = tf.reduce_sum(s64, axis=axes), tf.reduce_sum(s64 * s64, axis=axes)
            return tf.stack([first, first, second, second, second])
        t64 = tf.cast(t, tf.float64)
        return tf.stack([tf.reduce_sum(v, axis=axes)
                         for v in (s64, t64, s64 * s64, t64 * t64, s64 * t64)])

    @tf.custom_gradient
    def _moments(s, t):
        m = module.adder_tf_moments(s, t)

        def grad(dm):
            # d/ds of sum(s) a + sum(s^2) b + sum(s t) e = a + 2 b s + e t, written
            # around the channel means so that the float32 sum does not cancel.
            rows = tf.cast(tf.size(s) // tf.shape(s)[-1], tf.float64)
            ms, mt = m[0] / rows, m[1] / rows
            d1s, d1t, d2s, d2t, dst = tf.unstack(dm)
            coef_s = tf.stack([d1s + 2.0 * d2s * ms + dst * mt, 2.0 * d2s, ms, dst, mt])
            coef_t = tf.stack([d1t + 2.0 * d2t * mt + dst * ms, 2.0 * d2t, mt, dst, ms])
            return (module.adder_tf_moments_grad(s, t, tf.cast(coef_s, tf.float32)),
                    module.adder_tf_moments_grad(t, s, tf.cast(coef_t, tf.float32)))
        return m, grad

    return _moments(s, t)
