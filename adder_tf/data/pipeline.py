"""tf.data plumbing shared by every dataset: cache, shuffle, seeds, batch.

Reproducibility: with a seed, the shuffle order and every augmentation are
functions of (seed, epoch, position), so two runs see identical batches.
Each element gets its own stateless seed from a `Dataset.random` stream
zipped in after the shuffle; the stream is re-randomised each time the
dataset is iterated (each epoch) but from the same seed, and the seed stays
attached to the element through the parallel map, so the number of
parallel calls cannot change what an image looks like. Without a seed the
pipeline is allowed to emit elements out of order (faster), which changes
only the order within a batch window, never the images.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


def element_seed(r: tf.Tensor) -> tf.Tensor:
    """An int64 [2] stateless seed from one value of `Dataset.random`."""
    return tf.stack([r, tf.constant(0, tf.int64)])


def train_pipeline(
    ds: tf.data.Dataset,
    examples: int,
    batch_size: int,
    preprocess: Callable,
    *,
    seed: int | None,
    cache: bool,
    shuffle_buffer: int | None = None,
) -> tf.data.Dataset:
    """Shuffled, augmented batches of one epoch (no repeat: callers decide).

    `preprocess(image, label, seed)` turns a decoded example into the model
    input; `cache` keeps the decoded examples in memory so augmentation is
    the only per-epoch work. `shuffle_buffer` defaults to the whole split.
    """
    if cache:
        ds = ds.cache()
    buffer = min(shuffle_buffer or examples, examples)
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, seeds))
    ds = ds.map(
        lambda xy, r: preprocess(xy[0], xy[1], element_seed(r)),
        num_parallel_calls=AUTOTUNE,
        deterministic=seed is not None,
    )
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.prefetch(AUTOTUNE)
    return ds.with_options(_options(seed is not None))


def eval_pipeline(
    ds: tf.data.Dataset,
    batch_size: int,
    preprocess: Callable,
    *,
    cache: bool,
) -> tf.data.Dataset:
    """Batches in the stored order, every example once, the last batch partial."""
    if cache:
        ds = ds.cache()
    ds = ds.map(preprocess, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.prefetch(AUTOTUNE)
    return ds.with_options(_options(True))
