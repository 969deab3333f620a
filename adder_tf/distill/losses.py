"""PKKD's losses (Xu et al. 2020, eq. 13-14), and the convention every distiller follows.

Every term is the value one device computes on the batch: per-example
terms are averaged over the batch with Keras's convention (sum of weight *
loss over the batch size, `mean_over_batch`); the feature term compares
per-channel moments of the global batch (`adder_tf.ops.moments`), the same
on every replica. A distiller's step divides its total loss by the number
of replicas once, as Keras scales a loss for distribution
(`adder_tf.distill.scaling`), because the replicas' gradients are summed.

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

from adder_tf.ops.moments import channel_moments, global_mean, regularized_variance


def cross_entropy(labels, logits):
    return tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def mean_over_batch(per_example, sample_weight=None):
    """sum(sample_weight * per_example) / batch size: Keras's "sum_over_batch_size"."""
    if sample_weight is not None:
        sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), per_example.dtype)
        per_example = per_example * sample_weight
    count = tf.cast(tf.shape(per_example)[0], per_example.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(per_example), count)


def feature_mse(student_feature, teacher_feature, feature_norm="standardize"):
    """One tap's MSE over the global batch.

    standardize: the MSE between per-channel standardized features (equal to
    2 (1 - corr) per channel, in [0, 4]), computed from the pair's
    `channel_moments` without materialising the standardized tensors: the
    heads' share of a PKKD step is dominated by full-size elementwise
    passes, and this needs the fewest. none: the plain MSE.
    """
    ys = tf.convert_to_tensor(student_feature)
    yt = tf.cast(teacher_feature, ys.dtype)
    if feature_norm == "none":
        return tf.reshape(global_mean(tf.square(ys - yt), tuple(range(len(ys.shape)))), ())
    return tf.cast(standardized_mse(channel_moments(ys, yt)), ys.dtype)


def standardized_mse(m):
    """mean over channels of mean((cs / sqrt(var_s) - ct / sqrt(var_t))^2), from moments `m`
    (`standardize`'s epsilon on each variance)."""
    var_s = regularized_variance(m.variance)
    var_t = regularized_variance(m.other_variance)
    per_channel = (m.variance / var_s + m.other_variance / var_t
                   - 2.0 * m.covariance * tf.math.rsqrt(var_s * var_t))
    return tf.reduce_mean(per_channel)


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
