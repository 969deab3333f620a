"""Per-tap health: it sees both networks at the start, and it leaves no trace."""
import keras
import numpy as np

from adder_tf import distill
from adder_tf.distill.health import dead_taps, feature_health
from adder_tf.models import build_model, tap_names
from adder_tf.optim import AdderSGD


def _pkkd(seed=0):
    keras.utils.set_random_seed(seed)
    student = build_model("resnet8", "adder", (8, 8, 1), 10)
    teacher = build_model("resnet8", "conv", (8, 8, 1), 10)
    pkkd = distill.PKKD(teacher, student, taps=[(n, n) for n in tap_names(student)])
    pkkd.compile(optimizer=AdderSGD(0.1), teacher_optimizer="sgd")   # as fit's probe finds it
    return pkkd


def _images(n=64, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype("float32")


def test_every_tap_of_both_networks_has_a_spread_at_the_start():
    rows = feature_health(_pkkd(), _images())
    assert len(rows) == 6
    for row in rows:
        # Untrained BatchNorm in inference mode (mean 0, var 1) would give the
        # student's taps after the first a spread of exactly 0.
        assert row["student_std"] > 1e-3 and row["teacher_std"] > 1e-3, row
        assert row["student_std_start"] == row["student_std"]
        assert row["teacher_std_start"] == row["teacher_std"]


def test_the_probe_changes_no_moving_statistic():
    pkkd = _pkkd()
    before = [v.numpy().copy() for m in (pkkd.student, pkkd.teacher)
              for v in m.non_trainable_variables]
    feature_health(pkkd, 5.0 + _images())
    after = [v.numpy() for m in (pkkd.student, pkkd.teacher) for v in m.non_trainable_variables]
    assert len(before) > 10
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_later_probes_carry_the_start_and_dead_taps_counts_each_side():
    pkkd = _pkkd()
    start = feature_health(pkkd, _images())
    now = feature_health(pkkd, _images(seed=1), start)
    assert [r["student_std_start"] for r in now] == [r["student_std"] for r in start]
    assert dead_taps(now, start) == 0
    student_dead = [dict(r, student_std=0.0) if i in (1, 4) else r for i, r in enumerate(now)]
    assert dead_taps(student_dead, start) == 2
    assert dead_taps(student_dead, start, "student") == 2
    assert dead_taps(student_dead, start, "teacher") == 0
    both = [dict(r, teacher_std=float("nan")) if i in (1, 2) else r
            for i, r in enumerate(student_dead)]
    assert dead_taps(both, start) == 3 and dead_taps(both, start, "teacher") == 2
