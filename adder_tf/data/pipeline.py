"""tf.data plumbing shared by every dataset: cache, shuffle, seeds, batch.

Reproducibility: with a seed, the shuffle order and every augmentation are
functions of (seed, epoch, position), so two runs see identical batches.
Each element gets its own stateless seed from a `Dataset.random` stream
zipped in after the shuffle; the stream is re-randomised each time the
dataset is iterated (each epoch) but from the same seed (`epochs_from`: from
(seed, epoch) alone, so a resumed run's data order is an uninterrupted one's), and the seed stays
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
    return one_epoch(train_passes(ds, examples, batch_size, preprocess, cache=cache,
                                  shuffle_buffer=shuffle_buffer), seed)


def one_epoch(one_pass, seed):
    """`train_pipeline` from `train_passes`: reshuffled from `seed` at each iteration."""
    return _finish(one_pass(seed), seed)


def train_passes(ds, examples, batch_size, preprocess, *, cache, shuffle_buffer=None):
    """A function: a seed (int, int64 tensor or None) -> one pass of `train_pipeline` under that seed."""
    if cache:
        ds = ds.cache()
    buffer = min(shuffle_buffer or examples, examples)

    def one_pass(seed):
        shuffled = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        out = tf.data.Dataset.zip((shuffled, seeds)).map(
            lambda xy, r: preprocess(xy[0], xy[1], element_seed(r)),
            num_parallel_calls=AUTOTUNE,
            deterministic=seed is not None,
        )
        return out.batch(batch_size, drop_remainder=False)
    return one_pass


def epochs_from(one_pass, seed, first_epoch, steps_per_epoch=0):
    """Training epochs first_epoch, first_epoch + 1, ... one after the other, without end.

    Epoch e is shuffled and augmented from (seed, e) alone: one pass of
    `one_pass` (from `train_passes`), or with `steps_per_epoch` that many
    batches of such passes repeated. A run resumed at epoch e thus sees the
    batches an uninterrupted run sees from epoch e on. Without a seed: the
    passes one after the other, each reshuffled.
    """
    if seed is None:
        return _finish(one_pass(None).repeat(), None)

    def epoch(e):
        # This function's own graph seed: the op seeds below, a function of (seed, e),
        # then decide alone (the run's global seed could be 0, which TensorFlow's seed
        # logic cannot pair with a tensor op seed).
        tf.random.set_seed(EPOCH_GRAPH_SEED)
        batches = one_pass(seed * EPOCH_SEED_STRIDE + e)
        return batches.repeat().take(steps_per_epoch) if steps_per_epoch else batches
    epochs = tf.data.Dataset.range(first_epoch, tf.int64.max).flat_map(epoch)
    return _finish(epochs, seed)


EPOCH_SEED_STRIDE = 1_000_003   # (seed, epoch) -> one int64 seed, distinct for epochs < the stride
EPOCH_GRAPH_SEED = 1


def _finish(ds, seed):
    return ds.prefetch(AUTOTUNE).with_options(_options(seed is not None))


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
