"""The dataset registry: a name and a few options in, ready tf.data batches out.

Every dataset is either a set of in-memory arrays (digits, npz, CIFAR
pickles, an MNIST .npz) or a prepared TFDS dataset. Both go through the
same recipe: decode -> (cache) -> shuffle -> augment -> normalise -> batch.
The recipe of each dataset (padding of the random crop, whether to flip,
normalisation constants) is fixed here so that every method trained on a
dataset sees the same inputs, and is returned with the data (`Data.mean`,
`Data.std`) so that users of an exported model can reproduce it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from adder_tf.data import augment as aug
from adder_tf.data import folder, local, pipeline, tfds_source
from adder_tf.errors import UserError

DATASETS = ("cifar10", "cifar100", "mnist", "imagenet2012", "digits", "npz", "folder")
SPLITS = ("train", "test")

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ImageNet is too large for a full-split shuffle buffer of encoded JPEGs;
# file-level shuffling plus this buffer is the usual compromise.
IMAGENET_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class Data:
    """Both splits of a dataset, batched, plus what is needed to use them."""

    train: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple
    num_classes: int
    train_examples: int
    test_examples: int
    mean: tuple
    std: tuple
    name: str
    flip: bool = False   # random horizontal flips in training


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a dataset (what evaluation needs), from `load_split`."""

    dataset: tf.data.Dataset
    split: str
    examples: int
    input_shape: tuple
    num_classes: int
    mean: tuple
    std: tuple
    name: str


@dataclasses.dataclass(frozen=True)
class _Recipe:
    input_shape: tuple
    num_classes: int
    mean: tuple
    std: tuple
    pad: int  # pad-and-crop border; 0 = no crop
    flip: bool  # horizontal flip in training
    imagenet: bool = False


@dataclasses.dataclass(frozen=True)
class _Source:
    """Lazily opened splits: (split, seed) -> (dataset of (image, label), examples)."""

    recipe: _Recipe
    open_split: Callable
    in_memory: bool  # small enough that `cache` means "keep decoded images in RAM"


def load_dataset(
    name: str,
    batch_size: int,
    *,
    data_dir: str | None = None,
    data_path: str | None = None,
    seed: int | None = None,
    augment: bool = True,
    cache: bool = True,
    flip: bool | None = None,
    train_examples: int = 0,
    num_classes: int = 0,
    validation_examples: int = 0,
) -> Data:
    """Train and test pipelines for `name` (one of DATASETS).

    `data_dir`: TFDS data directory, or a folder holding the CIFAR python
    pickles. `data_path`: the .npz for `npz` (or an MNIST .npz, or a CIFAR
    pickle folder / tarball). `augment=False` turns off crop and flip (the
    training set is still shuffled); `flip` overrides the dataset's default
    (on for CIFAR, ImageNet, colour npz and folder, off for digits, MNIST
    and grayscale npz).
    `train_examples` > 0 trains on a fixed class-balanced subset of that
    many training images (in-memory datasets only; the test split is whole).
    `num_classes` > 0 fixes an npz's class count (otherwise max label + 1,
    and every class must appear in training).
    `validation_examples` > 0 holds out that many class-balanced training
    images (the last of each class) and puts them where the test split
    would be: validation figures for choosing hyper-parameters, with the
    test split left unseen.
    """
    _check_args(name, batch_size, seed)
    source = _open(name, data_dir, data_path, train_examples, num_classes, validation_examples)
    train, train_n = _build(source, "train", batch_size, seed, augment, cache, flip)
    test, test_n = _build(source, "test", batch_size, seed, augment, cache, flip)
    r = source.recipe
    return Data(
        train=train,
        test=test,
        input_shape=r.input_shape,
        num_classes=r.num_classes,
        train_examples=train_n,
        test_examples=test_n,
        mean=r.mean,
        std=r.std,
        name=name,
        flip=bool(augment) and (r.flip if flip is None else bool(flip)),
    )


def load_split(
    name: str,
    split: str,
    batch_size: int,
    *,
    data_dir: str | None = None,
    data_path: str | None = None,
    seed: int | None = None,
    augment: bool = True,
    cache: bool = True,
    flip: bool | None = None,
    train_examples: int = 0,
    num_classes: int = 0,
) -> Split:
    """One split: "test" is the evaluation pipeline, "train" the training one.

    For TFDS datasets only that split is read; an npz is read whole because
    its normalisation and class count come from both splits.
    """
    _check_args(name, batch_size, seed)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    source = _open(name, data_dir, data_path, train_examples, num_classes)
    ds, n = _build(source, split, batch_size, seed, augment, cache, flip)
    r = source.recipe
    return Split(ds, split, n, r.input_shape, r.num_classes, r.mean, r.std, name)


# ---------------------------------------------------------------- internals


