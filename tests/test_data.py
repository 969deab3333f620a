"""adder_tf.data: readers, recipes, error messages and pipeline determinism.

Everything runs offline: digits ship with scikit-learn, npz and CIFAR
pickle files are written here, TFDS datasets are mocked.
"""
import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from adder_tf.data import DATASETS, load_dataset, load_split
from adder_tf.data import augment as aug
from adder_tf.data.datasets import CIFAR_MEAN, CIFAR_STD
from adder_tf.errors import UserError


def batches(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def unnormalize(x, data):
    return x * np.asarray(data.std, np.float32) + np.asarray(data.mean, np.float32)


def assert_one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert str(n) in msg, (n, msg)


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


# ---------------------------------------------------------------- CIFAR pickles


def _cifar_batch(n, num_classes, label_key, offset):
    data = ((np.arange(n * 3072).reshape(n, 3072) + offset) % 251).astype(np.uint8)
    labels = [(i + offset) % num_classes for i in range(n)]
    return {b"batch_label": b"x", label_key.encode(): labels, b"data": data}


def write_cifar10(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, f in enumerate(files):
        with open(folder / f, "wb") as fh:
            pickle.dump(_cifar_batch(n, 10, "labels", k), fh, protocol=2)
    return folder


def write_cifar100(root, n=20):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for k, f in enumerate(["train", "test"]):
        batch = _cifar_batch(n, 100, "fine_labels", 37 * k)
        batch[b"coarse_labels"] = [0] * n
        with open(folder / f, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return folder


def _check_cifar_test(d, n, num_classes, offset):
    expected = _cifar_batch(n, num_classes, "labels", offset)
    x, y = batches(d.test)
    assert x.shape == (n, 32, 32, 3) and y.tolist() == expected[b"labels"]
    raw = np.round(unnormalize(x, d) * 255).astype(np.int64)
    planes = expected[b"data"].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(raw, planes)
    # a spot check of the layout: pixel (row 1, col 2), green = byte 1024 + 32 + 2
    assert raw[0, 1, 2, 1] == expected[b"data"][0, 1024 + 34]


def test_cifar10_pickle_folder(tmp_path):
    folder = write_cifar10(tmp_path)
    for kwargs in ({"data_dir": str(tmp_path)}, {"data_dir": str(folder)}, {"data_path": str(folder)}):
        d = load_dataset("cifar10", 16, seed=0, **kwargs)
        assert d.input_shape == (32, 32, 3) and d.num_classes == 10
        assert (d.train_examples, d.test_examples) == (100, 20)
        assert d.mean == CIFAR_MEAN and d.std == CIFAR_STD
    _check_cifar_test(d, 20, 10, 5)
    xt, yt = batches(d.train)
    assert xt.shape == (100, 32, 32, 3) and sorted(yt) == sorted(sum(
        [_cifar_batch(20, 10, "labels", k)[b"labels"] for k in range(5)], []))


def test_cifar10_tarball(tmp_path):
    folder = write_cifar10(tmp_path / "src")
    tar_path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    d = load_dataset("cifar10", 64, data_path=str(tar_path))
    _check_cifar_test(d, 20, 10, 5)
    assert d.train_examples == 100


def test_cifar100_pickle_folder(tmp_path):
    write_cifar100(tmp_path)
    d = load_dataset("cifar100", 8, data_dir=str(tmp_path))
    assert d.num_classes == 100 and (d.train_examples, d.test_examples) == (20, 20)
    _, y = batches(d.test)
    assert y.tolist() == [(i + 37) % 100 for i in range(20)]


def test_cifar_pickle_errors(tmp_path):
    folder = write_cifar10(tmp_path)
    blob = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", 8, data_dir=str(tmp_path))
    assert_one_line_error(e, "data_batch_3")
    os.remove(folder / "data_batch_3")
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", 8, data_dir=str(tmp_path))
    assert_one_line_error(e, "data_batch_3", "no such file")
    with pytest.raises(UserError) as e:
        load_dataset("cifar10", 8, data_path=str(tmp_path / "elsewhere"))
    assert_one_line_error(e, "elsewhere")


# ---------------------------------------------------------------- TFDS


@pytest.mark.parametrize("name,shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_tfds_mocked(name, shape):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=10):
        d = load_dataset(name, 4, seed=0)
        assert d.input_shape == shape and d.num_classes == 10
        assert (d.train_examples, d.test_examples) == (10, 10)
        sizes = []
        for x, y in d.train:
            assert x.shape[1:] == shape and x.dtype == tf.float32 and y.dtype == tf.int32
            sizes.append(int(x.shape[0]))
        assert sizes == [4, 4, 2]
        a, b = batches(d.test), batches(d.test)
        assert a[0].shape == (10,) + shape
        np.testing.assert_array_equal(a[0], b[0])
        s = load_split(name, "test", 3)
        assert s.examples == 10 and s.mean == d.mean


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist"])
def test_unprepared_tfds_is_one_line_error_with_command(tmp_path, name):
    with pytest.raises(UserError) as e:
        load_dataset(name, 8, data_dir=str(tmp_path))
    command = f"tfds.builder('{name}', data_dir={str(tmp_path)!r}).download_and_prepare()"
    assert_one_line_error(e, command, "not prepared", "python -c")


def test_unprepared_imagenet_names_manual_dir(tmp_path):
    with pytest.raises(UserError) as e:
        load_split("imagenet2012", "test", 8, data_dir=str(tmp_path))
    assert_one_line_error(e, "ILSVRC2012_img_train.tar", os.path.join(str(tmp_path), "downloads", "manual"),
                          "download_and_prepare()")


# ---------------------------------------------------------------- augmentation


def test_pad_and_crop_keeps_shape_and_shifts():
    image = tf.reshape(tf.range(5 * 7 * 2, dtype=tf.float32), (5, 7, 2))
    seen = set()
    for s in range(40):
        out = aug.pad_and_crop(image, 2, tf.constant([s, 0], tf.int64)).numpy()
        assert out.shape == (5, 7, 2)
        # a shift: the top-left nonzero-padded content is a window of the padded image
        padded = np.pad(image.numpy(), ((2, 2), (2, 2), (0, 0)))
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(padded[dy:dy + 5, dx:dx + 7], out)]
        assert hits
        seen.add(hits[0])
    assert len(seen) > 5
    np.testing.assert_array_equal(aug.pad_and_crop(image, 0, tf.constant([0, 0], tf.int64)), image)


def test_random_flip_is_identity_or_mirror():
    image = tf.random.stateless_uniform((4, 6, 3), seed=[1, 2])
    outcomes = []
    for s in range(20):
        out = aug.random_flip(image, tf.constant([s, 1], tf.int64)).numpy()
        if np.array_equal(out, image.numpy()):
            outcomes.append(0)
        else:
            np.testing.assert_array_equal(out, image.numpy()[:, ::-1])
            outcomes.append(1)
    assert 0 < sum(outcomes) < 20


def test_imagenet_crops_from_jpeg():
    image = tf.cast(tf.random.stateless_uniform((300, 400, 3), seed=[3, 4], maxval=255), tf.uint8)
    encoded = tf.io.encode_jpeg(image)
    crops = [aug.random_resized_crop_jpeg(encoded, tf.constant([s, 0], tf.int64)).numpy() for s in range(3)]
    for c in crops:
        assert c.shape == (224, 224, 3) and c.min() >= 0 and c.max() <= 1
    assert not np.array_equal(crops[0], crops[1])
    a = aug.resize_and_center_crop_jpeg(encoded).numpy()
    b = aug.resize_and_center_crop_jpeg(encoded).numpy()
    assert a.shape == (224, 224, 3)
    np.testing.assert_array_equal(a, b)
    tall = aug.resize_and_center_crop(tf.zeros((500, 230, 3), tf.uint8))
    assert tall.shape == (224, 224, 3)
