"""Per-tap health of PKKD's feature loss: is every tapped layer still compared?

For each tapped layer, on a fixed batch of images: the spread (standard
deviation over batch, positions and channels, averaged over channels) of
the student-side and teacher-side head outputs, their mean per-channel
correlation, and the kernel widths. A tap is dead when either side's spread
fell below DEAD_FRACTION of its value at the start of training: then the
feature loss no longer sees that layer, whatever its value says.
"""
import numpy as np
import tensorflow as tf

DEAD_FRACTION = 1e-3


def _channel_moments(y):
    y = tf.reshape(tf.cast(y, tf.float64), [-1, y.shape[-1]])
    mean = tf.reduce_mean(y, 0)
    centred = y - mean
    return centred, tf.sqrt(tf.reduce_mean(tf.square(centred), 0))


def feature_health(trainer, images):
    """One dict per tap, in network order (see the module docstring)."""
    _, s_taps, _, t_taps = trainer.tap_outputs(images)
    rows = []
    for layer, s, t, sh, th in zip(trainer.tap_names, s_taps, t_taps,
                                   trainer.student_heads, trainer.teacher_heads):
        ys, yt = sh(s), th(t)
        cs, std_s = _channel_moments(ys)
        ct, std_t = _channel_moments(yt)
        cov = tf.reduce_mean(cs * ct, 0)
        denom = std_s * std_t
        corr = tf.where(denom > 0, cov / tf.maximum(denom, 1e-300), tf.zeros_like(cov))
        rows.append({"tap": layer,
                     "student_std": float(tf.reduce_mean(std_s)),
                     "teacher_std": float(tf.reduce_mean(std_t)),
                     "corr": float(tf.reduce_mean(corr)),
                     "sigma_student": sh.sigma_value(s),
                     "sigma_teacher": th.sigma_value(t)})
    return rows


def dead_taps(health, start):
    """How many taps have a side whose spread fell below DEAD_FRACTION of its start."""
    dead = 0
    for now, then in zip(health, start):
        for side in ("student_std", "teacher_std"):
            if not np.isfinite(now[side]) or now[side] < DEAD_FRACTION * then[side]:
                dead += 1
                break
    return dead
