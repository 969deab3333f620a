"""Readers for data that is already on disk (or ships with a package).

Each reader returns an `Arrays` of NHWC images and int32 labels and checks
what it reads, so that a bad file ends in one `UserError` line naming the
file instead of a shape error deep inside TensorFlow.

The digits split is fixed: scikit-learn's 1,797 8x8 digits, split with
`train_test_split(test_size=360, stratify=labels, random_state=0)` into
1,437 training and 360 test images (36 or 35/37 per class in the test
split). It does not depend on the run's --seed, so every run of every
method is scored on the same 360 images.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import tarfile
import zipfile
import zlib

import numpy as np

from adder_tf.errors import UserError

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

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


@dataclasses.dataclass(frozen=True)
class Arrays:
    """A whole dataset in memory: images NHWC (uint8 or float32), labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


# ---------------------------------------------------------------- digits


def load_digits() -> Arrays:
    """scikit-learn's bundled digits, 0..16 scaled to [0, 1], fixed split."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., None]
    labels = bunch.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels,
        test_size=DIGITS_TEST_SIZE,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    return Arrays(x_train, y_train, x_test, y_test, 10)


# ---------------------------------------------------------------- npz


def load_npz(path: str, num_classes: int | None = None) -> Arrays:
    """A Keras-style .npz (x_train, y_train, x_test, y_test).

    Images: (N, H, W) or (N, H, W, C), uint8 0..255 (any integer type with
    values in that range) or float (used as is). Labels: integer class ids,
    shape (N,) or (N, 1); float labels are accepted only when every value is
    a whole number. `num_classes` defaults to max label + 1 over both
    splits; when given (a fixed dataset such as MNIST) labels must be below it.
    """
    if not path:
        raise UserError("--dataset=npz needs --data_path=FILE.npz (with x_train, y_train, x_test, y_test)")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder; --data_path must name an .npz file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise UserError(f"{path}: a single .npy array, not an .npz with {', '.join(NPZ_KEYS)} (use np.savez)")
    if not magic.startswith(b"PK"):
        raise UserError(f"{path}: not an .npz file (not a zip archive; write it with np.savez)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise UserError(
                    f"{path}: missing array(s) {', '.join(missing)}; "
                    f"an npz dataset needs {', '.join(NPZ_KEYS)} (found: {', '.join(npz.files) or 'none'})"
                )
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except UserError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        raise UserError(f"{path}: not a readable .npz file ({_one_line(e)})") from None

    x_train = _check_images(path, "x_train", arrays["x_train"])
    x_test = _check_images(path, "x_test", arrays["x_test"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(
            f"{path}: x_train images are {x_train.shape[1:]} but x_test images are {x_test.shape[1:]}"
        )
    if (x_train.dtype == np.uint8) != (x_test.dtype == np.uint8):
        raise UserError(
            f"{path}: x_train is {arrays['x_train'].dtype} but x_test is {arrays['x_test'].dtype}; "
            "store both as uint8 0..255 or both as float, so they are scaled alike"
        )
    y_train = _check_labels(path, "y_train", arrays["y_train"], len(x_train), "x_train")
    y_test = _check_labels(path, "y_test", arrays["y_test"], len(x_test), "x_test")
    top = int(max(y_train.max(), y_test.max()))
    if num_classes is None:
        num_classes = top + 1
        _check_classes_present(path, y_train, y_test, num_classes)
    elif top >= num_classes:
        raise UserError(f"{path}: label {top} out of range for {num_classes} classes (0..{num_classes - 1})")
    return Arrays(x_train, y_train, x_test, y_test, num_classes)


def _check_classes_present(path, y_train, y_test, num_classes):
    """Inferred classes 0..K-1 must all be trained on, or the labels are probably not ids."""
    unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if unseen:
        raise UserError(f"{path}: y_test has class(es) {unseen[:5]} that y_train never shows "
                        "(pass --num_classes=K if that is intended)")
    trained = np.zeros(num_classes, bool)
    trained[y_train] = True
    if not trained.all():
        missing = np.flatnonzero(~trained)
        shown = ", ".join(str(int(k)) for k in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise UserError(f"{path}: y_train has no example of class(es) {shown} of 0..{num_classes - 1} "
                        f"({len(missing)} missing); labels must be class ids 0..K-1 "
                        "(pass --num_classes=K if some classes are absent on purpose)")


def _check_images(path: str, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise UserError(f"{path}: {key} has shape {x.shape}; expected (N, H, W) or (N, H, W, C)")
    if len(x) == 0:
        raise UserError(f"{path}: {key} is empty")
    if x.shape[3] not in (1, 3, 4) and x.shape[1] in (1, 3):
        raise UserError(
            f"{path}: {key} has shape {x.shape}, which looks channels-first; "
            "store images as (N, H, W, C)"
        )
    if min(x.shape[1:]) == 0:
        raise UserError(f"{path}: {key} has shape {x.shape}; images must not be empty")
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        if x.dtype != np.uint8:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi > 255:
                raise UserError(
                    f"{path}: {key} is {x.dtype} with values {lo}..{hi}; integer images must be 0..255"
                )
            x = x.astype(np.uint8)
        return x
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise UserError(f"{path}: {key} contains NaN or infinite values")
        return x
    raise UserError(f"{path}: {key} has dtype {x.dtype}; images must be uint8 or float")


def _check_labels(path: str, key: str, y: np.ndarray, n: int, x_key: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        hint = " (one-hot? store class ids, e.g. y.argmax(1))" if y.ndim == 2 else ""
        raise UserError(f"{path}: {key} has shape {y.shape}; expected (N,) or (N, 1) class ids{hint}")
    if len(y) != n:
        raise UserError(f"{path}: {key} has {len(y)} labels but {x_key} has {n} images")
    if np.issubdtype(y.dtype, np.floating):
        if not (np.isfinite(y).all() and np.all(y == np.round(y))):
            raise UserError(f"{path}: {key} has non-integer labels; labels must be class ids 0..K-1")
    elif not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: {key} has dtype {y.dtype}; labels must be integer class ids")
    if y.min() < 0:
        raise UserError(f"{path}: {key} has negative label {int(y.min())}; labels must be 0..K-1")
    if y.max() >= 2**31:
        raise UserError(f"{path}: {key} has label {int(y.max())}, too large for a class id")
    return y.astype(np.int32)


# ---------------------------------------------------------------- CIFAR pickles


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
        raise UserError(f"{location}: not a readable CIFAR tarball ({_one_line(e)})") from None
    with tar:
        members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}

        def read(f):
            if f not in members:
                raise UserError(f"{location}: no {f} inside the tarball; is it the {name} python version?")
            try:
                return _unpickle(f"{location}:{members[f].name}", tar.extractfile(members[f]))
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise UserError(f"{location}: cannot read {f} ({_one_line(e)})") from None

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
        raise UserError(f"{where}: not a readable CIFAR pickle ({_one_line(e)})") from None
    if not isinstance(batch, dict):
        raise UserError(f"{where}: not a CIFAR batch (pickle holds {type(batch).__name__}, not dict)")
    return where, batch


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]
