"""Readers for arrays that are already on disk (an .npz) or ship with a package (digits).

Each reader returns an `Arrays` of NHWC images and int32 labels and checks
what it reads, so that a bad file ends in one `UserError` line naming the
file instead of a shape error deep inside TensorFlow. (CIFAR pickles are
read by `cifar_files`, class folders by `folder`.)

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
import zipfile
import zlib

import numpy as np

from adder_tf.errors import UserError

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


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
        raise UserError(f"{path}: not a readable .npz file ({one_line(e)})") from None

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


def one_line(e: BaseException) -> str:
    """An exception's message on one line, at most 200 characters, for a `UserError`."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:200]
