"""The distillers and AdderSGD keep Keras's contract: regularizers, sample and class
weights, train_on_batch / test_on_batch, weight_decay."""
import keras
import numpy as np
import pytest

import adder_tf
from adder_tf.optim import AdderSGD

# These tests read train_on_batch's losses; its line about BatchNorm statistics
# (tests/test_reestimation_warning.py) is not what they check.
pytestmark = pytest.mark.filterwarnings("ignore:.*train_on_batch does not re-estimate")


def cnn(name, regularizer=None):
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i in range(2):
        x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, kernel_regularizer=regularizer, name="fc")(x),
                       name=name)


def data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 4, n).astype("int32")


def kd(teacher_regularizer=None, student_regularizer=None):
    keras.utils.set_random_seed(0)
    teacher = cnn("teacher", teacher_regularizer)
    student = adder_tf.to_adder(cnn("student", student_regularizer), name="student")
    trainer = adder_tf.distill.KD(teacher, student, alpha=1.0)
    trainer.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    return trainer


def l2_of(model, weight):
    return weight * float(np.sum(model.get_layer("fc").kernel.numpy() ** 2))


def test_regularizers_of_both_networks_enter_their_losses():
    x, y = data()
    plain = kd().train_on_batch(x, y, return_dict=True)
    trainer = kd(keras.regularizers.L2(3.0), keras.regularizers.L2(5.0))
    student_l2, teacher_l2 = l2_of(trainer.student, 5.0), l2_of(trainer.teacher, 3.0)
    logs = trainer.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] - plain["loss"] == pytest.approx(student_l2, rel=1e-3)
    assert logs["teacher_loss"] - plain["teacher_loss"] == pytest.approx(teacher_l2, rel=1e-3)


def test_sample_and_class_weights_weigh_the_student_and_teacher_terms():
    x, y = data()
    weights = np.linspace(0.0, 2.0, len(y)).astype("float32")
    twin = kd()        # the same networks: their per-example losses on this batch, written out
    s_logits = twin.student(x, training=True)
    t_logits = twin.teacher(x, training=True)
    ce = keras.losses.sparse_categorical_crossentropy(y, s_logits, from_logits=True).numpy()
    t_ce = keras.losses.sparse_categorical_crossentropy(y, t_logits, from_logits=True).numpy()
    logs = kd().train_on_batch(x, y, sample_weight=weights, return_dict=True)
    # Keras's convention: sum(weight * loss) / batch size
    assert logs["loss_ce"] == pytest.approx(np.sum(weights * ce) / len(y), rel=1e-4)
    assert logs["teacher_loss"] == pytest.approx(np.sum(weights * t_ce) / len(y), rel=1e-4)
    trainer = kd()
    before = [w.numpy().copy() for w in trainer.student.trainable_weights]
    trainer.fit(x, y, batch_size=16, epochs=1, verbose=0, class_weight={c: 0.0 for c in range(4)})
    # every example weighs 0: no gradient reaches the student
    assert all(np.array_equal(b, a.numpy()) for b, a in zip(before, trainer.student.trainable_weights))


def test_test_on_batch_scores_as_evaluate():
    x, y = data()
    trainer = kd()
    trainer.fit(x, y, batch_size=16, epochs=1, verbose=0)
    on_batch = trainer.test_on_batch(x, y, return_dict=True)
    evaluated = trainer.evaluate(x, y, batch_size=len(y), verbose=0, return_dict=True)
    assert on_batch["top1"] == pytest.approx(evaluated["top1"])
    assert on_batch["loss_ce"] == pytest.approx(evaluated["loss_ce"], rel=1e-5)


def test_adder_sgd_honours_keras_weight_decay():
    variable = keras.Variable(np.ones(4, "float32"))
    optimizer = AdderSGD(0.1, momentum=0.0, weight_decay=0.5)
    optimizer.apply_gradients([(np.zeros(4, "float32"), variable)])
    np.testing.assert_allclose(variable.numpy(), 1.0 - 0.1 * 0.5, rtol=1e-6)
    loaded = AdderSGD.from_config(optimizer.get_config())
    assert loaded.weight_decay == 0.5


def test_pkkd_refuses_sample_weights_it_cannot_apply_to_its_feature_term():
    x, y = data()
    keras.utils.set_random_seed(0)
    teacher = cnn("teacher")
    pkkd = adder_tf.distill.PKKD(teacher, adder_tf.to_adder(teacher, name="student"))
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    with pytest.raises(ValueError, match="PKKD's feature term.*sample_weight"):
        pkkd.fit(x, y, sample_weight=np.ones(len(y)), epochs=1, verbose=0)
