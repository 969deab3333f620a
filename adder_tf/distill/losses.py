"""PKKD's losses (Xu et al. 2020, eq. 13-14).

The label and soft-label terms return one value per example so the trainer
can divide by the GLOBAL batch size (tf.nn.compute_average_loss); the
feature term is computed from global-batch moments and returned as this
replica's share. Summed across replicas, each gives the gradient one
device computes, which a plain per-replica mean would not.

    L       = beta * L_mid + L_blend
    L_blend = alpha * KL(softmax(teacher / T) || softmax(student / T)) * T^2 + CE(labels, student)

One convention for every distillation loss (PKKD, KD, NST): the student
minimises its weighted sum divided by the sum of the weights,

    PKKD  (CE + alpha KD + beta L_mid) / (1 + alpha + beta)
    KD    (CE + alpha KD) / (1 + alpha)
    NST   (CE + beta L_nst) / (1 + beta)

so the weights are relative (the labels' share is 1 / (1 + sum)), and the
step of every non-adder weight (BatchNorm, stem, classifier: it scales with
the gradient) stays about that of plain training whatever the weights; the
adder filters' step is normalised by the adaptive learning rate anyway.
The methods therefore run at comparable step sizes (Table 2 like for like).
The one exception is feature_norm="none", eq. 13-14 as written, undivided.

feature_norm="standardize" (default):
    L_mid   = mean over tapped layers of MSE(standardize(y_a), standardize(y_c))
              (each tap in [0, 4], 2 (1 - correlation) per channel)
feature_norm="none" (eq. 13-14 as written):
    L_mid   = sum over tapped layers of MSE(y_a, y_c), and L is not divided.

The paper writes the soft term as the cross-entropy H(y_s, teacher); the KL
differs from it by the teacher's entropy, a constant for the student, so
the gradient is the same and the logged value is 0 when the two agree.
"""
import tensorflow as tf

from adder_tf.distill.baseline_losses import hinton_kd
from adder_tf.ops import fused
from adder_tf.ops.moments import RELATIVE_EPSILON, global_mean


def cross_entropy(labels, logits):
    return tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def soft_label_loss(teacher_logits, student_logits, temperature=1.0):
    """The alpha term of L_blend: Hinton KD with the T^2 factor."""
    return hinton_kd(teacher_logits, student_logits, temperature)


def feature_mse(student_feature, teacher_feature, feature_norm="standardize"):
    """One tap's MSE over the global batch, as this replica's share (1 / replicas of it).

    standardize: the MSE between per-channel standardized features, computed
    from global-batch moments (equal to 2 (1 - corr) per channel, in [0, 4])
    without materialising the standardized tensors: the heads' share of a
    PKKD step is dominated by full-size elementwise passes, and this needs
    the fewest. none: the plain MSE. Summed over replicas, either is the
    value one device computes on the global batch.
    """
    ys = tf.convert_to_tensor(student_feature)
    yt = tf.cast(teacher_feature, ys.dtype)
    replicas = float(tf.distribute.get_strategy().num_replicas_in_sync)
    axes = tuple(range(len(ys.shape)))
    if feature_norm == "none":
        return tf.reshape(global_mean(tf.square(ys - yt), axes), ()) / replicas
    axes = axes[:-1]
    if fused.fused_available(ys, yt):
        return _standardized_mse_from_moments(ys, yt) / replicas
    cs = ys - global_mean(ys, axes)
    ct = yt - global_mean(yt, axes)
    raw_s = global_mean(tf.square(cs), axes)
    raw_t = global_mean(tf.square(ct), axes)
    cov = global_mean(cs * ct, axes)
    # standardize()'s epsilon: relative to the tap's mean channel variance.
    var_s = raw_s + RELATIVE_EPSILON * tf.reduce_mean(raw_s) + 1e-30
    var_t = raw_t + RELATIVE_EPSILON * tf.reduce_mean(raw_t) + 1e-30
    # mean((cs / sqrt(var_s) - ct / sqrt(var_t))^2) per channel, from the moments.
    per_channel = raw_s / var_s + raw_t / var_t - 2.0 * cov * tf.math.rsqrt(var_s * var_t)
    return tf.reduce_mean(per_channel) / replicas


def _standardized_mse_from_moments(ys, yt):
    """feature_mse(standardize) from one fused pass: per-channel sums of ys, yt,
    ys^2, yt^2, ys yt in float64 (summed over replicas), then the same formula.
    Equal to the centred formulation to float32 rounding."""
    m = fused.channel_moments(ys, yt)
    count = tf.cast(tf.size(ys) // tf.shape(ys)[-1], tf.float64)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        m = ctx.all_reduce(tf.distribute.ReduceOp.SUM, m)
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    s1, t1, s2, t2, st = tf.unstack(m / count)
    raw_s = s2 - s1 * s1
    raw_t = t2 - t1 * t1
    cov = st - s1 * t1
    var_s = raw_s + RELATIVE_EPSILON * tf.reduce_mean(raw_s) + 1e-30
    var_t = raw_t + RELATIVE_EPSILON * tf.reduce_mean(raw_t) + 1e-30
    per_channel = raw_s / var_s + raw_t / var_t - 2.0 * cov * tf.math.rsqrt(var_s * var_t)
    return tf.cast(tf.reduce_mean(per_channel), ys.dtype)


def reduce_taps(per_tap, feature_norm="standardize"):
    """L_mid from the per-tap terms: their mean (standardize) or their sum (none, eq. 13)."""
    total = tf.add_n(per_tap)
    return total if feature_norm == "none" else total / float(len(per_tap))


def weighted(ce, weighted_terms, divide=True):
    """CE + sum of weight * term, divided by 1 + the sum of the weights (see the
    module docstring) unless `divide` is False. weighted_terms: (weight, term) pairs."""
    total = ce + sum(w * term for w, term in weighted_terms)
    if not divide:
        return total
    return total / (1.0 + sum(w for w, _ in weighted_terms))


def combine(ce, kd, mid, alpha, beta, feature_norm="standardize"):
    """Eq. 14, divided by 1 + alpha + beta unless feature_norm is "none" (as written)."""
    return weighted(ce, [(alpha, kd), (beta, mid)], divide=feature_norm != "none")
