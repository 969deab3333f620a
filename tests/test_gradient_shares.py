"""Each loss term's share of the student's gradient (adder_tf.distill.shares)."""
import keras
import numpy as np
import pytest

import adder_tf
from adder_tf.distill.shares import gradient_shares
from adder_tf.optim import AdderSGD


def kd(alpha):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv0")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn0")(x))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(x))
    teacher = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    trainer = adder_tf.distill.KD(teacher, adder_tf.to_adder(teacher), alpha=alpha)
    trainer.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")   # as fit finds it
    return trainer


def test_shares_follow_the_weights_and_sum_to_one():
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 16).astype("int32")
    none = gradient_shares(kd(0.0), x, y)
    assert none == pytest.approx({"ce": 1.0, "kd": 0.0})
    small, large = gradient_shares(kd(0.1), x, y), gradient_shares(kd(100.0), x, y)
    assert sum(large.values()) == pytest.approx(1.0)
    # the KD gradient's norm scales with alpha: a thousandfold weight moves the share up
    assert large["kd"] > 0.9 > small["kd"] > 0.0
    ratio = (large["kd"] / large["ce"]) / (small["kd"] / small["ce"])
    assert ratio == pytest.approx(1000.0, rel=1e-3)


def test_the_callback_logs_shares_for_a_distiller_and_none_without_terms():
    from adder_tf.callbacks import GradientShares
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1)).astype("float32"), rng.integers(0, 4, 16).astype("int32")
    distiller = kd(1.0)
    supervised = adder_tf.distill.Supervised(distiller.student)
    for model, expected in ((distiller, {"grad_share_ce", "grad_share_kd"}), (supervised, set())):
        callback = GradientShares(x, y)
        callback.set_model(model)
        logs = {"loss": 1.0}
        callback.on_epoch_end(0, logs)
        assert {k for k in logs if k.startswith("grad_share_")} == expected
