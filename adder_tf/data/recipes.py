"""Each dataset's fixed recipe and the per-image functions that apply it.

A recipe says what every method trained on a dataset sees: the image shape,
the class count, the normalisation constants, the pad-and-crop border and
whether training images are flipped. `train_fn` and `eval_fn` turn a recipe
into the functions the tf.data pipelines map over (image, label) pairs.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from adder_tf.data import augment as aug

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Recipe:
    input_shape: tuple
    num_classes: int
    mean: tuple
    std: tuple
    pad: int  # pad-and-crop border; 0 = no crop
    flip: bool  # horizontal flip in training
    imagenet: bool = False


def train_fn(r: Recipe, augment: bool, flip: bool):
    """(image, label, seed) -> (normalised image, label), augmented when asked."""
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


def eval_fn(r: Recipe):
    """(image, label) -> (normalised image, label), no randomness."""
    def fn(image, label):
        if r.imagenet:
            image = aug.resize_and_center_crop_jpeg(image)
        else:
            image = aug.to_unit_float(image)
        return tf.ensure_shape(aug.normalize(image, r.mean, r.std), r.input_shape), label

    return fn
