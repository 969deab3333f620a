"""The distillers over ordinary Keras models, as a Keras user meets them."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import adder_tf
from adder_tf.callbacks import TensorBoard
from adder_tf.optim import AdderSGD

from keras_user import data, pkkd_pair, small_cnn


# -- distillers over ordinary models --------------------------------------------------------
def test_pkkd_trains_two_single_output_models_with_no_setup_call():
    teacher, student = pkkd_pair()
    pkkd = adder_tf.distill.PKKD(teacher, student, alpha=1.0, beta=1.0)
    assert pkkd.tap_pairs == [("conv1", "conv1"), ("conv2", "conv2")]
    assert pkkd.student is student and pkkd.teacher is teacher
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    t_before, s_before = teacher.get_weights(), student.get_weights()
    x, y = data(128)
    history = pkkd.fit(x, y, batch_size=32, epochs=3, verbose=0).history
    mid = history["loss_mid"]
    assert all(np.isfinite(mid)) and len(set(np.round(mid, 6))) == 3 and 2.0 not in mid
    assert mid[-1] < mid[0]
    moved = lambda a, b: max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))  # noqa: E731
    assert moved(student.get_weights(), s_before) > 1e-3
    assert moved(teacher.get_weights(), t_before) > 1e-3
    assert pkkd.predict(x[:4], verbose=0).shape == (4, 4)   # the student's logits


def test_a_trained_student_exports_for_stock_tensorflow(tmp_path):
    teacher, student = pkkd_pair()
    pkkd = adder_tf.distill.PKKD(teacher, student, alpha=1.0, beta=1.0)
    pkkd.compile(optimizer=AdderSGD(0.05, momentum=0.9), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    x, y = data(128)
    untrained = student(x[:8], training=False).numpy()
    pkkd.fit(x, y, batch_size=32, epochs=3, verbose=0)
    adder_tf.export.export_saved_model(student, str(tmp_path / "ann"))
    loaded = tf.saved_model.load(str(tmp_path / "ann"))
    trained = student(x[:8], training=False).numpy()
    # Training moved the weights and the outputs: an export of other weights, or one
    # that ran BatchNorm on the served batch, would not give the trained outputs.
    assert np.max(np.abs(trained - untrained)) > 1e-2
    np.testing.assert_allclose(loaded.serve(x[:8]), trained, rtol=1e-4, atol=1e-3)
    bn = [l for l in student.layers if isinstance(l, keras.layers.BatchNormalization)][0]
    assert np.max(np.abs(bn.moving_mean.numpy())) > 0        # the statistics did move


def test_taps_are_checked_when_the_distiller_is_built():
    teacher, student = pkkd_pair()
    short = small_cnn(channels=(8, 8), bn_momentum=0.9)            # no conv2
    with pytest.raises(ValueError, match="no layer named 'conv2'"):
        adder_tf.distill.PKKD(short, student)
    wide = small_cnn(channels=(8, 16, 8), bn_momentum=0.9)
    with pytest.raises(ValueError, match=r"tap \('conv1', 'conv1'\).*\(8, 8, 16\).*\(8, 8, 8\)"):
        adder_tf.distill.PKKD(wide, student)
    with pytest.raises(ValueError, match="student 'cnn' has no layer named 'conv9'"):
        adder_tf.distill.PKKD(teacher, student, taps=[("conv1", "conv9")])
    two_outputs = keras.Model(student.inputs, [student.output, student.get_layer("conv1").output])
    with pytest.raises(ValueError, match="2 outputs"):
        adder_tf.distill.PKKD(teacher, two_outputs)
    with pytest.raises(ValueError, match="beta"):
        adder_tf.distill.PKKD(teacher, student, beta=-1)
    with pytest.raises(ValueError, match="feature_loss"):
        adder_tf.distill.PKKD(teacher, student, feature_loss="l2")


def test_kd_and_nst_are_built_the_same_way():
    x, y = data()
    for make, term in ((lambda t, s: adder_tf.distill.KD(t, s, alpha=1.0, temperature=4.0), "loss_kd"),
                       (lambda t, s: adder_tf.distill.NST(t, s, progressive=False), "loss_mid")):
        teacher, student = pkkd_pair()
        distiller = make(teacher, student)
        distiller.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
        logs = distiller.fit(x, y, batch_size=32, epochs=1, verbose=0).history
        assert np.isfinite(logs[term][0])


def test_pkkd_resumes_from_backup_and_restore_without_setup(tmp_path):
    x, y = data()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "b"), delete_checkpoint=False)

    def run(epochs):
        teacher, student = pkkd_pair()
        pkkd = adder_tf.distill.PKKD(teacher, student)
        pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
        pkkd.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[backup])
        return pkkd

    first = run(1)
    resumed = run(1)                 # epoch 1 is done: restores and trains nothing more
    for a, b in zip(first.get_weights(), resumed.get_weights()):   # networks and heads
        np.testing.assert_array_equal(a, b)
    assert int(resumed.optimizer.iterations.numpy()) == 2


def test_a_distiller_saves_and_loads_whole_and_goes_on_training_the_same(tmp_path):
    teacher, student = pkkd_pair()
    pkkd = adder_tf.distill.PKKD(teacher, student, beta=2.0, taps=[("conv2", "conv2")])
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    x, y = data()
    pkkd.fit(x, y, batch_size=32, epochs=1, verbose=0)
    pkkd.save(tmp_path / "pkkd.keras")
    loaded = keras.saving.load_model(tmp_path / "pkkd.keras")
    assert type(loaded).__name__ == "PKKD" and loaded.beta == 2.0
    assert loaded.tap_pairs == [("conv2", "conv2")]
    assert int(loaded.teacher_optimizer.iterations.numpy()) == 2
    for model in (pkkd, loaded):     # momentum buffers of both optimizers came back too
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(pkkd.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_tensorboard_keeps_teacher_and_student_histograms_apart(tmp_path):
    teacher, student = pkkd_pair()
    pkkd = adder_tf.distill.PKKD(teacher, student)
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    x, y = data()
    pkkd.fit(x, y, batch_size=32, epochs=2, verbose=0,
             callbacks=[TensorBoard(str(tmp_path), histogram_freq=1, write_graph=False)])
    counts = {}
    for folder, _, files in os.walk(tmp_path / "train"):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                for value in event.summary.value:
                    counts[value.tag] = counts.get(value.tag, 0) + 1
    histograms = {tag: n for tag, n in counts.items() if tag.endswith("/histogram")}
    assert histograms["student/conv1/kernel/histogram"] == 2     # one per epoch
    assert histograms["teacher/conv1/kernel/histogram"] == 2
    assert set(histograms.values()) == {2}
    assert any(tag.startswith("heads/") for tag in histograms)

def test_sequential_teacher_and_student_pair_up_by_name():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((8, 8, 1)),
                                keras.layers.Conv2D(8, 3, padding="same", name="c0"),
                                keras.layers.BatchNormalization(momentum=0.9, name="b0"),
                                keras.layers.ReLU(),
                                keras.layers.Conv2D(8, 3, padding="same", name="c1"),
                                keras.layers.BatchNormalization(momentum=0.9, name="b1"),
                                keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
                                keras.layers.Dense(4, name="fc")], name="seq_cnn")
    pkkd = adder_tf.distill.PKKD(teacher, adder_tf.to_adder(teacher))
    assert pkkd.tap_pairs == [("c1", "c1")]
    pkkd.compile(optimizer=AdderSGD(0.05), teacher_optimizer=AdderSGD(0.05, eta=0.0))
    x, y = data()
    assert np.isfinite(pkkd.fit(x, y, batch_size=32, epochs=1, verbose=0).history["loss_mid"][0])
