"""The terms of a distiller's student loss: small objects, each with its own weight.

As `keras.distillation.Distiller` composes `DistillationLoss` objects, a
distiller here is its student's cross-entropy plus a list of terms,

    loss = (CE + sum of weight * term) / (1 + sum of the weights)

(`adder_tf.distill.losses` for why; a term may declare its loss undivided,
as PKKD's eq. 13-14 as written is). Each term gets both networks' outputs,
`[logits, *outputs of the tapped layers]`, in `compute_loss(teacher_outputs,
student_outputs, sample_weight)`, teacher outputs held constant. A new
method is one term class here and one short distiller class in
`adder_tf.distill.methods` that lists it.
"""
import tensorflow as tf

from adder_tf.distill import losses
from adder_tf.distill.baseline_losses import nst_loss
from adder_tf.distill.heads import AlignmentHead


class LossTerm:
    """One weighted term. Subclasses set `name` (logged as loss_<name>) and
    implement `compute_loss`; the class attributes say what the distiller must
    provide or refuse."""

    name = None
    uses_taps = False         # compares tapped layers: the distiller resolves its taps
    same_shape = False        # ... and each pair's outputs must have the same shape
    weighs_examples = True    # False: sample weights cannot apply (refused in train_step)
    undivided = False         # True: the distiller's loss is not divided by 1 + the weights
    decays_heads = False      # True: weight decay applies to the term's heads

    def __init__(self, weight=1.0, argument="weight"):
        self.weight = float(weight)
        self.argument = argument   # the distiller's argument that sets the weight, for messages
        self.student_heads, self.teacher_heads = [], []

    def build(self, student_taps, teacher_taps):
        """Make the term's layers from the symbolic outputs of the tapped layers."""

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None):
        """A scalar: the term on this batch, as one device computes it."""
        raise NotImplementedError


class SoftLabels(LossTerm):
    """Hinton KD on the logits at temperature T: T^2 KL(teacher || student) per example."""

    name = "kd"

    def __init__(self, weight=1.0, temperature=1.0, argument="alpha"):
        super().__init__(weight, argument)
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None):
        per_example = losses.soft_label_loss(teacher_outputs[0], student_outputs[0],
                                             self.temperature)
        return losses.mean_over_batch(per_example, sample_weight)


class SelectivityTransfer(LossTerm):
    """Neuron Selectivity Transfer (MMD of channel maps) on the taps, per example."""

    name = "mid"
    uses_taps = True

    def __init__(self, weight=1.0, argument="beta"):
        super().__init__(weight, argument)

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None):
        return losses.mean_over_batch(nst_loss(teacher_outputs[1:], student_outputs[1:]),
                                      sample_weight)


class KernelFeatures(LossTerm):
    """PKKD's L_mid: each tap through its two alignment heads (`heads`), the MSE of
    their outputs over the global batch (`losses.feature_mse`), reduced over taps."""

    name = "mid"
    uses_taps = True
    same_shape = True
    weighs_examples = False

    def __init__(self, weight=1.0, feature_loss="kernel_conv1x1", feature_norm="standardize",
                 laplace_width="spread", argument="beta"):
        super().__init__(weight, argument)
        self.feature_loss, self.feature_norm = feature_loss, feature_norm
        self.laplace_width = laplace_width
        # eq. 13-14 as written: undivided, and its heads decay like every weight;
        # otherwise weight decay would pull every log-width to 0 and shrink rho
        # (the heads are loss machinery, not part of the network).
        self.undivided = self.decays_heads = feature_norm == "none"

    def build(self, student_taps, teacher_taps):
        self.student_heads = self._heads("student", student_taps)
        self.teacher_heads = self._heads("teacher", teacher_taps)

    def _heads(self, side, taps):
        heads = [AlignmentHead(side, self.feature_loss, self.feature_norm,
                               laplace_width=self.laplace_width, name=f"{side}_head_{i}")
                 for i in range(len(taps))]
        for head, tap in zip(heads, taps):
            head.build(tap.shape)
        return heads

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None):
        return losses.reduce_taps([
            losses.feature_mse(sh(s), th(tf.stop_gradient(t)), self.feature_norm)
            for s, t, sh, th in zip(student_outputs[1:], teacher_outputs[1:],
                                    self.student_heads, self.teacher_heads)],
            self.feature_norm)
