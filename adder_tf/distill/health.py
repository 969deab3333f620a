"""Per-tap health of PKKD's feature loss: is every tapped layer still compared?

For each tapped layer, on a fixed batch of images: the spread (standard
deviation over batch, positions and channels, averaged over channels) of
the student-side and teacher-side head outputs, their mean per-channel
correlation, the kernel widths, and for each side with a kernel how far it
is from a straight line (`adder_tf.layers.kernels.kernel_statistics`: the
exponent's range over the batch and the R^2 of the best affine fit of the
kernel's output on the tap, keys `<stat>_student` / `<stat>_teacher`). A tap is dead when either side's spread
fell below DEAD_FRACTION of its value at the start of training: then the
feature loss no longer sees that layer, whatever its value says.

The probe runs both networks with the probe batch's own BatchNorm
statistics (training mode), as the feature loss sees them in a step: with
the moving statistics of that moment instead, an untrained network's
BatchNorm is mean 0 / variance 1, every student tap after the first has a
spread of exactly 0 at the start, and a student tap could never count as
dead. Nothing the probe does persists: moving statistics (and a kernel's
one-time width initialisation) are restored on the way out.
"""
import contextlib

import numpy as np
import tensorflow as tf

from adder_tf.ops.moments import channel_moments

DEAD_FRACTION = 1e-3
SIDES = ("student_std", "teacher_std")


@contextlib.contextmanager
def batch_statistics(trainer):
    """Inside, call the networks with training=True; on exit every non-trainable
    variable of both networks and of the heads is what it was on entry."""
    nets = [trainer.student] + ([trainer.teacher] if trainer.teacher is not None else [])
    variables = [v for m in nets + trainer.student_heads + trainer.teacher_heads
                 for v in m.non_trainable_variables]
    saved = [np.array(v.numpy()) for v in variables]
    try:
        yield
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)


def _kernel_row(head, z, side):
    if head.kernel_transform is None:
        return {}
    from adder_tf.layers.kernels import kernel_statistics
    stats = kernel_statistics(head.kernel_transform, z)
    return {f"{key}_{side}": value for key, value in stats.items() if key != "width"}


def feature_health(trainer, images, start=None):
    """One dict per tap, in network order (see the module docstring).

    start: the rows of the first probe; each row then carries
    `student_std_start` and `teacher_std_start` (without it, the probe is the
    start and they equal its own spreads).
    """
    rows = []
    with batch_statistics(trainer):
        _, s_taps, _, t_taps = trainer.tap_outputs(images, training=True)
        for layer, s, t, sh, th in zip(trainer.tap_names, s_taps, t_taps,
                                       trainer.student_heads, trainer.teacher_heads):
            m = channel_moments(sh(s), th(t))
            std_s = tf.sqrt(tf.maximum(m.variance, 0.0))
            std_t = tf.sqrt(tf.maximum(m.other_variance, 0.0))
            denom = std_s * std_t
            corr = tf.where(denom > 0, m.covariance / tf.maximum(denom, 1e-300),
                            tf.zeros_like(denom))
            rows.append({"tap": layer,
                         "student_std": float(tf.reduce_mean(std_s)),
                         "teacher_std": float(tf.reduce_mean(std_t)),
                         "corr": float(tf.reduce_mean(corr)),
                         "sigma_student": sh.sigma_value(s),
                         "sigma_teacher": th.sigma_value(t),
                         **_kernel_row(sh, s, "student"), **_kernel_row(th, t, "teacher")})
    for i, row in enumerate(rows):
        first = start[i] if start is not None else row
        for side in SIDES:
            row[f"{side}_start"] = first[side]
    return rows


def _dead(now, then):
    # `not >`: a NaN, or a spread of 0 where the start was 0 too, is dead.
    return not (np.isfinite(now) and now > DEAD_FRACTION * then)


def dead_taps(health, start, side=None):
    """How many taps have a side whose spread fell below DEAD_FRACTION of its start.

    side: "student" or "teacher" counts that side only; None counts a tap
    dead when either side is.
    """
    sides = SIDES if side is None else (f"{side}_std",)
    return sum(1 for now, then in zip(health, start)
               if any(_dead(now[k], then[k]) for k in sides))
