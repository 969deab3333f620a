"""PKKD's losses (Xu et al. 2020, eq. 13-14), as per-example vectors.

Every function returns one value per example so the trainer can divide by
the GLOBAL batch size (tf.nn.compute_average_loss): summed across replicas
that gives the same gradient as one device, which a plain mean would not.

    L       = beta * L_mid + L_blend
    L_blend = alpha * H(y_s, softmax(teacher / T)) * T^2 + H(y_s, labels)
    L_mid   = sum over tapped layers of MSE(standardize(y_a), standardize(y_c))
"""
import tensorflow as tf

from adder_tf.distill.heads import standardize


def cross_entropy(labels, logits):
    return tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def soft_cross_entropy(teacher_logits, student_logits, temperature=1.0):
    """H(softmax(t/T), softmax(s/T)) * T^2, teacher held constant.

    This is Hinton KD up to the teacher's entropy, a constant for the
    student, so its gradient equals the KL form's.
    """
    t = tf.nn.softmax(tf.stop_gradient(teacher_logits) / temperature)
    log_s = tf.nn.log_softmax(student_logits / temperature)
    return -tf.reduce_sum(t * log_s, axis=-1) * temperature ** 2


def blend_loss(labels, teacher_logits, student_logits, alpha, temperature=1.0):
    return (alpha * soft_cross_entropy(teacher_logits, student_logits, temperature)
            + cross_entropy(labels, student_logits))


def feature_mse(student_feature, teacher_feature):
    """Per-example MSE between standardized features (bounded in [0, 4])."""
    diff = standardize(student_feature) - standardize(teacher_feature)
    return tf.reduce_mean(tf.square(diff), axis=tf.range(1, tf.rank(diff)))


def mid_loss(student_features, teacher_features):
    """Sum over the tapped layers; the lists are aligned by position."""
    return tf.add_n([feature_mse(s, t) for s, t in zip(student_features, teacher_features)])
