"""The distillers a user builds: PKKD, KD, NST, and Supervised (no teacher).

Each is a keras.Model over two ordinary single-output Keras models (image ->
logits). Build, compile, fit:

    pkkd = adder_tf.distill.PKKD(teacher=cnn, student=ann, alpha=1.0, beta=1.0)
    pkkd.compile(optimizer=AdderSGD(0.1), teacher_optimizer=AdderSGD(0.1, eta=0))
    pkkd.fit(train_ds, validation_data=test_ds, epochs=...)
    pkkd.student.save("ann.keras")

Nothing else is needed: the taps are resolved and checked, and the heads
built, when the distiller is constructed; the optimizers' slots are made by
compile. `.student` and `.teacher` are the networks themselves; the
distiller's own weights (the heads) exist only for training. Arguments are
checked at construction and a wrong one is named in the error. A distiller
saves and loads as a whole (`pkkd.save("run.keras")`, `keras.saving.load_model`),
both networks, heads and both optimizers' states, to go on training.

Each class lists its loss terms (`adder_tf.distill.terms`, which check the
arguments) and keeps its arguments for its config; the step is
`DistillationTrainer`'s. compile takes jit_compile=False by default, as
AdderModel does.
"""
import keras

from adder_tf.distill.terms import KernelFeatures, SelectivityTransfer, SoftLabels
from adder_tf.distill.trainer import DistillationTrainer


class _Serializable:
    """get_config/from_config for a distiller: both networks travel inside its config."""

    _ARGS = ()

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "student": keras.saving.serialize_keras_object(self.student)}
        if self.teacher is not None:
            config["teacher"] = keras.saving.serialize_keras_object(self.teacher)
        for arg in self._ARGS:
            config[arg] = ([list(pair) for pair in self.tap_pairs] if arg == "taps"
                           else getattr(self, arg))
        return config

    def _keep(self, **args):
        """The arguments as the terms validated them, as attributes (what get_config reads)."""
        for name, value in args.items():
            setattr(self, name, value)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for role in ("student", "teacher"):
            if role in config:
                config[role] = keras.saving.deserialize_keras_object(config[role])
        return cls(**config)


@keras.saving.register_keras_serializable(package="adder_tf")
class PKKD(_Serializable, DistillationTrainer):
    """Progressive kernel-based knowledge distillation (Xu et al., NeurIPS 2020).

    teacher: a CNN (image -> logits); student: the ANN to train.
    taps: None pairs every AdderConv2D of the student (not the network's
      first or last layer) with the teacher's layer of the same name; or a
      list of (teacher_layer_name, student_layer_name). Each pair's outputs
      must have the same shape.
    alpha, beta: weights of the soft-label and feature terms; the student
      minimises (CE + alpha KD + beta L_mid) / (1 + alpha + beta) with
      feature_norm="standardize" (see `adder_tf.distill.losses`).
    temperature: of the soft labels.
    feature_loss: "kernel_conv1x1" (the paper's), "kernel", "conv1x1", "raw".
    feature_norm: "standardize" (default, does not collapse) or "none"
      (eq. 13-14 as written).
    laplace_width: the student kernel's width (`adder_tf.layers.kernels`):
      "spread" (default) or "mean" (the earlier, nearly affine width);
      feature_norm="none" uses eq. 8 as written whatever this says.
    progressive: True trains the teacher beside the student (needs
      compile(teacher_optimizer=...)); False keeps it fixed.
    """

    _ARGS = ("taps", "alpha", "beta", "temperature", "feature_loss", "feature_norm", "progressive",
             "laplace_width")

    def __init__(self, teacher, student, *, taps=None, alpha=1.0, beta=1.0, temperature=1.0,
                 feature_loss="kernel_conv1x1", feature_norm="standardize", progressive=True,
                 laplace_width="spread", **kwargs):
        soft = SoftLabels(alpha, temperature)
        features = KernelFeatures(beta, feature_loss, feature_norm, laplace_width)
        super().__init__(student, teacher, terms=[soft, features], taps=taps,
                         progressive=progressive, **kwargs)
        self._keep(alpha=soft.weight, temperature=soft.temperature, beta=features.weight,
                   feature_loss=features.feature_loss, feature_norm=features.feature_norm,
                   laplace_width=features.laplace_width)


@keras.saving.register_keras_serializable(package="adder_tf")
class KD(_Serializable, DistillationTrainer):
    """Hinton's knowledge distillation at temperature T: the student minimises
    (CE + alpha * T^2 KL(teacher || student)) / (1 + alpha), PKKD's convention."""

    _ARGS = ("alpha", "temperature", "progressive")

    def __init__(self, teacher, student, *, alpha=1.0, temperature=1.0, progressive=True, **kwargs):
        soft = SoftLabels(alpha, temperature)
        super().__init__(student, teacher, terms=[soft], progressive=progressive, **kwargs)
        self._keep(alpha=soft.weight, temperature=soft.temperature)


@keras.saving.register_keras_serializable(package="adder_tf")
class NST(_Serializable, DistillationTrainer):
    """Neural selectivity transfer (MMD of channel maps) on the taps: the student
    minimises (CE + beta * NST) / (1 + beta), PKKD's convention.

    taps as in PKKD; the paired layers may differ in channels and size.
    """

    _ARGS = ("taps", "beta", "progressive")

    def __init__(self, teacher, student, *, taps=None, beta=1.0, progressive=True, **kwargs):
        nst = SelectivityTransfer(beta)
        super().__init__(student, teacher, terms=[nst], taps=taps, progressive=progressive,
                         **kwargs)
        self._keep(beta=nst.weight)


@keras.saving.register_keras_serializable(package="adder_tf")
class Supervised(_Serializable, DistillationTrainer):
    """No teacher: cross-entropy only, with the same logs and callbacks as the distillers."""


    def __init__(self, student, **kwargs):
        super().__init__(student, None, **kwargs)
