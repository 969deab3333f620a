"""The baselines of the paper's tables: Hinton KD and Neuron Selectivity Transfer.

Both return one value per example; the loss terms `SoftLabels` and
`SelectivityTransfer` (`adder_tf.distill.terms`, Keras distillation losses)
average them over the batch. Teacher inputs are held constant
(stop_gradient) here as well, whatever the caller does.
"""
import tensorflow as tf


def hinton_kd(teacher_logits, student_logits, temperature=1.0):
    """KL(softmax(t/T) || softmax(s/T)) * T^2 per example (Hinton et al. 2015).

    Summed over classes with log_softmax on both sides, as RepDistiller and
    mdistiller compute it; the T^2 keeps gradient magnitudes comparable
    across temperatures.
    """
    t = tf.stop_gradient(teacher_logits) / temperature
    log_p_t = tf.nn.log_softmax(t)
    log_p_s = tf.nn.log_softmax(student_logits / temperature)
    return tf.reduce_sum(tf.exp(log_p_t) * (log_p_t - log_p_s), axis=-1) * temperature ** 2


def _pool_to(feature, size):
    """Average-pool an NHWC map down to `size` x `size` (NST pairs differing sizes)."""
    ratio = feature.shape[1] // size
    if ratio == 1:
        return feature
    return tf.nn.avg_pool2d(feature, ratio, ratio, "VALID")


def _channel_maps(feature):
    """(B, H, W, C) -> (B, C, HW), each channel's map l2-normalised over HW."""
    b, h, w, c = tf.unstack(tf.shape(feature))
    maps = tf.transpose(tf.reshape(feature, [b, h * w, c]), [0, 2, 1])
    return tf.math.l2_normalize(maps, axis=-1)


def _poly_kernel_mean(a, b):
    """Mean over the C x C channel pairs of (a_i . b_j)^2, per example."""
    return tf.reduce_mean(tf.square(tf.matmul(a, b, transpose_b=True)), axis=[1, 2])


def nst_pair(teacher_feature, student_feature):
    """Squared MMD with the polynomial kernel k(a, b) = (a . b)^2 (Huang & Wang 2017)."""
    size = min(teacher_feature.shape[1], student_feature.shape[1])
    t = _channel_maps(_pool_to(tf.stop_gradient(teacher_feature), size))
    s = _channel_maps(_pool_to(student_feature, size))
    return _poly_kernel_mean(t, t) + _poly_kernel_mean(s, s) - 2.0 * _poly_kernel_mean(s, t)


def nst_loss(teacher_features, student_features):
    """NST averaged over aligned lists of feature maps, per example.

    The mean over taps, as PKKD's L_mid: with a sum, the same beta would weigh
    NST's feature term (number of taps) times PKKD's (12x on ResNet-14).
    """
    pairs = [nst_pair(t, s) for t, s in zip(teacher_features, student_features)]
    return tf.add_n(pairs) / float(len(pairs))

