"""One keras.Model that trains a student network, and a CNN teacher beside it.

Why not `keras.distillation.Distiller`: it freezes the teacher and has no
place for trainable alignment heads, and PKKD trains the teacher at the same
time ("progressive") and learns a kernel width and a 1x1 conv per tapped
layer on both sides. So this model keeps two optimizers, the GAN pattern of
the Keras custom-train-step guide: `compile(optimizer=...)` gets the
student's (it also updates the heads), `teacher_optimizer` the CNN's.

Every step:
  teacher (progressive): one plain cross-entropy step;
  student: one step on its method's loss; teacher outputs enter it through
  stop_gradient, so no gradient of the student's loss reaches the CNN.
"""
import warnings

import keras
import tensorflow as tf

from adder_tf import _keras_internals as internals
from adder_tf.batchnorm import ReestimatingFit
from adder_tf.distill import losses
from adder_tf.distill.baseline_losses import nst_loss
from adder_tf.distill.heads import AlignmentHead
from adder_tf.distill.taps import as_list, check_model, resolve_pairs, tapped_view
from adder_tf.optim import adder_filters, is_adaptive

LOSSES = ("ce", "kd", "nst", "pkkd")
TAPPED_LOSSES = ("nst", "pkkd")


def _average(per_example, sample_weight=None):
    """(Weighted) mean over the global batch: correct when replicas' gradients are summed."""
    if sample_weight is not None:
        sample_weight = tf.cast(tf.reshape(sample_weight, [-1]), per_example.dtype)
    return tf.nn.compute_average_loss(per_example, sample_weight=sample_weight)


def _regularization(model):
    """The network's own losses (kernel, bias and activity regularizers), as Keras adds them:
    divided by the replica count, since the replicas' gradients are summed."""
    if not model.losses:
        return 0.0
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) / replicas


def _unpack(data):
    """(images, labels, sample weights or None): what fit, evaluate, train_on_batch and
    test_on_batch hand a step (class_weight arrives as sample weights)."""
    images, labels, weights = keras.utils.unpack_x_y_sample_weight(data)
    if labels is None:
        raise ValueError("a distiller trains and evaluates on (images, labels) batches; got images "
                         "without labels")
    return images, labels, weights


class _Views:
    """The tapped views of both networks, kept out of Keras's tracking: they
    share every weight with the networks, so tracking them would save each
    weight twice in a checkpoint."""

    def __init__(self, student, teacher):
        self.student, self.teacher = student, teacher


