"""CIFAR-10/100 from the original python pickles: a folder or the official tarball.

Each batch read is checked (entries, dtype, shape, label range), so a wrong
or damaged file ends in one `UserError` line naming it.
"""
from __future__ import annotations

import os
import pickle
import tarfile
import zlib

import numpy as np

from adder_tf.data.local import Arrays, one_line
from adder_tf.errors import UserError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR10_TAR = "cifar-10-python.tar.gz"
CIFAR100_TAR = "cifar-100-python.tar.gz"
_CIFAR_LAYOUT = {
    # name: (folder, tarball, train files, test files, label key, classes)
    "cifar10": (
        CIFAR10_DIR,
        CIFAR10_TAR,
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        10,
    ),
    "cifar100": (CIFAR100_DIR, CIFAR100_TAR, ("train",), ("test",), "fine_labels", 100),
}


def find_cifar(name: str, location: str | None) -> str | None:
    """The CIFAR python-pickle folder or tarball at or directly under `location`.

    Accepts the folder itself (cifar-10-batches-py / cifar-100-python), a
    parent holding it, the official .tar.gz, or a parent holding that.
    Returns None when there is none, so the caller can fall back to TFDS.
    """
    if not location:
        return None
    folder, tarball, train_files, _, _, _ = _CIFAR_LAYOUT[name]
    location = os.path.expanduser(location)
    candidates = [location, os.path.join(location, folder), os.path.join(location, tarball)]
    for c in candidates:
        if os.path.isdir(c) and os.path.exists(os.path.join(c, train_files[0])):
            return c
        if os.path.isfile(c) and c.endswith((".tar.gz", ".tgz", ".tar")):
            return c
    return None


def load_cifar(name: str, location: str) -> Arrays:
    """CIFAR-10/100 from the original python pickles (folder or .tar.gz)."""
    _, _, train_files, test_files, label_key, num_classes = _CIFAR_LAYOUT[name]
    if os.path.isdir(location):
        read = lambda f: _read_pickle_file(os.path.join(location, f))  # noqa: E731
        return _cifar_arrays(name, read, train_files, test_files, label_key, num_classes)
    try:
        tar = tarfile.open(location)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{location}: not a readable CIFAR tarball ({one_line(e)})") from None
    with tar:
        members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}

        def read(f):
            if f not in members:
                raise UserError(f"{location}: no {f} inside the tarball; is it the {name} python version?")
            try:
                return _unpickle(f"{location}:{members[f].name}", tar.extractfile(members[f]))
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise UserError(f"{location}: cannot read {f} ({one_line(e)})") from None

        return _cifar_arrays(name, read, train_files, test_files, label_key, num_classes)


def _cifar_arrays(name, read, train_files, test_files, label_key, num_classes) -> Arrays:
    def split(files):
        xs, ys = [], []
        for f in files:
            where, batch = read(f)
            data = batch.get(b"data", batch.get("data"))
            labels = batch.get(label_key.encode(), batch.get(label_key))
            if data is None or labels is None:
                raise UserError(f"{where}: not a {name} batch (no 'data' or '{label_key}' entry)")
            data = np.asarray(data)
            labels = np.asarray(labels)
            if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
                raise UserError(
                    f"{where}: 'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072)"
                )
            if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
                raise UserError(
                    f"{where}: '{label_key}' has {labels.shape} {labels.dtype}; "
                    f"expected {len(data)} integer labels"
                )
            if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
                raise UserError(f"{where}: labels out of range 0..{num_classes - 1}")
            # Rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(labels.astype(np.int32))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(x) == 0:
            raise UserError(f"{where}: the {name} split is empty")
        return x, y

    x_train, y_train = split(train_files)
    x_test, y_test = split(test_files)
    return Arrays(x_train, y_train, x_test, y_test, num_classes)


def _read_pickle_file(path: str):
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file (expected the CIFAR python-pickle layout)")
    with open(path, "rb") as f:
        return _unpickle(path, f)


def _unpickle(where: str, f):
    try:
        batch = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, OSError, zlib.error) as e:
        raise UserError(f"{where}: not a readable CIFAR pickle ({one_line(e)})") from None
    if not isinstance(batch, dict):
        raise UserError(f"{where}: not a CIFAR batch (pickle holds {type(batch).__name__}, not dict)")
    return where, batch
