"""adder_tf.data on npz files written here: layouts, flip, and every bad file as a
one-line error naming it."""
import numpy as np
import pytest

from adder_tf.data import load_dataset
from adder_tf.errors import UserError

from data_checks import assert_one_line_error, batches, unnormalize


# ---------------------------------------------------------------- npz


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_grayscale_uint8(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (30, 16, 16), dtype=np.uint8)
    x_test = rng.integers(0, 256, (11, 16, 16), dtype=np.uint8)
    y_train = rng.integers(0, 4, (30, 1))
    y_test = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0], np.uint8)
    path = write_npz(tmp_path / "g.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    d = load_dataset("npz", 4, data_path=path, seed=0, num_classes=5)  # class 4: test only
    assert d.input_shape == (16, 16, 1)
    assert d.num_classes == 5
    assert (d.train_examples, d.test_examples) == (30, 11)
    np.testing.assert_allclose(d.mean, [x_train.mean() / 255], rtol=1e-6)
    np.testing.assert_allclose(d.std, [(x_train / 255).std()], rtol=1e-6)
    x, y = batches(d.test)
    np.testing.assert_array_equal(y, y_test)  # stored order
    np.testing.assert_allclose(unnormalize(x, d)[..., 0], x_test / 255, atol=1e-5)
    xt, yt = batches(d.train)
    assert xt.shape == (30, 16, 16, 1) and sorted(yt) == sorted(y_train[:, 0])


def test_npz_colour_float(tmp_path):
    rng = np.random.default_rng(1)
    x_train = rng.random((12, 8, 8, 3)).astype(np.float32)
    x_test = rng.random((5, 8, 8, 3)).astype(np.float64)
    path = write_npz(tmp_path / "c.npz", x_train=x_train, y_train=np.arange(12) % 3,
                     x_test=x_test, y_test=np.array([0.0, 1.0, 2.0, 1.0, 0.0]))
    d = load_dataset("npz", 5, data_path=path)
    assert d.input_shape == (8, 8, 3) and d.num_classes == 3 and len(d.mean) == 3
    np.testing.assert_allclose(d.mean, x_train.reshape(-1, 3).mean(0), rtol=1e-5)
    x, y = batches(d.test)
    np.testing.assert_allclose(unnormalize(x, d), x_test, atol=1e-5)
    assert y.tolist() == [0, 1, 2, 1, 0]
    xt, _ = batches(d.train)
    assert xt.shape == (12, 8, 8, 3)


def _mirror_count(d, x_raw):
    """How many training images came out mirrored (pad 0 here: no crop)."""
    originals = {np.round(img, 4).tobytes() for img in x_raw}
    x = np.round(unnormalize(batches(d.train)[0], d), 4)
    mirrored = sum(img.tobytes() not in originals for img in x)
    assert all(img.tobytes() in originals or img[:, ::-1].tobytes() in originals for img in x)
    return mirrored


def test_npz_flip_on_by_default_and_can_be_disabled(tmp_path):
    rng = np.random.default_rng(2)
    x_train = rng.random((64, 4, 4, 3)).astype(np.float32)  # 4 px: pad 4 // 8 = 0; colour
    path = write_npz(tmp_path / "f.npz", x_train=x_train, y_train=np.zeros(64, int),
                     x_test=x_train[:2], y_test=np.zeros(2, int))
    assert _mirror_count(load_dataset("npz", 64, data_path=path, seed=0), x_train) > 10
    assert _mirror_count(load_dataset("npz", 64, data_path=path, seed=0, flip=False), x_train) == 0
    assert _mirror_count(load_dataset("npz", 64, data_path=path, seed=0, augment=False), x_train) == 0


def _good():
    return dict(x_train=np.zeros((4, 6, 6), np.uint8), y_train=np.array([0, 1, 2, 1]),
                x_test=np.zeros((2, 6, 6), np.uint8), y_test=np.array([0, 1]))


BAD_NPZ = {
    "missing_key": (lambda g: {k: v for k, v in g.items() if k != "y_test"}, "y_test"),
    "length_mismatch": (lambda g: {**g, "y_train": np.array([0, 1, 2])}, "3 labels"),
    "rank": (lambda g: {**g, "x_train": np.zeros((4, 6), np.uint8)}, "shape"),
    "rank5": (lambda g: {**g, "x_test": np.zeros((2, 6, 6, 1, 1), np.uint8)}, "x_test"),
    "float_labels": (lambda g: {**g, "y_train": np.array([0.0, 0.5, 1.0, 2.0])}, "non-integer"),
    "string_labels": (lambda g: {**g, "y_test": np.array(["a", "b"])}, "y_test"),
    "negative_label": (lambda g: {**g, "y_test": np.array([0, -1])}, "negative"),
    "onehot": (lambda g: {**g, "y_train": np.eye(4)}, "one-hot"),
    "empty_split": (lambda g: {**g, "x_test": np.zeros((0, 6, 6), np.uint8),
                               "y_test": np.zeros((0,), int)}, "empty"),
    "test_shape": (lambda g: {**g, "x_test": np.zeros((2, 5, 5), np.uint8)}, "x_test"),
    "channels_first": (lambda g: {**g, "x_train": np.zeros((4, 3, 6, 6), np.uint8),
                                  "x_test": np.zeros((2, 3, 6, 6), np.uint8)}, "channels-first"),
    "int_range": (lambda g: {**g, "x_train": np.full((4, 6, 6), 300, np.int32)}, "0..255"),
    "mixed_dtypes": (lambda g: {**g, "x_test": np.zeros((2, 6, 6), np.float32)}, "scaled alike"),
    "nan": (lambda g: {**g, "x_train": np.full((4, 6, 6), np.nan, np.float32)}, "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_NPZ))
def test_bad_npz_is_one_line_user_error_naming_file(tmp_path, case):
    make, needle = BAD_NPZ[case]
    path = write_npz(tmp_path / f"{case}.npz", **make(_good()))
    with pytest.raises(UserError) as e:
        load_dataset("npz", 2, data_path=path)
    assert_one_line_error(e, path, needle)


def test_unreadable_npz_files(tmp_path):
    missing = str(tmp_path / "nope.npz")
    with pytest.raises(UserError) as e:
        load_dataset("npz", 2, data_path=missing)
    assert_one_line_error(e, missing, "no such file")

    text = tmp_path / "text.npz"
    text.write_text("not numpy at all\n")
    with pytest.raises(UserError) as e:
        load_dataset("npz", 2, data_path=str(text))
    assert_one_line_error(e, text, "not an .npz")

    npy = tmp_path / "single.npz"
    with open(npy, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(UserError) as e:
        load_dataset("npz", 2, data_path=str(npy))
    assert_one_line_error(e, npy, ".npy")

    with pytest.raises(UserError) as e:
        load_dataset("npz", 2, data_path=str(tmp_path))
    assert_one_line_error(e, tmp_path, "folder")

    good = write_npz(tmp_path / "good.npz", **{k: np.tile(v, 50) for k, v in _good().items()})
    blob = open(good, "rb").read()
    for i, cut in enumerate([len(blob) // 2, len(blob) - 30]):
        bad = tmp_path / f"truncated{i}.npz"
        bad.write_bytes(blob[:cut])
        with pytest.raises(UserError) as e:
            load_dataset("npz", 2, data_path=str(bad))
        assert_one_line_error(e, bad)

    pickled = tmp_path / "object.npz"
    np.savez(pickled, x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros((1, 2, 2)), y_test=np.zeros(1))
    with pytest.raises(UserError) as e:
        load_dataset("npz", 2, data_path=str(pickled))
    assert_one_line_error(e, pickled)