class DistillationTrainer(ReestimatingFit, internals.BuiltModelSkipsSymbolicBuild, keras.Model):
    """Trains `student` on `loss` (LOSSES); `teacher` is a CNN for kd, nst and pkkd.

    Use the classes of `adder_tf.distill` (PKKD, KD, NST, Supervised), which
    document the arguments; this is their common step. `fit` re-estimates
    the student's BatchNorm statistics on its training data before every
    validation and when it ends, under any strategy (`ReestimatingFit`); everything
    is built at construction and compile, so Keras's symbolic build is skipped.
    """

    def __init__(self, student, teacher=None, *, loss="pkkd", taps=None, alpha=1.0, beta=1.0,
                 temperature=1.0, feature_loss="kernel_conv1x1", feature_norm="standardize",
                 progressive=True, laplace_width="spread", **kwargs):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        check_model(student, "student")
        if (loss != "ce") != (teacher is not None):
            raise ValueError(f"{loss!r} {'needs a' if loss != 'ce' else 'takes no'} teacher")
        if teacher is not None:
            check_model(teacher, "teacher")
            if tuple(teacher.inputs[0].shape[1:]) != tuple(student.inputs[0].shape[1:]):
                raise ValueError(f"teacher {teacher.name!r} takes inputs of shape "
                                 f"{tuple(teacher.inputs[0].shape[1:])}, student {student.name!r} "
                                 f"{tuple(student.inputs[0].shape[1:])}")
            if teacher.outputs[0].shape[-1] != student.outputs[0].shape[-1]:
                raise ValueError(f"teacher {teacher.name!r} predicts {teacher.outputs[0].shape[-1]} "
                                 f"classes, student {student.name!r} {student.outputs[0].shape[-1]}")
        self.student = student
        self.teacher = teacher
        self.loss_kind = loss
        self.alpha, self.beta, self.temperature = float(alpha), float(beta), float(temperature)
        self.feature_loss = feature_loss
        self.feature_norm = feature_norm
        self.laplace_width = laplace_width
        self.progressive = bool(progressive) and teacher is not None
        self.tap_pairs = (resolve_pairs(teacher, student, taps, same_shape=loss == "pkkd")
                          if loss in TAPPED_LOSSES else [])
        self.tap_names = [s for _, s in self.tap_pairs]
        self._views = _Views(tapped_view(student, self.tap_names),
                             tapped_view(teacher, [t for t, _ in self.tap_pairs])
                             if teacher is not None else None)
        self.student_heads, self.teacher_heads = self._make_heads()
        self.teacher_optimizer = None
        self._trackers = self._make_trackers(student.outputs[0].shape[-1])
        # Every layer is built (heads from the taps' symbolic shapes): nothing
        # waits for a first batch, under a distribution strategy or a restore.
        self.built = True

    def _make_heads(self):
        """One alignment head per tap and side, built from the views' symbolic tap shapes."""
        if self.loss_kind != "pkkd":
            return [], []
        return (self._heads("student", self._views.student.outputs[1:]),
                self._heads("teacher", self._views.teacher.outputs[1:]))

    def _heads(self, side, taps):
        heads = [AlignmentHead(side, self.feature_loss, self.feature_norm,
                               laplace_width=self.laplace_width, name=f"{side}_head_{i}")
                 for i in range(len(taps))]
        for head, tap in zip(heads, taps):
            head.build(tap.shape)
        return heads

    @property
    def uses_heads(self):
        return bool(self.student_heads)

    # -- setup ---------------------------------------------------------------
    def compile(self, optimizer="sgd", teacher_optimizer=None, **kwargs):
        """optimizer: the student's (it also trains the heads); teacher_optimizer:
        the CNN's, required when the teacher is progressive."""
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, **kwargs)
        if self.progressive and teacher_optimizer is None:
            raise ValueError("a progressive teacher needs compile(..., teacher_optimizer=...); "
                             "pass progressive=False to keep the teacher fixed")
        self.teacher_optimizer = (keras.optimizers.get(teacher_optimizer)
                                  if self.progressive else None)
        self._build_optimizers()
        self._warn_if_not_adaptive()

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.teacher_optimizer is not None:
            config["teacher_optimizer"] = keras.saving.serialize_keras_object(self.teacher_optimizer)
        return config

    def compile_from_config(self, config):
        """What load_model calls: both optimizers come back (their slots are then restored)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)

    def _build_optimizers(self):
        """Slots exist before the first replicated step and before a restore."""
        if not self.optimizer.built:
            if self.head_variables and self.feature_norm != "none":
                # Weight decay would pull every log-width to 0 and shrink rho:
                # the heads are loss machinery, not part of the network. (Eq. 13-14
                # as written, feature_norm="none", decays them like every weight.)
                self.optimizer.exclude_from_weight_decay(var_list=self.head_variables)
            self.optimizer.build(self.student_variables)
        if self.teacher_optimizer is not None and not self.teacher_optimizer.built:
            self.teacher_optimizer.build(self.teacher.trainable_variables)

    def _warn_if_not_adaptive(self):
        filters = adder_filters(self.student)
        if filters and not is_adaptive(self.optimizer):
            warnings.warn(f"optimizer {self.optimizer.name!r} trains the student's {len(filters)} "
                          "adder filters without AdderNet's adaptive learning rate; use "
                          "adder_tf.optim.AdderSGD or adder_tf.optim.adaptive(optimizer)",
                          stacklevel=3)

    @property
    def head_variables(self):
        """The heads' trainable weights (both sides): trained by the student's optimizer."""
        return [v for h in self.student_heads + self.teacher_heads for v in h.trainable_variables]

    @property
    def student_variables(self):
        return self.student.trainable_variables + self.head_variables

    def call(self, images, training=False):
        return self.student(images, training=training)

    def tap_outputs(self, images, training=False):
        """(student logits, student taps, teacher logits, teacher taps), taps in pair order."""
        s_out = as_list(self._views.student(images, training=training))
        t_out = (as_list(self._views.teacher(images, training=training))
                 if self.teacher is not None else [None])
        return s_out[0], s_out[1:], t_out[0], t_out[1:]

    # -- metrics -------------------------------------------------------------
    def _make_trackers(self, num_classes):
        """All metric objects, made up front: none may be created inside a replicated step."""
        names = ["loss", "loss_ce"]
        if self.loss_kind in ("kd", "pkkd"):
            names.append("loss_kd")
        if self.loss_kind in TAPPED_LOSSES:
            names.append("loss_mid")
        if self.teacher is not None:
            names.append("teacher_loss")
        trackers = {n: keras.metrics.Mean(name=n) for n in names}
        k = min(5, num_classes)
        for prefix in ("", "teacher_") if self.teacher is not None else ("",):
            trackers[f"{prefix}top1"] = keras.metrics.SparseCategoricalAccuracy(name=f"{prefix}top1")
            trackers[f"{prefix}top5"] = keras.metrics.SparseTopKCategoricalAccuracy(k=k, name=f"{prefix}top5")
        return trackers

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _log_losses(self, values):
        # _average scales by 1/replicas for the gradient sum; undo it for display.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for name, value in values.items():
            self._trackers[name].update_state(value * replicas)

    def _log_accuracy(self, prefix, labels, logits, sample_weight=None):
        logits = tf.cast(logits, tf.float32)  # in_top_k takes float32 only
        self._trackers[f"{prefix}top1"].update_state(labels, logits, sample_weight)
        self._trackers[f"{prefix}top5"].update_state(labels, logits, sample_weight)

    def _results(self, names=None):
        results = {n: m.result() for n, m in self._trackers.items() if names is None or n in names}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 reduces step logs across workers with a mean over axis 0,
            # which fails on scalars (tensorflow/tensorflow#72388): hand it
            # one-element vectors, which it reduces back to scalars.
            results = {n: tf.reshape(v, [1]) for n, v in results.items()}
        return results

    # -- losses --------------------------------------------------------------
    def student_loss(self, labels, s_logits, s_taps, t_logits, t_taps, sample_weight=None):
        """The method's loss for the student, with its terms for logging.

        sample_weight weighs the per-example terms (cross-entropy, KD, NST);
        PKKD with a feature term refuses weights in train_step.
        """
        ce = _average(losses.cross_entropy(labels, s_logits), sample_weight)
        terms = {"ce": ce}
        if self.loss_kind in ("kd", "pkkd"):
            terms["kd"] = _average(losses.soft_label_loss(t_logits, s_logits, self.temperature),
                                   sample_weight)
        if self.loss_kind == "pkkd":
            terms["mid"] = self._feature_loss(list(s_taps), list(t_taps))
            total = losses.combine(ce, terms["kd"], terms["mid"], self.alpha, self.beta,
                                   self.feature_norm)
            return total, terms
        if self.loss_kind == "nst":
            terms["mid"] = _average(nst_loss(t_taps, s_taps), sample_weight)
        # KD and NST: the same convention as PKKD's default, divided by 1 + their weights.
        weights = {"kd": self.alpha, "mid": self.beta}
        total = losses.weighted(ce, [(weights[k], v) for k, v in terms.items() if k != "ce"])
        return total, terms

    def _feature_loss(self, s_taps, t_taps):
        """L_mid (this replica's share): every tap through its two heads, reduced over taps."""
        return losses.reduce_taps([
            losses.feature_mse(sh(s), th(tf.stop_gradient(t)), self.feature_norm)
            for s, t, sh, th in zip(s_taps, t_taps, self.student_heads, self.teacher_heads)],
            self.feature_norm)

    # -- steps ---------------------------------------------------------------
    def train_step(self, data):
        images, labels, weights = _unpack(data)
        if weights is not None and self.loss_kind == "pkkd" and self.beta > 0:
            raise ValueError("PKKD's feature term compares whole-batch statistics and cannot weigh "
                             "examples: train PKKD without sample_weight / class_weight (or with beta=0)")
        with tf.GradientTape(persistent=True) as tape:
            t_logits, t_taps = None, None
            if self.teacher is not None:
                t_out = as_list(self._views.teacher(images, training=self.progressive))
                t_logits, t_taps = t_out[0], t_out[1:]
                t_loss = _average(losses.cross_entropy(labels, t_logits), weights)
                if self.progressive:
                    t_loss += _regularization(self.teacher)
            s_out = as_list(self._views.student(images, training=True))
            s_logits, s_taps = s_out[0], s_out[1:]
            loss, terms = self.student_loss(labels, s_logits, s_taps, t_logits, t_taps, weights)
            loss += _regularization(self.student)
        student_vars = self.student_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, student_vars), student_vars))
        if self.progressive:
            teacher_vars = self.teacher.trainable_variables
            self.teacher_optimizer.apply_gradients(
                zip(tape.gradient(t_loss, teacher_vars), teacher_vars))
        del tape
        logged = {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}
        if self.teacher is not None:
            logged["teacher_loss"] = t_loss
            self._log_accuracy("teacher_", labels, t_logits, weights)
        self._log_losses(logged)
        self._log_accuracy("", labels, s_logits, weights)
        return self._results()

    def test_step(self, data):
        images, labels, weights = _unpack(data)
        s_logits = self.student(images, training=False)
        self._log_losses({"loss_ce": _average(losses.cross_entropy(labels, s_logits), weights)})
        self._log_accuracy("", labels, s_logits, weights)
        if self.teacher is not None:
            self._log_accuracy("teacher_", labels, self.teacher(images, training=False), weights)
        return self._results(self.test_names)

    @property
    def test_names(self):
        """What evaluate (and each validation, as val_<name>) reports."""
        return ["loss_ce", "top1", "top5"] + (
            ["teacher_top1", "teacher_top5"] if self.teacher is not None else [])
