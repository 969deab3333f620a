"""Class-balanced subsets of in-memory arrays (the picks of `folder`'s subset rules)."""
from __future__ import annotations

import dataclasses

import numpy as np

from adder_tf.data import folder
from adder_tf.data.local import Arrays


def validation_held_out(arrays: Arrays, n: int) -> Arrays:
    """Training images minus n held-out ones, which replace the test split."""
    if not n:
        return arrays
    files = [(i, int(k)) for i, k in enumerate(arrays.y_train)]
    held = np.array([i for i, _ in folder.held_out_subset(files, arrays.num_classes, n)])
    keep = np.setdiff1d(np.arange(len(files)), held)
    return dataclasses.replace(arrays, x_train=arrays.x_train[keep], y_train=arrays.y_train[keep],
                               x_test=arrays.x_train[held], y_test=arrays.y_train[held])


def balanced(arrays: Arrays, n: int) -> Arrays:
    """The fixed class-balanced subset of n training images (the test split is whole)."""
    files = [(i, int(k)) for i, k in enumerate(arrays.y_train)]
    keep = np.array([i for i, _ in folder.balanced_subset(files, arrays.num_classes, n)])
    return dataclasses.replace(arrays, x_train=arrays.x_train[keep], y_train=arrays.y_train[keep])
