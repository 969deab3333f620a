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
import keras
import tensorflow as tf

from adder_tf.config import METHODS, TEACHER_METHODS
from adder_tf.distill import losses
from adder_tf.distill.baseline_losses import nst_loss
from adder_tf.distill.heads import AlignmentHead


def _average(per_example):
    """Mean over the global batch: correct when replicas' gradients are summed."""
    return tf.nn.compute_average_loss(per_example)


class DistillationTrainer(keras.Model):
    """Trains `student` with method in METHODS; `teacher` is a CNN with the same taps."""

    def __init__(self, student, teacher=None, *, method="pkkd", alpha=1.0, beta=1.0,
                 temperature=1.0, feature_loss="kernel_conv1x1", feature_norm="standardize",
                 teacher_mode="progressive", **kwargs):
        super().__init__(**kwargs)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if (method in TEACHER_METHODS) != (teacher is not None):
            raise ValueError(f"method {method!r} {'needs' if method in TEACHER_METHODS else 'takes no'} teacher")
        self.student = student
        self.teacher = teacher
        self.method = method
        self.alpha, self.beta, self.temperature = float(alpha), float(beta), float(temperature)
        self.feature_loss = feature_loss
        self.feature_norm = feature_norm
        self.train_teacher = teacher is not None and teacher_mode == "progressive"
        n_taps = len(student.outputs) - 1
        self.tap_names = [t._keras_history[0].name for t in student.outputs[1:]]
        self.uses_heads = method == "pkkd"
        self.student_heads = [AlignmentHead("student", feature_loss, feature_norm,
                                            name=f"student_head_{i}")
                              for i in range(n_taps)] if self.uses_heads else []
        self.teacher_heads = [AlignmentHead("teacher", feature_loss, feature_norm,
                                            name=f"teacher_head_{i}")
                              for i in range(n_taps)] if self.uses_heads else []
        self.teacher_optimizer = None
        self._trackers = self._make_trackers(n_taps, student.outputs[0].shape[-1])

    # -- setup ---------------------------------------------------------------
    def compile(self, optimizer, teacher_optimizer=None, **kwargs):
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=optimizer, **kwargs)
        if self.train_teacher and teacher_optimizer is None:
            raise ValueError("a progressive teacher needs teacher_optimizer")
        self.teacher_optimizer = teacher_optimizer if self.train_teacher else None

    def initialize(self, images):
        """Build heads and optimizers; exclude the heads from weight decay.

        Run once, eagerly, inside the strategy scope and before fit, so that
        every variable (optimizer slots included) exists before the first
        replicated step and before a checkpoint is restored into it. The
        heads need nothing from the data: kernel widths follow each batch.
        """
        s_out = self.student(images, training=False)
        if self.teacher is not None:
            t_out = self.teacher(images, training=False)
            for head, tap in zip(self.teacher_heads, t_out[1:]):
                head.build(tap.shape)
        for head, tap in zip(self.student_heads, s_out[1:]):
            head.build(tap.shape)
        head_vars = [v for h in self.student_heads + self.teacher_heads
                     for v in h.trainable_variables]
        if head_vars:
            # Weight decay would pull every log-width to 0 and shrink rho: the
            # heads are loss machinery, not part of the network.
            self.optimizer.exclude_from_weight_decay(var_list=head_vars)
        self.optimizer.build(self.student_variables)
        if self.teacher_optimizer is not None:
            self.teacher_optimizer.build(self.teacher.trainable_variables)
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # `initialize` has built every layer and both optimizers. Keras's own
        # symbolic build would also pull a batch and reduce it across
        # workers, which fails under MultiWorkerMirroredStrategy (an eager
        # reduce of a PerReplica batch), so it is skipped once built.
        if not self.built:
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    @property
    def student_variables(self):
        head_vars = [v for h in self.student_heads + self.teacher_heads
                     for v in h.trainable_variables]
        return self.student.trainable_variables + head_vars

    def call(self, images, training=False):
        return self.student(images, training=training)[0]

    # -- metrics -------------------------------------------------------------
    def _make_trackers(self, n_taps, num_classes):
        """All metric objects, made up front: none may be created inside a replicated step."""
        names = ["loss", "loss_ce"]
        if self.method in ("kd", "pkkd"):
            names.append("loss_kd")
        if self.method in ("mmd", "pkkd"):
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

    def _log_accuracy(self, prefix, labels, logits):
        logits = tf.cast(logits, tf.float32)  # in_top_k takes float32 only
        self._trackers[f"{prefix}top1"].update_state(labels, logits)
        self._trackers[f"{prefix}top5"].update_state(labels, logits)

    def _results(self, names=None):
        results = {n: m.result() for n, m in self._trackers.items() if names is None or n in names}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3 reduces step logs across workers with a mean over axis 0,
            # which fails on scalars (tensorflow/tensorflow#72388): hand it
            # one-element vectors, which it reduces back to scalars.
            results = {n: tf.reshape(v, [1]) for n, v in results.items()}
        return results

    # -- losses --------------------------------------------------------------
    def student_loss(self, labels, s_logits, s_taps, t_logits, t_taps):
        """The method's loss for the student, with its terms for logging."""
        ce = _average(losses.cross_entropy(labels, s_logits))
        terms = {"ce": ce}
        if self.method in ("kd", "pkkd"):
            terms["kd"] = _average(losses.soft_label_loss(t_logits, s_logits, self.temperature))
        if self.method == "pkkd":
            terms["mid"] = self._feature_loss(list(s_taps), list(t_taps))
            total = losses.combine(ce, terms["kd"], terms["mid"], self.alpha, self.beta,
                                   self.feature_norm)
            return total, terms
        if self.method == "mmd":
            terms["mid"] = _average(nst_loss(t_taps, s_taps))
        total = ce + self.alpha * terms.get("kd", 0.0) + self.beta * terms.get("mid", 0.0)
        return total, terms

    def _feature_loss(self, s_taps, t_taps):
        """L_mid (this replica's share): every tap through its two heads, reduced over taps."""
        return losses.reduce_taps([
            losses.feature_mse(sh(s), th(tf.stop_gradient(t)), self.feature_norm)
            for s, t, sh, th in zip(s_taps, t_taps, self.student_heads, self.teacher_heads)],
            self.feature_norm)

    # -- steps ---------------------------------------------------------------
    def train_step(self, data):
        images, labels = data
        t_logits = t_taps = None
        with tf.GradientTape(persistent=True) as tape:
            if self.teacher is not None:
                t_out = self.teacher(images, training=self.train_teacher)
                t_logits, t_taps = t_out[0], t_out[1:]
                t_loss = _average(losses.cross_entropy(labels, t_logits))
            s_out = self.student(images, training=True)
            s_logits, s_taps = s_out[0], s_out[1:]
            loss, terms = self.student_loss(labels, s_logits, s_taps, t_logits, t_taps)
        student_vars = self.student_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, student_vars), student_vars))
        if self.train_teacher:
            teacher_vars = self.teacher.trainable_variables
            self.teacher_optimizer.apply_gradients(
                zip(tape.gradient(t_loss, teacher_vars), teacher_vars))
        del tape
        logged = {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}
        if self.teacher is not None:
            logged["teacher_loss"] = t_loss
            self._log_accuracy("teacher_", labels, t_logits)
        self._log_losses(logged)
        self._log_accuracy("", labels, s_logits)
        return self._results()

    def test_step(self, data):
        images, labels = data
        s_logits = self.student(images, training=False)[0]
        self._log_losses({"loss_ce": _average(losses.cross_entropy(labels, s_logits))})
        self._log_accuracy("", labels, s_logits)
        names = ["loss_ce", "top1", "top5"]
        if self.teacher is not None:
            self._log_accuracy("teacher_", labels, self.teacher(images, training=False)[0])
            names += ["teacher_top1", "teacher_top5"]
        return self._results(names)
