"""Where each dataset's images come from: in-memory arrays or a prepared TFDS dataset.

`open_source(name, ...)` reads (or prepares to read) a dataset and returns a
`Source`: its recipe and a function that opens one split as a tf.data
dataset of (image, label). Digits, npz, folder and CIFAR pickles (and an
MNIST .npz) are read whole into arrays, subset if asked, and normalised with
their own statistics unless the dataset has fixed ones; everything else is
read through TFDS, one split at a time.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from adder_tf.data import cifar_files, folder, local, subsets, tfds_source
from adder_tf.data.recipes import (CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD,
                                   MNIST_MEAN, MNIST_STD, Recipe)
from adder_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Source:
    """Lazily opened splits: (split, seed) -> (dataset of (image, label), examples)."""

    recipe: Recipe
    open_split: Callable
    in_memory: bool  # small enough that `cache` means "keep decoded images in RAM"


def open_source(name, data_dir, data_path, train_examples=0, num_classes=0,
                validation_examples=0) -> Source:
    if num_classes and name != "npz":
        raise UserError(f"--num_classes is for --dataset=npz; {name} has a fixed class count")
    arrays_or_source = _open_whole(name, data_dir, data_path, train_examples, num_classes,
                                   validation_examples)
    if isinstance(arrays_or_source, Source):
        for flag, value in (("train_examples", train_examples),
                            ("validation_examples", validation_examples)):
            if value:
                raise UserError(f"--{flag} works with in-memory datasets (digits, npz, folder, "
                                f"CIFAR pickles), not with {name} read through TFDS")
        return arrays_or_source
    arrays, kwargs = arrays_or_source
    if name != "folder":   # the folder reader subsets before decoding
        arrays = subsets.validation_held_out(arrays, validation_examples)
        if train_examples:
            arrays = subsets.balanced(arrays, train_examples)
    return _from_arrays(arrays, **kwargs)


def _open_whole(name, data_dir, data_path, train_examples, num_classes=0,
                validation_examples=0) -> Source | tuple[local.Arrays, dict]:
    """A TFDS `Source`, or the whole dataset's arrays and how to make their recipe."""
    if name == "folder":
        if data_path:
            raise UserError("--dataset=folder reads --data_dir=DIR (DIR/train/<class>/*); drop --data_path")
        arrays = folder.load_folder(data_dir, train_examples, validation_examples)
        if arrays.x_train.shape[1:] == (32, 32, 3):   # CIFAR-sized: the CIFAR recipe
            recipe = Recipe((32, 32, 3), arrays.num_classes, CIFAR_MEAN, CIFAR_STD, pad=4, flip=True)
            return arrays, dict(recipe=recipe)
        return arrays, dict(pad=arrays.x_train.shape[1] // 8, flip=True)
    if name == "digits":
        if data_path:
            raise UserError("--dataset=digits ships with scikit-learn; --data_path is not used (drop it)")
        arrays = local.load_digits()
        return arrays, dict(pad=1, flip=False)
    if name == "npz":
        if data_path:
            data_path = os.path.expanduser(data_path)
        arrays = local.load_npz(data_path, num_classes or None)
        h, channels = arrays.x_train.shape[1], arrays.x_train.shape[-1]
        # A mirrored digit or letter is often another one: no flip for grayscale.
        return arrays, dict(pad=h // 8, flip=channels != 1)
    if name in ("cifar10", "cifar100"):
        found = cifar_files.find_cifar(name, data_path) or cifar_files.find_cifar(name, data_dir)
        if data_path and not found:
            raise UserError(
                f"{data_path}: no {name} python-pickle folder or tarball "
                f"({cifar_files.CIFAR10_DIR if name == 'cifar10' else cifar_files.CIFAR100_DIR}) there"
            )
        classes = 10 if name == "cifar10" else 100
        recipe = Recipe((32, 32, 3), classes, CIFAR_MEAN, CIFAR_STD, pad=4, flip=True)
        if found:
            return cifar_files.load_cifar(name, found), dict(recipe=recipe)
        return _from_tfds(name, data_dir, recipe)
    if name == "mnist":
        recipe = Recipe((28, 28, 1), 10, MNIST_MEAN, MNIST_STD, pad=2, flip=False)
        if data_path:
            path = os.path.expanduser(data_path)
            arrays = local.load_npz(path, num_classes=10)
            if arrays.x_train.shape[1:] != (28, 28, 1):
                raise UserError(f"{path}: images are {arrays.x_train.shape[1:]}, not MNIST's 28x28x1")
            return arrays, dict(recipe=recipe)
        return _from_tfds(name, data_dir, recipe)
    # imagenet2012
    if data_path:
        raise UserError("imagenet2012 is read from a prepared TFDS folder: use --data_dir, not --data_path")
    recipe = Recipe((224, 224, 3), 1000, IMAGENET_MEAN, IMAGENET_STD, pad=0, flip=True, imagenet=True)
    return _from_tfds(name, data_dir, recipe, in_memory=False)


def _from_arrays(arrays: local.Arrays, *, pad=0, flip=False, recipe: Recipe | None = None) -> Source:
    if recipe is None:
        mean, std = _channel_stats(arrays.x_train)
        recipe = Recipe(
            tuple(int(d) for d in arrays.x_train.shape[1:]), arrays.num_classes, mean, std, pad, flip
        )
    parts = {
        "train": (arrays.x_train, arrays.y_train),
        "test": (arrays.x_test, arrays.y_test),
    }

    def open_split(split, seed):
        del seed  # nothing random in reading arrays
        x, y = parts[split]
        return tf.data.Dataset.from_tensor_slices((x, y)), len(x)

    # Already in memory: caching would only copy it again.
    return Source(recipe, open_split, in_memory=False)


def _from_tfds(name, data_dir, recipe: Recipe, in_memory: bool = True) -> Source:
    tfds_split = {"train": "train", "test": "validation" if recipe.imagenet else "test"}

    def open_split(split, seed):
        training = split == "train"
        ds, n, classes = tfds_source.load(
            name,
            tfds_split[split],
            data_dir,
            shuffle_files=training and recipe.imagenet,
            seed=seed,
            decode_images=not recipe.imagenet,
        )
        if classes != recipe.num_classes:
            raise UserError(f"TFDS dataset {name} has {classes} classes, expected {recipe.num_classes}")
        return ds, n

    return Source(recipe, open_split, in_memory=in_memory)


def _channel_stats(x: np.ndarray, chunk: int = 4096):
    """Per-channel mean and std of images scaled to [0, 1], in float64 chunks."""
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    c = x.shape[-1]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    for i in range(0, len(x), chunk):
        block = x[i : i + chunk].astype(np.float64).reshape(-1, c) / scale
        total += block.sum(0)
        total_sq += np.square(block).sum(0)
    count = x.size / c
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    std = np.where(std > 1e-8, std, 1.0)  # a constant channel: centre it, do not divide by 0
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
