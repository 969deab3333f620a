"""--dataset=folder: DIR/train/<class>/* and DIR/test/<class>/*, on tiny images the tests write."""
import os

import numpy as np
import pytest
import tensorflow as tf

from adder_tf.data import load_dataset
from adder_tf.data.folder import load_folder
from adder_tf.errors import UserError

CLASSES = ("cat", "airplane", "dog")   # sorted: airplane=0, cat=1, dog=2


def _write(path, image, fmt):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    tf.io.write_file(path, encode(tf.constant(image, tf.uint8)))


def _make(root, size=(32, 32, 3), per_class=(4, 2), fmt="png"):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for k, name in enumerate(CLASSES):
            for i in range(n):
                image = np.full(size, 40 * k + 10, np.uint8) + rng.integers(0, 5, size, dtype=np.uint8)
                _write(os.path.join(root, split, name, f"{i:03d}.{fmt}"), image, fmt)
    return root


def test_classes_in_sorted_order_and_pixels_exact(tmp_path):
    root = _make(str(tmp_path))
    arrays = load_folder(root)
    assert arrays.num_classes == 3
    assert arrays.x_train.shape == (12, 32, 32, 3) and arrays.x_test.shape == (6, 32, 32, 3)
    # airplane (class folder index 1 in CLASSES) is label 0: its pixels are 40*1+10..+4.
    assert arrays.x_train[arrays.y_train == 0].min() >= 50 and arrays.x_train[arrays.y_train == 0].max() <= 54
    assert np.bincount(arrays.y_test).tolist() == [2, 2, 2]


def test_jpeg_and_cifar_recipe(tmp_path):
    root = _make(str(tmp_path), fmt="jpg")
    data = load_dataset("folder", 4, data_dir=root, seed=0)
    assert data.input_shape == (32, 32, 3) and data.num_classes == 3
    assert data.mean == (0.4914, 0.4822, 0.4465)   # CIFAR-sized images get the CIFAR recipe
    x, y = next(iter(data.train))
    assert x.shape == (4, 32, 32, 3)


def test_other_sizes_get_the_generic_recipe(tmp_path):
    root = _make(str(tmp_path), size=(12, 12, 1))
    data = load_dataset("folder", 4, data_dir=root, seed=0)
    assert data.input_shape == (12, 12, 1)
    assert data.mean != (0.4914, 0.4822, 0.4465)


def test_balanced_subset_is_fixed(tmp_path):
    root = _make(str(tmp_path))
    a = load_folder(root, train_examples=7)
    assert np.bincount(a.y_train).tolist() == [3, 2, 2]
    b = load_folder(root, train_examples=7)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    with pytest.raises(UserError, match="class 0 has only 4"):
        load_folder(root, train_examples=15)


def test_bad_folders_are_one_line_errors(tmp_path):
    root = _make(str(tmp_path / "empty"))
    for f in os.listdir(os.path.join(root, "train", "dog")):
        os.remove(os.path.join(root, "train", "dog", f))
    with pytest.raises(UserError, match="class 'dog' has no image files"):
        load_folder(root)

    root = _make(str(tmp_path / "mixed"))
    _write(os.path.join(root, "train", "cat", "zzz.png"), np.zeros((16, 16, 3), np.uint8), "png")
    with pytest.raises(UserError, match=r"zzz.png: image is 16x16x3 but .* is 32x32x3"):
        load_folder(root)

    root = _make(str(tmp_path / "broken"))
    with open(os.path.join(root, "test", "cat", "bad.png"), "wb") as f:
        f.write(b"not an image")
    with pytest.raises(UserError, match="bad.png: not a readable image"):
        load_folder(root)

    with pytest.raises(UserError, match="no such folder"):
        load_folder(str(tmp_path / "nowhere"))
