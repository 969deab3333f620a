"""adder_tf.data on digits (shipped with scikit-learn): splits, pipelines and their
determinism, the argument errors."""
import numpy as np
import pytest

from adder_tf.data import DATASETS, load_dataset, load_split
from adder_tf.errors import UserError

from data_checks import assert_one_line_error, batches, unnormalize


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 128, seed=3)


def test_digits_split_shapes_and_ranges(digits):
    assert digits.name == "digits"
    assert digits.input_shape == (8, 8, 1)
    assert digits.num_classes == 10
    assert (digits.train_examples, digits.test_examples) == (1437, 360)
    assert len(digits.mean) == len(digits.std) == 1
    x, y = batches(digits.test)
    assert x.shape == (360, 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32
    raw = unnormalize(x, digits)
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    # The split is stratified: every class has 35 to 37 test images.
    assert set(np.bincount(y, minlength=10)) <= {35, 36, 37}
    xt, yt = batches(digits.train)
    assert xt.shape == (1437, 8, 8, 1)
    np.testing.assert_allclose(np.mean(unnormalize(batches(load_dataset(
        "digits", 512, augment=False).train)[0], digits)), digits.mean[0], atol=1e-5)


def test_digits_split_is_fixed_and_disjoint_from_seed():
    a = batches(load_dataset("digits", 100, seed=0).test)
    b = batches(load_dataset("digits", 64, seed=99).test)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_train_pipeline_seeded_reproducible_and_new_each_epoch():
    d1 = load_dataset("digits", 200, seed=7)
    d2 = load_dataset("digits", 200, seed=7)
    e1 = batches(d1.train)
    e2 = batches(d1.train)
    r1 = batches(d2.train)
    np.testing.assert_array_equal(e1[0], r1[0])  # same seed, same run position
    np.testing.assert_array_equal(e1[1], r1[1])
    assert not np.array_equal(e1[1], e2[1])  # reshuffled next epoch
    # Each epoch is a permutation of the training set.
    np.testing.assert_array_equal(np.sort(e1[1]), np.sort(e2[1]))
    other = batches(load_dataset("digits", 200, seed=8).train)
    assert not np.array_equal(e1[1], other[1])


def test_digits_augmentation_only_shifts_never_mirrors():
    plain = load_dataset("digits", 2000, augment=False)
    originals = unnormalize(batches(plain.train)[0], plain)[..., 0]
    padded = np.pad(originals, ((0, 0), (1, 1), (1, 1)))
    shifts = {
        np.round(padded[i, dy:dy + 8, dx:dx + 8], 4).tobytes()
        for i in range(len(padded)) for dy in range(3) for dx in range(3)
    }
    d = load_dataset("digits", 2000, seed=1)
    x = unnormalize(batches(d.train)[0], d)[..., 0]
    found = [np.round(img, 4).tobytes() in shifts for img in x]
    assert all(found)
    # and the crop really moves images around
    unshifted = {np.round(o, 4).tobytes() for o in originals}
    assert sum(np.round(img, 4).tobytes() not in unshifted for img in x) > len(x) // 2


def test_eval_pipeline_deterministic_and_matches_load_split(digits):
    a = batches(digits.test)
    b = batches(digits.test)
    np.testing.assert_array_equal(a[0], b[0])
    s = load_split("digits", "test", 50)
    assert s.examples == 360 and s.num_classes == 10 and s.input_shape == (8, 8, 1)
    c = batches(s.dataset)
    np.testing.assert_array_equal(a[0], c[0])
    np.testing.assert_array_equal(a[1], c[1])
    sizes = [int(x.shape[0]) for x, _ in s.dataset]
    assert sizes == [50] * 7 + [10]  # the remainder is kept


def test_argument_errors():
    with pytest.raises(UserError) as e:
        load_dataset("npz", 2)
    assert_one_line_error(e, "--data_path")
    with pytest.raises(UserError) as e:
        load_dataset("svhn", 2)
    assert_one_line_error(e, "svhn", *DATASETS)
    with pytest.raises(UserError):
        load_dataset("digits", 0)
    with pytest.raises(UserError):
        load_split("digits", "validation", 8)
    with pytest.raises(UserError):
        load_dataset("digits", 8, data_path="x.npz")
