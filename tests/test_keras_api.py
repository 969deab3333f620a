"""The library from Python, as a Keras user meets it: every trap the API must not have."""
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import adder_tf
from adder_tf import AdderConv2D
from adder_tf.callbacks import TensorBoard
from adder_tf.optim import AdderSGD, adaptive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_cnn(channels=(8, 8, 8), name="cnn", bn_momentum=0.99):
    """A plain Keras CNN as a user writes it (Keras's default BatchNorm momentum)."""
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for i, c in enumerate(channels):
        x = keras.layers.Conv2D(c, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x), name=name)


def adder_same_3x3(x, w):
    """-sum |x - w| over each 3x3 window, zero padding 1 (stride 1), written out."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[-1]))
    for i in range(h):
        for j in range(wd):
            patch = xp[:, i:i + 3, j:j + 3, :, None]
            out[:, i, j] = -np.abs(patch - w[None]).sum(axis=(1, 2, 3))
    return out


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 4, n).astype("int32")


def adder_update_norm(model, fit, layer="conv1"):
    """||change of one adder filter|| over what `fit` does."""
    before = model.get_layer(layer).kernel.numpy()
    fit()
    return float(np.linalg.norm(model.get_layer(layer).kernel.numpy() - before))


def expected_norm(model, lr, eta=0.2, layer="conv1"):
    """One step of the adaptive rate without momentum moves a filter by lr * eta * sqrt(numel)."""
    return lr * eta * np.sqrt(np.prod(model.get_layer(layer).kernel.shape))


def compiled_ann(optimizer):
    keras.utils.set_random_seed(0)
    model = adder_tf.to_adder(small_cnn())
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


# -- AdderConv2D is a Conv2D -------------------------------------------------------------
def test_adder_conv2d_takes_conv2d_arguments():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    layer = AdderConv2D(4, 3, padding="same", activation="relu", use_bias=True,
                        bias_initializer=keras.initializers.Constant(20.0),
                        kernel_regularizer="l2", bias_regularizer="l1",
                        kernel_constraint=keras.constraints.MaxNorm(100.0),
                        data_format="channels_last", name="a")
    y = layer(x)
    reference = np.maximum(adder_same_3x3(x, layer.kernel.numpy()) + 20.0, 0)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-4)
    assert 0 < np.mean(np.asarray(y) > 0) < 1          # the ReLU really acts on -l1 + bias
    assert len(layer.losses) == 2                       # both regularizers
    clone = AdderConv2D.from_config(layer.get_config())
    assert clone.activation is keras.activations.relu and clone.use_bias
    assert isinstance(clone.kernel_constraint, keras.constraints.MaxNorm)


@pytest.mark.parametrize("args, kwargs", [((4, 3), {}), ((4, 3, 2), {}), ((4, (3, 1)), {"padding": "same"})])
def test_adder_conv2d_replaces_conv2d_with_the_same_shapes(args, kwargs):
    x = np.zeros((2, 9, 9, 3), "float32")
    conv, adder = keras.layers.Conv2D(*args, **kwargs), AdderConv2D(*args, **kwargs)
    assert adder(x).shape == conv(x).shape
    assert [w.shape for w in adder.weights] == [w.shape for w in conv.weights]   # kernel + bias


@pytest.mark.parametrize("kwargs, culprit", [({"dilation_rate": 2}, "dilation_rate"),
                                             ({"groups": 2}, "groups"),
                                             ({"data_format": "channels_first"}, "channels_first"),
                                             ({"strides": (1, 2)}, "strides")])
def test_adder_conv2d_refuses_what_it_cannot_do(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        AdderConv2D(4, 3, **kwargs)


# -- the adaptive learning rate needs no set-up ---------------------------------------------
def test_adder_sgd_finds_adder_filters_by_itself():
    model = compiled_ann(AdderSGD(0.1, momentum=0.0))
    x, y = data()
    norm = adder_update_norm(model, lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0))
    np.testing.assert_allclose(norm, expected_norm(model, 0.1), rtol=1e-4)
    assert model.optimizer.adder_filter_count == 2


def test_adder_sgd_stays_adaptive_after_save_and_load_model(tmp_path):
    model = compiled_ann(AdderSGD(0.1, momentum=0.0))
    x, y = data()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    model.save(tmp_path / "ann.keras")
    loaded = keras.saving.load_model(tmp_path / "ann.keras")
    norm = adder_update_norm(loaded, lambda: loaded.fit(x, y, batch_size=64, epochs=1, verbose=0))
    np.testing.assert_allclose(norm, expected_norm(loaded, 0.1), rtol=1e-4)


def test_adder_sgd_stays_adaptive_after_backup_and_restore(tmp_path):
    x, y = data()
    backup = str(tmp_path / "backup")

    def run(epochs):
        model = compiled_ann(AdderSGD(0.1, momentum=0.0))
        norms = []

        class Measure(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.before = model.get_layer("conv1").kernel.numpy()

            def on_epoch_end(self, epoch, logs=None):
                norms.append(np.linalg.norm(model.get_layer("conv1").kernel.numpy() - self.before))

        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False), Measure()])
        return model, norms

    run(1)
    model, norms = run(2)          # a new process would do the same: restore, then epoch 2
    assert len(norms) == 1
    np.testing.assert_allclose(norms[0], expected_norm(model, 0.1), rtol=1e-4)


def test_any_keras_optimizer_gets_the_adaptive_rate_with_adaptive(tmp_path):
    model = compiled_ann(adaptive(keras.optimizers.SGD(0.1)))
    x, y = data()
    norm = adder_update_norm(model, lambda: model.fit(x, y, batch_size=64, epochs=1, verbose=0))
    np.testing.assert_allclose(norm, expected_norm(model, 0.1), rtol=1e-4)
    adam = adaptive(keras.optimizers.Adam(1e-3), eta=0.1)
    assert type(adam).__name__ == "AdaptiveAdam" and adam.eta == 0.1
    model = compiled_ann(adam)
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert adam.adder_filter_count == 2
    model.save(tmp_path / "adam.keras")
    assert type(keras.saving.load_model(tmp_path / "adam.keras").optimizer).__name__ == "AdaptiveAdam"
    with pytest.raises(ValueError, match="already"):
        adaptive(adam)


def test_a_distiller_warns_once_when_the_optimizer_is_not_adaptive():
    teacher = small_cnn(bn_momentum=0.9)
    pkkd = adder_tf.distill.PKKD(teacher, adder_tf.to_adder(teacher))
    with pytest.warns(UserWarning, match="without AdderNet's adaptive learning rate") as record:
        pkkd.compile(optimizer=keras.optimizers.Adam(), teacher_optimizer="sgd")
    assert len([w for w in record if "adaptive" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pkkd.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")


# -- to_adder ------------------------------------------------------------------------------
def test_to_adder_converts_every_conv_but_the_first_and_keeps_names():
    cnn = small_cnn()
    ann = adder_tf.to_adder(cnn)
    assert [l.name for l in ann.layers] == [l.name for l in cnn.layers]
    kinds = {l.name: type(l).__name__ for l in ann.layers}
    assert (kinds["conv0"], kinds["conv1"], kinds["conv2"], kinds["fc"]) == (
        "Conv2D", "AdderConv2D", "AdderConv2D", "Dense")
    # BatchNorm after adder layers as the library's models have it; the first one as written
    assert [ann.get_layer(f"bn{i}").momentum for i in range(3)] == [0.99, 0.9, 0.9]
    assert ann.get_layer("bn1").epsilon == 1e-5
    assert ann.output.shape == cnn.output.shape
    assert not np.allclose(ann.get_layer("fc").kernel.numpy(), cnn.get_layer("fc").kernel.numpy())
    kept = adder_tf.to_adder(cnn, keep=["conv2"])
    assert type(kept.get_layer("conv2")).__name__ == "Conv2D"


def test_to_adder_takes_sequential_models_and_refuses_what_it_cannot_convert():
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                            keras.layers.Conv2D(4, 3, name="b"),
                            keras.layers.BatchNormalization(name="bn"), keras.layers.Flatten(),
                            keras.layers.Dense(2)])
    ann = adder_tf.to_adder(seq)
    assert isinstance(ann, adder_tf.models.AdderModel) and isinstance(ann.get_layer("b"), AdderConv2D)
    assert [l.name for l in ann.layers[1:]] == [l.name for l in seq.layers]
    assert ann.get_layer("bn").momentum == 0.9
    dilated = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                                keras.layers.Conv2D(4, 3, dilation_rate=2, name="d"),
                                keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'d'.*dilation_rate"):
        adder_tf.to_adder(dilated)
    with pytest.raises(ValueError, match="keep"):
        adder_tf.to_adder(seq, keep=["nope"])


def test_to_adder_refuses_a_fused_activation_that_would_make_a_dead_layer():
    seq = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                            keras.layers.Conv2D(4, 3, activation="relu", name="b"),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'b'.*'relu'.*dead"):
        adder_tf.to_adder(seq)
    assert type(adder_tf.to_adder(seq, keep=["b"]).get_layer("b")) is keras.layers.Conv2D
    apart = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="a"),
                              keras.layers.Conv2D(4, 3, name="b"), keras.layers.ReLU(name="r"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="'b'.*ReLU 'r' with no normalization.*dead"):
        adder_tf.to_adder(apart)


def test_to_adder_keeps_a_convolutional_classifier_multiplicative():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="mid")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(3, 1, name="head")(x)          # the classifier: a 1x1 conv
    cnn = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    ann = adder_tf.to_adder(cnn)
    kinds = [type(ann.get_layer(n)).__name__ for n in ("stem", "mid", "head")]
    assert kinds == ["Conv2D", "AdderConv2D", "Conv2D"]
    assert type(adder_tf.to_adder(cnn, convert_last=True).get_layer("head")) is AdderConv2D


# -- distillers over ordinary models --------------------------------------------------------
def pkkd_pair(**kwargs):
    keras.utils.set_random_seed(0)
    teacher = small_cnn(bn_momentum=0.9)
    return teacher, adder_tf.to_adder(teacher, **kwargs)


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


def test_the_package_namespace_after_a_plain_import():
    code = ("import adder_tf; print(adder_tf.distill.PKKD.__name__, adder_tf.distill.KD.__name__, "
            "adder_tf.distill.NST.__name__, adder_tf.to_adder.__name__, adder_tf.optim.AdderSGD.__name__, "
            "adder_tf.batchnorm.reestimate.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["PKKD", "KD", "NST", "to_adder", "AdderSGD", "reestimate"]


# -- examples and packaging -------------------------------------------------------------------
# Held-out digits accuracy after the examples' --epochs 2, well under what they reach
# (see test_examples_run_and_learn) and far above chance.
EXAMPLE_TOP1 = {"pkkd_digits.py": 0.3, "adder_layer_fit.py": 0.5}


@pytest.mark.parametrize("script, says, at_least", [
    ("pkkd_digits.py", r"student \(ANN\) top-1 ([0-9.]+)", EXAMPLE_TOP1["pkkd_digits.py"]),
    ("adder_layer_fit.py", r"test accuracy ([0-9.]+)", EXAMPLE_TOP1["adder_layer_fit.py"])])
def test_examples_run_and_learn(script, says, at_least, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    args = [sys.executable, os.path.join(ROOT, "examples", script), "--epochs", "2"]
    if script == "pkkd_digits.py":
        args += ["--out", str(tmp_path / "ann")]
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    accuracy = float(re.search(says, out.stdout).group(1))
    assert accuracy >= at_least, out.stdout[-2000:]     # 10 classes: chance is 0.1
    if script == "pkkd_digits.py":
        saved = keras.saving.load_model(tmp_path / "ann.keras")
        assert sum(isinstance(l, AdderConv2D) for l in saved.layers) == 2


def test_pip_install_puts_the_package_and_its_cc_sources_in_place(tmp_path):
    """`pip install .` (here without build isolation, so nothing is downloaded)."""
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                          "--no-index", "--quiet", "--target", str(tmp_path / "site"), ROOT],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    site = tmp_path / "site" / "adder_tf"
    for name in ("ops/cc/adder_kernels.cc", "ops/cc/adder_kernels.h", "ops/cc/adder_ops.cc",
                 "distill/methods.py", "convert.py"):
        assert (site / name).is_file(), name
    assert not (tmp_path / "site" / "tests").exists() and not (tmp_path / "site" / "train").exists()
    code = "import adder_tf, sys; print(adder_tf.__file__); print(adder_tf.to_adder.__name__)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[0].startswith(str(site))


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
