"""One keras.Model that trains a student network, and a CNN teacher beside it.

Why not `keras.distillation.Distiller`: it freezes the teacher and has no
place for trainable alignment heads, and PKKD trains the teacher at the same
time ("progressive") and learns a kernel width and a 1x1 conv per tapped
layer on both sides. So this model keeps two optimizers, the GAN pattern of
the Keras custom-train-step guide: `compile(optimizer=...)` gets the
student's (it also updates the heads), `teacher_optimizer` the CNN's. Like
Keras's Distiller it composes its loss from term objects
(`adder_tf.distill.terms`); a method is a list of terms.

Every step:
  teacher (progressive): one plain cross-entropy step;
  student: one step on CE and the method's terms; teacher outputs enter it
  through stop_gradient, so no gradient of the student's loss reaches the CNN.
"""
import inspect
import warnings

import keras
import tensorflow as tf

from adder_tf import _keras_internals as internals
from adder_tf.batchnorm import ReestimatingFit
from adder_tf.distill import logs, losses
from adder_tf.distill.scaling import for_gradient
from adder_tf.distill.taps import as_list, check_model, resolve_pairs, tapped_view
from adder_tf.optim import adder_filters, is_adaptive


def _regularization(model):
    """The network's own losses (kernel, bias and activity regularizers), as Keras adds them."""
    if not model.losses:
        return 0.0
    return tf.add_n([tf.cast(l, tf.float32) for l in model.losses])


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
    """Trains `student` on its cross-entropy plus `terms` (`adder_tf.distill.terms`),
    with `teacher` (a CNN) beside it when a term needs one.

    Use the classes of `adder_tf.distill` (PKKD, KD, NST, Supervised), which
    document the arguments; this is their common step. `fit` re-estimates
    the student's BatchNorm statistics on its training data before every
    validation and when it ends, under any strategy (`ReestimatingFit`); everything
    is built at construction and compile, so Keras's symbolic build is skipped.
    """

    def __init__(self, student, teacher=None, *, terms=(), taps=None, progressive=True, **kwargs):
        super().__init__(**kwargs)
        check_model(student, "student")
        if bool(terms) != (teacher is not None):
            raise ValueError(f"{type(self).__name__} {'needs a' if terms else 'takes no'} teacher")
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
        self.terms = list(terms)
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"{type(self).__name__}: two loss terms are named "
                             f"{next(n for n in names if names.count(n) > 1)!r}; "
                             "give each term its own name")
        self.progressive = bool(progressive) and teacher is not None
        tapped = [t for t in self.terms if t.uses_taps]
        self.tap_pairs = (resolve_pairs(teacher, student, taps,
                                        same_shape=any(t.same_shape for t in tapped))
                          if tapped else [])
        self.tap_names = [s for _, s in self.tap_pairs]
        self._views = _Views(tapped_view(student, self.tap_names),
                             tapped_view(teacher, [t for t, _ in self.tap_pairs])
                             if teacher is not None else None)
        # Every term's layers are built from the views' symbolic tap shapes:
        # nothing waits for a first batch, under a distribution strategy or a restore.
        for term in self.terms:
            term.build(self._views.student.outputs[1:],
                       self._views.teacher.outputs[1:] if teacher is not None else [])
            term.validate_model_compatibility(teacher, student)
        self.student_heads = [h for t in self.terms for h in t.student_heads]
        self.teacher_heads = [h for t in self.terms for h in t.teacher_heads]
        self.teacher_optimizer = None
        self._compiled_user_metrics = []
        self._trackers = logs.make_trackers(
            ["loss", "loss_ce"] + [f"loss_{t.name}" for t in self.terms]
            + (["teacher_loss"] if teacher is not None else []),
            teacher is not None, student.outputs[0].shape[-1])
        self.built = True

    @property
    def uses_heads(self):
        return bool(self.student_heads)

    # -- setup ---------------------------------------------------------------
    def compile(self, optimizer="sgd", teacher_optimizer=None, *, loss=None, loss_weights=None,
                metrics=None, weighted_metrics=None, **kwargs):
        """optimizer: the student's (it also trains the heads); teacher_optimizer:
        the CNN's, required when the teacher is progressive. metrics,
        weighted_metrics: as for keras.Model, on the student's logits. A
        distiller's loss is its own: `loss` and `loss_weights` are refused.
        jit_compile: `adder_tf.ops.JIT_COMPILE` (False) by default, as for every
        `ReestimatingFit` model
        (the compiled CPU adder op cannot run inside XLA); True compiles the
        step with XLA (the adder layers then take their portable XLA form).
        """
        if loss is not None or loss_weights is not None:
            raise ValueError(f"{type(self).__name__} computes its own loss (cross-entropy and its "
                             "distillation terms); compile it without loss= and loss_weights=")
        super().compile(optimizer=optimizer, **kwargs)
        if self.progressive and teacher_optimizer is None:
            raise ValueError("a progressive teacher needs compile(..., teacher_optimizer=...); "
                             "pass progressive=False to keep the teacher fixed")
        self.teacher_optimizer = (keras.optimizers.get(teacher_optimizer)
                                  if self.progressive else None)
        self._compiled_user_metrics = logs.user_metrics(metrics, weighted_metrics, set(self._trackers))
        self._build_optimizers()
        self._warn_if_not_adaptive()

    def reestimation_network(self):
        return self.student

    def fit(self, *args, **kwargs):
        """keras.Model.fit; example weights a term cannot take are refused at the call
        (those inside a dataset, when the step is traced)."""
        given = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
        if given.get("sample_weight") is not None or given.get("class_weight") is not None:
            self._refuse_weights(True)
        return super().fit(*args, **kwargs)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and self.teacher_optimizer is not None:
            config["teacher_optimizer"] = keras.saving.serialize_keras_object(self.teacher_optimizer)
        for key, weighted in (("metrics", False), ("weighted_metrics", True)):
            chosen = [m for m, w in self._compiled_user_metrics if w == weighted]
            if config and chosen:
                config[key] = [keras.saving.serialize_keras_object(m) for m in chosen]
        return config

    def _build_optimizers(self):
        """Slots exist before the first replicated step and before a restore."""
        if not self.optimizer.built:
            undecayed = [v for t in self.terms if not t.decays_heads
                         for h in t.student_heads + t.teacher_heads for v in h.trainable_variables]
            if undecayed:
                self.optimizer.exclude_from_weight_decay(var_list=undecayed)
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
    @property
    def metrics(self):
        return list(self._trackers.values()) + [m for m, _ in self._compiled_user_metrics]

    @property
    def test_names(self):
        """What evaluate (and each validation, as val_<name>) reports."""
        return (["loss_ce", "top1", "top5"]
                + (["teacher_top1", "teacher_top5"] if self.teacher is not None else [])
                + [m.name for m, _ in self._compiled_user_metrics])

    def _log(self, values):
        for name, value in values.items():
            self._trackers[name].update_state(value)

    # -- losses --------------------------------------------------------------
    def student_loss(self, labels, s_logits, s_taps, t_logits, t_taps, sample_weight=None):
        """(the student's loss, {"ce": CE, term name: term}) on this batch.

        The loss is (CE + sum of weight * term) / (1 + sum of the weights),
        undivided when a term says so (`adder_tf.distill.losses`).
        sample_weight weighs the per-example terms; a term that cannot weigh
        examples refuses them in train_step.
        """
        terms = {"ce": losses.mean_over_batch(losses.cross_entropy(labels, s_logits),
                                              sample_weight)}
        for term in self.terms:   # as Keras's Distiller: the logits, or the tapped layers' outputs
            teacher_outputs, student_outputs = ((t_taps, s_taps) if term.uses_taps
                                                else (t_logits, s_logits))
            terms[term.name] = term.compute_loss(teacher_outputs, student_outputs,
                                                 sample_weight=sample_weight)
        total = losses.weighted(terms["ce"], [(t.weight, terms[t.name]) for t in self.terms],
                                divide=not any(t.undivided for t in self.terms))
        return total, terms

    def _refuse_weights(self, weights):
        for term in self.terms:
            if weights is not None and not term.weighs_examples and term.weight > 0:
                cls = type(self).__name__
                raise ValueError(f"{cls}'s feature term compares whole-batch statistics and cannot "
                                 f"weigh examples: train {cls} without sample_weight / class_weight "
                                 f"(or with {term.argument}=0)")

    # -- steps ---------------------------------------------------------------
    def train_step(self, data):
        images, labels, weights = _unpack(data)
        self._refuse_weights(weights)
        with tf.GradientTape(persistent=True) as tape:
            t_logits, t_taps = None, []
            if self.teacher is not None:
                t_out = as_list(self._views.teacher(images, training=self.progressive))
                t_logits, t_taps = t_out[0], t_out[1:]
                t_loss = losses.mean_over_batch(losses.cross_entropy(labels, t_logits), weights)
                if self.progressive:
                    t_loss += _regularization(self.teacher)
                    t_scaled = for_gradient(t_loss, self.teacher_optimizer)
            s_out = as_list(self._views.student(images, training=True))
            s_logits, s_taps = s_out[0], s_out[1:]
            loss, terms = self.student_loss(labels, s_logits, s_taps, t_logits, t_taps, weights)
            loss += _regularization(self.student)
            scaled = for_gradient(loss, self.optimizer)
        student_vars = self.student_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, student_vars), student_vars))
        if self.progressive:
            teacher_vars = self.teacher.trainable_variables
            self.teacher_optimizer.apply_gradients(
                zip(tape.gradient(t_scaled, teacher_vars), teacher_vars))
        del tape
        logged = {"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}}
        if self.teacher is not None:
            logged["teacher_loss"] = t_loss
            logs.update_accuracy(self._trackers, "teacher_", labels, t_logits, weights)
        self._log(logged)
        logs.update_accuracy(self._trackers, "", labels, s_logits, weights)
        logs.update_user_metrics(self._compiled_user_metrics, labels, s_logits, weights)
        return logs.results(self.metrics)

    def test_step(self, data):
        images, labels, weights = _unpack(data)
        s_logits = self.student(images, training=False)
        self._log({"loss_ce": losses.mean_over_batch(losses.cross_entropy(labels, s_logits),
                                                     weights)})
        logs.update_accuracy(self._trackers, "", labels, s_logits, weights)
        logs.update_user_metrics(self._compiled_user_metrics, labels, s_logits, weights)
        if self.teacher is not None:
            logs.update_accuracy(self._trackers, "teacher_", labels,
                                 self.teacher(images, training=False), weights)
        names = set(self.test_names)
        return logs.results([m for m in self.metrics if m.name in names])
