"""The distillers' step: what reaches which network, and stability at lr 0.1."""
import keras
import pytest
import numpy as np
import tensorflow as tf

from adder_tf.data import load_dataset
from adder_tf import distill
from adder_tf.models import build_model, tap_names
from adder_tf.optim import AdderSGD


def _batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 10, n).astype("int32")


def _trainer(method="pkkd", lr=0.1, teacher_lr=0.1, teacher=None, **kwargs):
    keras.utils.set_random_seed(0)
    flavour = {"cnn": "conv", "bnn": "binary"}.get(method, "adder")
    student = build_model("resnet8", flavour, (8, 8, 1), 10)
    if teacher is None and method in ("kd", "mmd", "pkkd"):
        teacher = build_model("resnet8", "conv", (8, 8, 1), 10)
    taps = [(n, n) for n in tap_names(student)]
    if method == "pkkd":
        trainer = distill.PKKD(teacher, student, taps=taps, **kwargs)
    elif method == "kd":
        trainer = distill.KD(teacher, student, **kwargs)
    elif method == "mmd":
        trainer = distill.NST(teacher, student, taps=taps, **kwargs)
    else:
        trainer = distill.Supervised(student, **kwargs)
    opt = AdderSGD(lr, momentum=0.9, eta=0.2, l2=5e-4)
    t_opt = keras.optimizers.SGD(teacher_lr) if trainer.progressive else None
    trainer.compile(optimizer=opt, teacher_optimizer=t_opt)
    return trainer


def test_student_loss_sends_no_gradient_to_the_cnn():
    trainer = _trainer("pkkd", alpha=5.0, beta=5.0)
    x, y = _batch()
    with tf.GradientTape(persistent=True) as tape:
        loss, _ = trainer.student_loss(y, *trainer.tap_outputs(x, training=True))
    grads = tape.gradient(loss, trainer.teacher.trainable_variables)
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)
    # ... while it does reach the student and the student's heads
    head_vars = [v for h in trainer.student_heads for v in h.trainable_variables]
    assert len(head_vars) == 3 * len(trainer.student_heads)   # log-width factor, rho kernel, bias
    _assert_all_nonzero(tape.gradient(loss, head_vars), head_vars)
    assert any(g is not None for g in tape.gradient(loss, trainer.student.trainable_variables))


def _assert_all_nonzero(grads, variables):
    for g, v in zip(grads, variables):
        assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0, v.path


def test_teacher_heads_learn_only_in_the_paper_literal_loss():
    """Default: the teacher side has no trainable head. feature_norm="none": rho_c and
    sigma_c are trained by the student's loss, and still nothing reaches the CNN."""
    assert not [v for h in _trainer("pkkd").teacher_heads for v in h.trainable_variables]
    trainer = _trainer("pkkd", feature_norm="none", alpha=1.0, beta=1.0)
    x, y = _batch()
    with tf.GradientTape(persistent=True) as tape:
        loss, _ = trainer.student_loss(y, *trainer.tap_outputs(x, training=True))
    head_vars = [v for h in trainer.teacher_heads for v in h.trainable_variables]
    assert len(head_vars) == 3 * len(trainer.teacher_heads)   # log-width, rho_c kernel, bias
    _assert_all_nonzero(tape.gradient(loss, head_vars), head_vars)
    grads = tape.gradient(loss, trainer.teacher.trainable_variables)
    assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in grads)


def test_one_loss_convention_for_every_method():
    """KD, NST and PKKD divide by 1 + the sum of their weights; eq. 13-14 as written does not."""
    x, y = _batch()
    cases = [("kd", {"alpha": 3.0}, ("kd",), 4.0), ("mmd", {"beta": 7.0}, ("mid",), 8.0),
             ("pkkd", {"alpha": 2.0, "beta": 5.0}, ("kd", "mid"), 8.0),
             ("pkkd", {"alpha": 2.0, "beta": 5.0, "feature_norm": "none"}, ("kd", "mid"), 1.0)]
    for method, kwargs, names, divisor in cases:
        trainer = _trainer(method, **kwargs)
        total, terms = trainer.student_loss(y, *trainer.tap_outputs(x, training=True))
        weights = {"kd": kwargs.get("alpha"), "mid": kwargs.get("beta")}
        want = (float(terms["ce"]) + sum(weights[n] * float(terms[n]) for n in names)) / divisor
        np.testing.assert_allclose(float(total), want, rtol=1e-5, err_msg=f"{method} {kwargs}")


