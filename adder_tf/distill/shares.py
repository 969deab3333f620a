"""How much of the student's gradient each loss term supplies.

For a distiller's loss  L = (CE + alpha KD + beta L_mid) / Z,  the share of
a term is the norm of its own weighted gradient over the sum of the three
norms, all with respect to the student's weights and on one fixed batch
(both networks in training mode, as in a step; nothing persists). The
common divisor Z cancels. A share near 0 means the term does not steer the
student, whatever its logged value; a share near 1 means it alone does.
"""
import tensorflow as tf

from adder_tf.distill.health import batch_statistics


def gradient_shares(trainer, images, labels):
    """{"ce": share, "kd": share, "mid": share} (the terms the method has), summing to 1."""
    weights = {"ce": 1.0, **{term.name: term.weight for term in trainer.terms}}
    variables = trainer.student.trainable_variables
    with batch_statistics(trainer):
        with tf.GradientTape(persistent=True) as tape:
            s_logits, s_taps, t_logits, t_taps = trainer.tap_outputs(images, training=True)
            _, terms = trainer.student_loss(labels, s_logits, s_taps, t_logits, t_taps)
        norms = {}
        for name, term in terms.items():
            grads = [g for g in tape.gradient(term, variables) if g is not None]
            norms[name] = weights[name] * float(tf.linalg.global_norm(grads)) if grads else 0.0
        del tape
    total = sum(norms.values()) or 1.0
    return {name: norm / total for name, norm in norms.items()}
