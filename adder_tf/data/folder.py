"""Image class folders: DIR/train/<class>/* and DIR/test/<class>/*.

The layout of `keras.utils.image_dataset_from_directory`, one folder per
class, classes in sorted order (their index is the label). PNG, JPEG, GIF
and BMP files, all of one size, are decoded once into memory; anything else
(an empty class, a class missing from train, mixed sizes, a file that does
not decode) ends in one `UserError` line naming the culprit.

`train_examples` picks a fixed, class-balanced subset of the training split
before decoding: the first N/K files of each class in sorted order (the
remainder going to the first classes), so every run and every method with
the same N trains on the same images. `validation_examples` holds out the
last V/K training files of each class and scores on them instead of the
test split (for choosing hyper-parameters); training never sees them.
"""
from __future__ import annotations

import os

import numpy as np

from adder_tf.data.local import Arrays
from adder_tf.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")


def load_folder(data_dir: str, train_examples: int = 0, validation_examples: int = 0) -> Arrays:
    if not data_dir:
        raise UserError("--dataset=folder needs --data_dir=DIR holding DIR/train/<class>/ and DIR/test/<class>/")
    root = os.path.expanduser(data_dir)
    classes = _classes(root, "train")
    test_classes = _classes(root, "test")
    extra = sorted(set(test_classes) - set(classes))
    if extra:
        raise UserError(f"{os.path.join(root, 'test')}: class folder(s) {', '.join(extra)} "
                        f"have no training folder in {os.path.join(root, 'train')}")
    train_files = _files(root, "train", classes)
    held_out = held_out_subset(train_files, len(classes), validation_examples)
    train_files = [f for f in train_files if f not in set(held_out)]
    if train_examples:
        train_files = balanced_subset(train_files, len(classes), train_examples)
    test_files = held_out or _files(root, "test", classes, allow_missing=True)
    x_train, y_train = _decode(train_files)
    x_test, y_test = _decode(test_files)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{root}: training images are {x_train.shape[1:]} but test images are "
                        f"{x_test.shape[1:]}; all images must have one size")
    return Arrays(x_train, y_train, x_test, y_test, len(classes))


def balanced_subset(files, num_classes, n):
    """The first n // K (+1 for the first n % K classes) of each class, in the given order."""
    by_class = [[f for f in files if f[1] == k] for k in range(num_classes)]
    quota = [n // num_classes + (k < n % num_classes) for k in range(num_classes)]
    short = [k for k in range(num_classes) if len(by_class[k]) < quota[k]]
    if short:
        raise UserError(f"--train_examples={n}: class {short[0]} has only {len(by_class[short[0]])} "
                        f"training images, {quota[short[0]]} needed for a balanced subset")
    return [f for k in range(num_classes) for f in by_class[k][:quota[k]]]


def held_out_subset(files, num_classes, n):
    """The last n // K (+1 for the first n % K classes) of each class: a validation split
    disjoint from the first images of each class that `balanced_subset` trains on."""
    if not n:
        return []
    return sorted(balanced_subset(list(reversed(files)), num_classes, n),
                  key=lambda f: (f[1], files.index(f)))


def _classes(root, split):
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: no such folder; --dataset=folder reads "
                        f"{root}/train/<class>/* and {root}/test/<class>/*")
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise UserError(f"{folder}: no class folders in it")
    return classes


def _files(root, split, classes, allow_missing=False):
    files = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, split, name)
        if allow_missing and not os.path.isdir(folder):
            continue
        images = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not images:
            raise UserError(f"{folder}: class {name!r} has no image files "
                            f"({', '.join(IMAGE_EXTENSIONS)})")
        files += [(os.path.join(folder, f), label) for f in images]
    return files


def _decode(files):
    """Decode every file (in parallel with tf.data), checking that all share one shape."""
    import tensorflow as tf

    paths = [p for p, _ in files]
    labels = np.array([k for _, k in files], dtype=np.int32)

    def read(path):
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        return image, tf.shape(image)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images, first_shape = [], None
    it = iter(ds)
    for i, path in enumerate(paths):
        try:
            image, shape = next(it)
        except tf.errors.InvalidArgumentError as e:
            raise UserError(f"{path}: not a readable image ({str(e.message).splitlines()[0][:120]})") \
                from None
        shape = tuple(int(d) for d in shape.numpy())
        if first_shape is None:
            first_shape = shape
        elif shape != first_shape:
            raise UserError(f"{path}: image is {shape[0]}x{shape[1]}x{shape[2]} but "
                            f"{paths[0]} is {first_shape[0]}x{first_shape[1]}x{first_shape[2]}; "
                            "all images must have one size")
        images.append(image.numpy())
    return np.stack(images).astype(np.uint8, copy=False), labels
