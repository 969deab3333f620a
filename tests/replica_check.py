"""Runs a few PKKD steps, and a BatchNorm re-estimation, on 1 and on 2 logical CPU devices;
prints a JSON diff.

A separate process because logical devices must be set before TF starts.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["ADDER_TF_BACKEND"] = "reference"  # float64 below; the compiled op is float32
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

# float64: what is compared is the update rule, not float32 summation order
# (adder filter gradients cancel heavily, and the adaptive rescaling then
# turns rounding noise into a visible step).
keras.config.set_floatx("float64")

from adder_tf import distill  # noqa: E402
from adder_tf.batchnorm import reestimate  # noqa: E402
from adder_tf.models import build_model  # noqa: E402
from adder_tf.optim import AdderSGD  # noqa: E402


def run(strategy):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 8, 8, 1))
    y = rng.integers(0, 10, 64).astype("int32")
    with strategy.scope():
        student = build_model("resnet8", "adder", (8, 8, 1), 10, sync_bn=True)
        method = os.environ.get("METHOD", "pkkd")
        teacher = build_model("resnet8", "conv", (8, 8, 1), 10, sync_bn=True) if method != "ann" else None
        # Public API, default taps, no set-up call: built inside the scope.
        trainer = (distill.PKKD(teacher, student, alpha=1.0, beta=1.0) if method == "pkkd"
                   else distill.Supervised(student))
        s_opt = AdderSGD(0.1, momentum=0.9, eta=0.2, l2=5e-4)
        trainer.compile(optimizer=s_opt, teacher_optimizer=AdderSGD(0.1, momentum=0.9, eta=0.0, l2=5e-4) if teacher else None)
    before = [v.numpy().copy() for v in student.trainable_variables]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    trainer.fit(ds, epochs=int(os.environ.get("EPOCHS", 1)), steps_per_epoch=int(os.environ.get("STEPS", 2)), verbose=0, shuffle=False)
    return ([v.numpy() for v in student.trainable_variables],
            [v.numpy() for v in (teacher.trainable_variables if teacher else [])], before)


def reestimation_error(strategy):
    """How far a BatchNorm (not synchronized) re-estimated on 64 rows in two global
    batches of 32, each replica seeing half of each batch, lies from the mean and
    variance of its input over the 64 rows (in standard deviations; relative)."""
    keras.utils.set_random_seed(0)
    with strategy.scope():
        inputs = keras.Input((8, 8, 1))
        conv = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        bn = keras.layers.BatchNormalization(name="bn")
        model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(bn(conv))))
    x = np.random.default_rng(1).random((64, 8, 8, 1))
    reestimate(model, x, steps=2, batch_size=32, strategy=strategy)
    z = keras.Model(inputs, conv)(x).numpy()
    mean, variance = z.mean((0, 1, 2)), z.var((0, 1, 2))
    return max(float(np.max(np.abs(bn.moving_mean.numpy() - mean) / np.sqrt(variance))),
               float(np.max(np.abs(bn.moving_variance.numpy() / variance - 1.0))))


# One strategy per device set: TF's collectives do not tell apart two strategies on one
# set of devices in one process.
one, two = (tf.distribute.MirroredStrategy(d) for d in (["/cpu:0"], ["/cpu:0", "/cpu:1"]))
one_s, one_t, before = run(one)
two_s, two_t, _ = run(two)
diff = lambda a, b: max([0.0] + [float(np.max(np.abs(p - q))) for p, q in zip(a, b)])  # noqa: E731
print(json.dumps({"replicas": [1, 2],
                  "max_abs_diff_student": diff(one_s, two_s),
                  "max_abs_diff_teacher": diff(one_t, two_t),
                  "weights_moved": diff(one_s, before),
                  "bn_statistics_error": [reestimation_error(one), reestimation_error(two)]}))