def test_paper_literal_heads_are_decayed_like_the_network():
    def rho_decays(trainer):       # a zero-gradient step moves a weight only by its decay
        rho = trainer.student_heads[0].rho.kernel
        before = rho.numpy().copy()
        trainer.optimizer.apply_gradients([(tf.zeros_like(rho), rho)])
        return not np.array_equal(before, rho.numpy())
    assert not rho_decays(_trainer("pkkd"))
    assert rho_decays(_trainer("pkkd", feature_norm="none"))


def test_progressive_teacher_takes_a_plain_cross_entropy_step():
    trainer = _trainer("pkkd", alpha=5.0, beta=5.0)
    reference = build_model("resnet8", "conv", (8, 8, 1), 10)
    reference.set_weights(trainer.teacher.get_weights())
    x, y = _batch()
    trainer.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    opt = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        ce = keras.losses.sparse_categorical_crossentropy(y, reference(x, training=True),
                                                          from_logits=True)
        loss = tf.reduce_mean(ce)
    opt.apply_gradients(zip(tape.gradient(loss, reference.trainable_variables),
                            reference.trainable_variables))
    for got, want in zip(trainer.teacher.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fixed_teacher_does_not_move():
    teacher = build_model("resnet8", "conv", (8, 8, 1), 10)
    teacher.trainable = False
    trainer = _trainer("pkkd", teacher=teacher, progressive=False)
    before = [w.copy() for w in teacher.get_weights()]
    x, y = _batch()
    trainer.fit(tf.data.Dataset.from_tensors((x, y)), epochs=2, verbose=0)
    for got, want in zip(teacher.get_weights(), before):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("weight", [1.0, 10.0])
def test_pkkd_stays_finite_for_hundreds_of_steps_at_lr_0_1(weight):
    data = load_dataset("digits", 64, seed=0)
    trainer = _trainer("pkkd", lr=0.1, alpha=weight, beta=weight)
    history = trainer.fit(data.train.repeat(), steps_per_epoch=100, epochs=3, verbose=0)
    for name, values in history.history.items():
        assert np.all(np.isfinite(values)), name
    assert all(np.all(np.isfinite(w)) for w in trainer.get_weights())
    x = next(iter(data.train))[0]
    _, s_taps, _, t_taps = trainer.tap_outputs(x)
    sigmas = [h.sigma_value(t) for h, t in zip(trainer.student_heads + trainer.teacher_heads,
                                               list(s_taps) + list(t_taps))]
    assert all(np.isfinite(s) and s > 0 for s in sigmas)
    assert history.history["top1"][-1] > 0.8, history.history["top1"]   # and it learns


def test_every_method_trains_a_step():
    x, y = _batch()
    ds = tf.data.Dataset.from_tensors((x, y))
    kwargs = {"kd": {"alpha": 1.0}, "mmd": {"beta": 1.0}, "pkkd": {"alpha": 1.0, "beta": 1.0}}
    for method in ("cnn", "ann", "bnn", "kd", "mmd", "pkkd"):
        logs = _trainer(method, **kwargs.get(method, {})).fit(ds, epochs=1, verbose=0).history
        assert np.isfinite(logs["loss"][0]), method
        assert ("loss_kd" in logs) == (method in ("kd", "pkkd")), method
        assert ("loss_mid" in logs) == (method in ("mmd", "pkkd")), method


@pytest.mark.parametrize("feature_loss", ["raw", "conv1x1", "kernel", "kernel_conv1x1"])
def test_every_feature_loss_trains_and_lowers_its_term(feature_loss):
    x, y = _batch(64)
    trainer = _trainer("pkkd", feature_loss=feature_loss, alpha=1.0, beta=1.0)
    logs = trainer.fit(tf.data.Dataset.from_tensors((x, y)).repeat(8), epochs=2, verbose=0).history
    assert all(np.isfinite(v).all() for v in logs.values())
    assert logs["loss_mid"][-1] < logs["loss_mid"][0]
    uses_kernel = feature_loss.startswith("kernel")
    assert all((h.kernel_transform is not None) == uses_kernel for h in trainer.student_heads)
