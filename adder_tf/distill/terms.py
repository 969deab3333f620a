"""The terms of a distiller's student loss: Keras distillation losses with their own weights.

Every term is a `keras.distillation.DistillationLoss`:
`compute_loss(teacher_outputs, student_outputs, sample_weight=None)` gives
a scalar, the term on this batch as one device computes it, teacher
outputs held constant. As `keras.distillation.Distiller` does, a
distiller here hands a term the two networks' logits or, for a term that
compares tapped layers (`uses_taps`), aligned lists of the tapped layers'
outputs. A distiller is its student's cross-entropy plus a list of terms,

    loss = (CE + sum of weight * term) / (1 + sum of the weights)

(`adder_tf.distill.losses` for why; a term may declare its loss undivided,
as PKKD's eq. 13-14 as written is). A new method is one term class here
and one short distiller class in `adder_tf.distill.methods` that lists it.

`SoftLabels` and `SelectivityTransfer` also work in Keras's own
`Distiller` (which weighs them with its `distillation_loss_weights`, not
their `weight`, and picks an NST layer by `teacher_layer_name` /
`student_layer_name`); `KernelFeatures` trains alignment heads, which
Keras's Distiller has no place for, and refuses it at construction.
Arguments are checked when a term is built, a wrong one named in the error.
"""
import keras
import tensorflow as tf

from adder_tf.config import FEATURE_LOSSES, FEATURE_NORMS, LAPLACE_WIDTHS
from adder_tf.distill import losses
from adder_tf.distill.baseline_losses import hinton_kd, nst_loss
from adder_tf.distill.heads import AlignmentHead


def check_weight(name, value):
    if not isinstance(value, (int, float)) or value < 0 or value != value:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def check_temperature(value):
    if not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"temperature must be a number > 0, got {value!r}")
    return float(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


class LossTerm(keras.distillation.DistillationLoss):
    """One weighted term. Subclasses set `name` (logged as loss_<name>) and
    implement `compute_loss`; the class attributes say what the distiller must
    provide or refuse. `argument` is the distiller's argument that sets the
    weight, named in messages."""

    name = None
    uses_taps = False         # compares tapped layers: the distiller resolves its taps
    same_shape = False        # ... and each pair's outputs must have the same shape
    weighs_examples = True    # False: sample weights cannot apply (refused in train_step)
    undivided = False         # True: the distiller's loss is not divided by 1 + the weights
    decays_heads = False      # True: weight decay applies to the term's heads

    def __init__(self, weight=1.0, argument="weight"):
        self.weight = check_weight(argument, weight)
        self.argument = argument
        self.student_heads, self.teacher_heads = [], []

    def build(self, student_taps, teacher_taps):
        """Make the term's layers from the symbolic outputs of the tapped layers."""

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {"weight": self.weight, "argument": self.argument}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="adder_tf")
class SoftLabels(LossTerm):
    """Hinton KD on the logits at temperature T: T^2 KL(teacher || student) per
    example (`baseline_losses.hinton_kd`), averaged over the batch."""

    name = "kd"

    def __init__(self, weight=1.0, temperature=1.0, argument="alpha"):
        super().__init__(weight, argument)
        self.temperature = check_temperature(temperature)

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, **kwargs):
        return losses.mean_over_batch(hinton_kd(teacher_outputs, student_outputs,
                                                self.temperature), sample_weight)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="adder_tf")
class SelectivityTransfer(LossTerm):
    """Neuron Selectivity Transfer (MMD of channel maps, `baseline_losses.nst_loss`)
    on aligned lists of NHWC maps (or one map each), averaged over the batch."""

    name = "mid"
    uses_taps = True

    def __init__(self, weight=1.0, argument="beta", *, teacher_layer_name=None,
                 student_layer_name=None):
        super().__init__(weight, argument)
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, **kwargs):
        if not isinstance(teacher_outputs, (list, tuple)):
            teacher_outputs, student_outputs = [teacher_outputs], [student_outputs]
        return losses.mean_over_batch(nst_loss(list(teacher_outputs), list(student_outputs)),
                                      sample_weight)

    def get_config(self):
        return {**super().get_config(), "teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}


@keras.saving.register_keras_serializable(package="adder_tf")
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
        self.feature_loss = check_choice("feature_loss", feature_loss, FEATURE_LOSSES)
        self.feature_norm = check_choice("feature_norm", feature_norm, FEATURE_NORMS)
        self.laplace_width = check_choice("laplace_width", laplace_width, LAPLACE_WIDTHS)
        # eq. 13-14 as written: undivided, and its heads decay like every weight;
        # otherwise weight decay would pull every log-width to 0 and shrink rho
        # (the heads are loss machinery, not part of the network).
        self.undivided = self.decays_heads = feature_norm == "none"

    def build(self, student_taps, teacher_taps):
        self.student_heads = self._heads("student", student_taps)
        self.teacher_heads = self._heads("teacher", teacher_taps)

    def validate_model_compatibility(self, teacher, student):
        if not self.student_heads:
            raise ValueError("KernelFeatures trains alignment heads on tapped layers, which "
                             "keras.distillation.Distiller cannot hold: use adder_tf.distill.PKKD")

    def _heads(self, side, taps):
        heads = [AlignmentHead(side, self.feature_loss, self.feature_norm,
                               laplace_width=self.laplace_width, name=f"{side}_head_{i}")
                 for i in range(len(taps))]
        for head, tap in zip(heads, taps):
            head.build(tap.shape)
        return heads

    def compute_loss(self, teacher_outputs, student_outputs, sample_weight=None, **kwargs):
        return losses.reduce_taps([
            losses.feature_mse(sh(s), th(tf.stop_gradient(t)), self.feature_norm)
            for s, t, sh, th in zip(student_outputs, teacher_outputs,
                                    self.student_heads, self.teacher_heads)],
            self.feature_norm)

    def get_config(self):
        return {**super().get_config(), "feature_loss": self.feature_loss,
                "feature_norm": self.feature_norm, "laplace_width": self.laplace_width}