def _check_args(name, batch_size, seed):
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise UserError(f"batch size must be a positive integer, got {batch_size!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise UserError(f"seed must be an integer or None, got {seed!r}")


def _build(source: _Source, split, batch_size, seed, augment, cache, flip):
    ds, n = source.open_split(split, seed)
    r = source.recipe
    cache = bool(cache) and source.in_memory
    if split == "test":
        return pipeline.eval_pipeline(ds, batch_size, _eval_fn(r), cache=cache), n
    do_flip = r.flip if flip is None else bool(flip)
    fn = _train_fn(r, bool(augment), do_flip)
    buffer = IMAGENET_SHUFFLE_BUFFER if r.imagenet else None
    return pipeline.train_pipeline(ds, n, batch_size, fn, seed=seed, cache=cache, shuffle_buffer=buffer), n


def _train_fn(r: _Recipe, augment: bool, flip: bool):
    def fn(image, label, seed):
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if r.imagenet:
            if augment:
                image = aug.random_resized_crop_jpeg(image, crop_seed)
            else:
                image = aug.resize_and_center_crop_jpeg(image)
        else:
            image = aug.to_unit_float(image)
            if augment:
                image = aug.pad_and_crop(image, r.pad, crop_seed)
        if augment and flip:
            image = aug.random_flip(image, flip_seed)
        image = tf.ensure_shape(aug.normalize(image, r.mean, r.std), r.input_shape)
        return image, label

    return fn


def _eval_fn(r: _Recipe):
    def fn(image, label):
        if r.imagenet:
            image = aug.resize_and_center_crop_jpeg(image)
        else:
            image = aug.to_unit_float(image)
        return tf.ensure_shape(aug.normalize(image, r.mean, r.std), r.input_shape), label

    return fn


def _open(name, data_dir, data_path, train_examples=0, num_classes=0,
          validation_examples=0) -> _Source:
    if num_classes and name != "npz":
        raise UserError(f"--num_classes is for --dataset=npz; {name} has a fixed class count")
    arrays_or_source = _open_whole(name, data_dir, data_path, train_examples, num_classes,
                                   validation_examples)
    if isinstance(arrays_or_source, _Source):
        for flag, value in (("train_examples", train_examples),
                            ("validation_examples", validation_examples)):
            if value:
                raise UserError(f"--{flag} works with in-memory datasets (digits, npz, folder, "
                                f"CIFAR pickles), not with {name} read through TFDS")
        return arrays_or_source
    arrays, kwargs = arrays_or_source
    if name != "folder":   # the folder reader subsets before decoding
        arrays = _validation_held_out(arrays, validation_examples)
        if train_examples:
            arrays = _balanced(arrays, train_examples)
    return _from_arrays(arrays, **kwargs)


def _validation_held_out(arrays: local.Arrays, n: int) -> local.Arrays:
    """Training images minus n held-out ones, which replace the test split."""
    if not n:
        return arrays
    files = [(i, int(k)) for i, k in enumerate(arrays.y_train)]
    held = np.array([i for i, _ in folder.held_out_subset(files, arrays.num_classes, n)])
    keep = np.setdiff1d(np.arange(len(files)), held)
    return dataclasses.replace(arrays, x_train=arrays.x_train[keep], y_train=arrays.y_train[keep],
                               x_test=arrays.x_train[held], y_test=arrays.y_train[held])


def _balanced(arrays: local.Arrays, n: int) -> local.Arrays:
    files = [(i, int(k)) for i, k in enumerate(arrays.y_train)]
    keep = np.array([i for i, _ in folder.balanced_subset(files, arrays.num_classes, n)])
    return dataclasses.replace(arrays, x_train=arrays.x_train[keep], y_train=arrays.y_train[keep])


def _open_whole(name, data_dir, data_path, train_examples, num_classes=0,
                validation_examples=0) -> _Source:
    if name == "folder":
        if data_path:
            raise UserError("--dataset=folder reads --data_dir=DIR (DIR/train/<class>/*); drop --data_path")
        arrays = folder.load_folder(data_dir, train_examples, validation_examples)
        if arrays.x_train.shape[1:] == (32, 32, 3):   # CIFAR-sized: the CIFAR recipe
            recipe = _Recipe((32, 32, 3), arrays.num_classes, CIFAR_MEAN, CIFAR_STD, pad=4, flip=True)
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
        found = local.find_cifar(name, data_path) or local.find_cifar(name, data_dir)
        if data_path and not found:
            raise UserError(
                f"{data_path}: no {name} python-pickle folder or tarball "
                f"({local.CIFAR10_DIR if name == 'cifar10' else local.CIFAR100_DIR}) there"
            )
        classes = 10 if name == "cifar10" else 100
        recipe = _Recipe((32, 32, 3), classes, CIFAR_MEAN, CIFAR_STD, pad=4, flip=True)
        if found:
            return local.load_cifar(name, found), dict(recipe=recipe)
        return _from_tfds(name, data_dir, recipe)
    if name == "mnist":
        recipe = _Recipe((28, 28, 1), 10, MNIST_MEAN, MNIST_STD, pad=2, flip=False)
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
    recipe = _Recipe((224, 224, 3), 1000, IMAGENET_MEAN, IMAGENET_STD, pad=0, flip=True, imagenet=True)
    return _from_tfds(name, data_dir, recipe, in_memory=False)


def _from_arrays(arrays: local.Arrays, *, pad=0, flip=False, recipe: _Recipe | None = None) -> _Source:
    if recipe is None:
        mean, std = _channel_stats(arrays.x_train)
        recipe = _Recipe(
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
    return _Source(recipe, open_split, in_memory=False)


def _from_tfds(name, data_dir, recipe: _Recipe, in_memory: bool = True) -> _Source:
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

    return _Source(recipe, open_split, in_memory=in_memory)


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
