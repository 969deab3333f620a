"""PKKD's losses (Xu et al. 2020, eq. 13-14), as per-example vectors.

Every function returns one value per example so the trainer can divide by
the GLOBAL batch size (tf.nn.compute_average_loss): summed across replicas
that gives the same gradient as one device, which a plain mean would not.

    L       = beta * L_mid + L_blend
    L_blend = alpha * KL(softmax(teacher / T) || softmax(student / T)) * T^2 + CE(labels, student)
    L_mid   = sum over tapped layers of MSE(standardize(y_a), standardize(y_c))

The paper writes the soft term as the cross-entropy H(y_s, teacher); the KL
differs from it by the teacher's entropy, a constant for the student, so
the gradient is the same and the logged value is 0 when the two agree.
"""
import tensorflow as tf

from adder_tf.distill.baseline_losses import hinton_kd
from adder_tf.distill.heads import standardize


def cross_entropy(labels, logits):
    return tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


def soft_label_loss(teacher_logits, student_logits, temperature=1.0):
    """The alpha term of L_blend: Hinton KD with the T^2 factor."""
    return hinton_kd(teacher_logits, student_logits, temperature)


def feature_mse(student_feature, teacher_feature):
    """Per-example MSE between standardized features (bounded in [0, 4])."""
    diff = standardize(student_feature) - standardize(teacher_feature)
    return tf.reduce_mean(tf.square(diff), axis=tf.range(1, tf.rank(diff)))
