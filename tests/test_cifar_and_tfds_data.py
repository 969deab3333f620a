"""adder_tf.data on CIFAR pickle folders and tarballs written here, and on TFDS
datasets mocked (nothing is downloaded)."""
import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from adder_tf.data import load_dataset, load_split
from adder_tf.data.datasets import CIFAR_MEAN, CIFAR_STD
from adder_tf.errors import UserError

from data_checks import assert_one_line_error, batches, unnormalize


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
