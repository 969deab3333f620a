"""The dataset registry: a name and a few options in, ready tf.data batches out.

Every dataset is either a set of in-memory arrays (digits, npz, CIFAR
pickles, an MNIST .npz) or a prepared TFDS dataset. Both go through the
same recipe: decode -> (cache) -> shuffle -> augment -> normalise -> batch.
The recipe of each dataset (padding of the random crop, whether to flip,
normalisation constants) is fixed (`recipes`, `sources`) so that every
method trained on a dataset sees the same inputs, and is returned with the
data (`Data.mean`, `Data.std`) so that users of an exported model can
reproduce it. Where the images come from is `sources`; the tf.data
plumbing is `pipeline`.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from adder_tf.data import pipeline
from adder_tf.data.recipes import (  # noqa: F401  (the normalisation constants, public here too)
    CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, MNIST_MEAN, MNIST_STD, eval_fn, train_fn)
from adder_tf.data.sources import Source, open_source
from adder_tf.errors import UserError

DATASETS = ("cifar10", "cifar100", "mnist", "imagenet2012", "digits", "npz", "folder")
SPLITS = ("train", "test")

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
    # train_from(first_epoch, steps_per_epoch=0): every training epoch from first_epoch on,
    # each shuffled and augmented from (seed, epoch) alone (`pipeline.epochs_from`).
    train_from: object = None


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
    source = open_source(name, data_dir, data_path, train_examples, num_classes, validation_examples)
    passes, train_n = _build(source, "train", batch_size, seed, augment, cache, flip, passes=True)
    test, test_n = _build(source, "test", batch_size, seed, augment, cache, flip)
    r = source.recipe
    return Data(
        train_from=functools.partial(pipeline.epochs_from, passes, seed),
        train=pipeline.one_epoch(passes, seed),
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
    source = open_source(name, data_dir, data_path, train_examples, num_classes)
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


def _build(source: Source, split, batch_size, seed, augment, cache, flip, passes=False):
    ds, n = source.open_split(split, seed)
    r = source.recipe
    cache = bool(cache) and source.in_memory
    if split == "test":
        return pipeline.eval_pipeline(ds, batch_size, eval_fn(r), cache=cache), n
    do_flip = r.flip if flip is None else bool(flip)
    fn = train_fn(r, bool(augment), do_flip)
    buffer = IMAGENET_SHUFFLE_BUFFER if r.imagenet else None
    if passes:
        return pipeline.train_passes(ds, n, batch_size, fn, cache=cache, shuffle_buffer=buffer), n
    return pipeline.train_pipeline(ds, n, batch_size, fn, seed=seed, cache=cache, shuffle_buffer=buffer), n
